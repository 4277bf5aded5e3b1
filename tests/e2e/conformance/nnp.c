/*
 * The stand-in for critest's nonewprivs image: installed setuid root, it prints its effective
 * uid. Run as uid 1000, it says 0 when the runtime let the setuid bit work and 1000 when
 * no_new_privs stopped it, which is what critest's NoNewPrivs specs compare. Built with
 * `gcc -static`.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
