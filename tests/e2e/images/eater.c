/*
 * A memory eater for the e2e images (localhost/e2e/eater:1), built with `gcc -static`.
 *
 *   eater MAX_MIB STEP_MIB DELAY_MS
 *
 * Prints "start", then allocates STEP_MIB at a time, writing a non-zero byte to every page so
 * the memory is really committed (untouched or zero pages could stay unbacked), and prints
 * "eaten <total> MiB" after each step, flushed, so the driver sees the progress even if the
 * process is killed the next moment. At MAX_MIB it prints "done <total> MiB" and sleeps for
 * ever: a pod that should have been OOM-killed stays observable as "escaped its limit".
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static long parse(const char *name, const char *text, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max) {
		fprintf(stderr, "eater: %s must be an integer in [%ld, %ld], not \"%s\"\n", name, min,
			max, text);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long max_mib, step_mib, delay_ms, total = 0;
	long page = sysconf(_SC_PAGESIZE);

	if (argc != 4) {
		fprintf(stderr, "usage: eater MAX_MIB STEP_MIB DELAY_MS\n");
		return 2;
	}
	max_mib = parse("MAX_MIB", argv[1], 1, 1L << 20);
	step_mib = parse("STEP_MIB", argv[2], 1, 1L << 20);
	delay_ms = parse("DELAY_MS", argv[3], 0, 3600L * 1000L);
	if (page <= 0)
		page = 4096;

	printf("start\n");
	fflush(stdout);
	while (total < max_mib) {
		long step = step_mib < max_mib - total ? step_mib : max_mib - total;
		size_t bytes = (size_t)step * MIB;
		/* The blocks are never freed: holding them is the point. */
		unsigned char *block = malloc(bytes);

		if (!block) {
			printf("malloc failed at %ld MiB\n", total);
			fflush(stdout);
			return 1;
		}
		for (size_t off = 0; off < bytes; off += (size_t)page)
			block[off] = (unsigned char)(1 + (off / (size_t)page) % 255);
		total += step;
		printf("eaten %ld MiB\n", total);
		fflush(stdout);
		if (delay_ms > 0) {
			struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
	}
	printf("done %ld MiB\n", total);
	fflush(stdout);
	for (;;)
		pause();
}
