/*
 * The web server of the conformance run's stand-ins for critest's nginx, httpd and hostnet-nginx
 * images (no registry on the internet is reachable, so every image is built here). Built with
 * `gcc -static`. Configured from the image's environment:
 *
 *   WEBSERVER_PORT     TCP port to serve on (default 80)
 *   WEBSERVER_NAME     the word its start-up line carries ("httpd": critest looks for it in the log)
 *   WEBSERVER_PIDFILE  file to write its pid to (nginx's /var/run/nginx.pid, which critest reads)
 *   WEBSERVER_TITLE    the command line to show in /proc/PID/cmdline (nginx's
 *                      "nginx: master process ...", which critest's PID namespace specs grep for)
 *
 * Every request gets "200 OK" and a small page: critest only checks the status code. One
 * connection at a time, each bounded by a receive timeout, so a stalled client cannot stop it.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char page[] = "<html><body><h1>conformance stand-in web server</h1></body></html>\n";

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

/* A dual-stack listener where the kernel has IPv6, IPv4 otherwise. */
static int listen_on(int port)
{
	int one = 1, zero = 0;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	if (fd >= 0) {
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		a6.sin6_addr = in6addr_any;
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0 && listen(fd, 16) == 0)
			return fd;
		close(fd);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };

	a4.sin_addr.s_addr = htonl(INADDR_ANY);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void serve(int c)
{
	char req[4096], head[256];
	size_t got = 0;
	struct timeval tv = { .tv_sec = 5 };

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* Read the request head; its content does not matter. */
	while (got < sizeof(req) - 1) {
		ssize_t n = read(c, req + got, sizeof(req) - 1 - got);

		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	int len = snprintf(head, sizeof(head),
			   "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
			   "Connection: close\r\n\r\n",
			   sizeof(page) - 1);
	if (write(c, head, (size_t)len) == len)
		(void)!write(c, page, sizeof(page) - 1);
}

int main(int argc, char **argv)
{
	const char *title = getenv("WEBSERVER_TITLE");
	const char *name = getenv("WEBSERVER_NAME");
	const char *pidfile = getenv("WEBSERVER_PIDFILE");
	const char *port_s = getenv("WEBSERVER_PORT");
	int port = port_s ? atoi(port_s) : 80;

	(void)argc;
	/*
	 * Show the title as the command line the way nginx's master does: run this binary again by
	 * its own path (so its name stays that of the file) with the title as argv[0].
	 */
	if (title && *title && strcmp(argv[0], title) != 0) {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n > 0) {
			char *args[] = { (char *)title, NULL };

			self[n] = '\0';
			execv(self, args);
		}
		fprintf(stderr, "webserver: cannot re-run itself with its title: %s\n", strerror(errno));
	}

	struct sigaction term = { .sa_handler = on_term };

	sigaction(SIGTERM, &term, NULL);
	sigaction(SIGINT, &term, NULL);
	sigaction(SIGQUIT, &term, NULL);
	signal(SIGPIPE, SIG_IGN);

	int fd = listen_on(port);

	if (fd < 0) {
		fprintf(stderr, "%s: cannot listen on port %d: %s\n", name ? name : "webserver", port,
			strerror(errno));
		return 1;
	}
	if (pidfile && *pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
			fprintf(stderr, "webserver: cannot write %s: %s\n", pidfile, strerror(errno));
			return 1;
		}
	}
	printf("%s: serving HTTP on port %d\n", name ? name : "webserver", port);
	fflush(stdout);
	for (;;) {
		int c = accept(fd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("webserver: accept");
			return 1;
		}
		serve(c);
		close(c);
	}
}
