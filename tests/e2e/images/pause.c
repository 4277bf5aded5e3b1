/*
 * The pod sandbox's pause process for the e2e images (localhost/e2e/pause:1).
 * Built with `gcc -static` so the image needs nothing but this file.
 *
 * Like Kubernetes' pause: it holds the pod's namespaces, sleeps until SIGTERM or SIGINT and,
 * being PID 1 of the pod, reaps any child that gets re-parented to it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

int main(void)
{
	struct sigaction term = { .sa_handler = on_term };
	struct sigaction child = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART };

	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not running as PID 1\n");
	if (sigaction(SIGTERM, &term, NULL) < 0 || sigaction(SIGINT, &term, NULL) < 0 ||
	    sigaction(SIGCHLD, &child, NULL) < 0) {
		perror("pause: sigaction");
		return 1;
	}
	for (;;)
		pause();
}
