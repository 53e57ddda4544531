/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * run-measure: runs a command and writes what it cost to a file, for
 * benchmarks:
 *   wall SECONDS          elapsed (CLOCK_MONOTONIC)
 *   cpu SECONDS           user + system CPU of the command and its waited-for
 *   user SECONDS          children
 *   sys SECONDS
 *   maxrss_kib N          peak resident set size (ru_maxrss, KiB)
 *   written_bytes N       bytes the command caused to be written to storage
 *                         (ru_oublock x 512: Linux's write_bytes of
 *                         /proc/PID/io, counted when pages are dirtied, so
 *                         WAL, checkpoints and journals included)
 *   status N              exit status, or 128 + signal number
 * and exits with the command's status.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv(const struct timeval *t)
{
	return (double)t->tv_sec + (double)t->tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	double start, wall;
	pid_t pid;
	int status, rc;
	FILE *f;

	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fputs("Usage: run-measure OUTFILE -- COMMAND [ARG...]\n", stderr);
		return 2;
	}
	start = now();
	pid = fork();
	if (pid < 0) {
		perror("run-measure: fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[3], argv + 3);
		fprintf(stderr, "run-measure: %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	/* The terminal's ^C goes to both; let the child decide. */
	signal(SIGINT, SIG_IGN);
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("run-measure: wait4");
			return 1;
		}
	}
	wall = now() - start;
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		rc = 128 + WTERMSIG(status);
	else
		rc = 1;

	f = fopen(argv[1], "w");
	if (!f) {
		fprintf(stderr, "run-measure: %s: %s\n", argv[1], strerror(errno));
		return rc ? rc : 1;
	}
	fprintf(f,
		"wall %.3f\ncpu %.3f\nuser %.3f\nsys %.3f\nmaxrss_kib %ld\nwritten_bytes %lld\n"
		"status %d\n",
		wall, tv(&ru.ru_utime) + tv(&ru.ru_stime), tv(&ru.ru_utime), tv(&ru.ru_stime),
		ru.ru_maxrss, (long long)ru.ru_oublock * 512, rc);
	if (fclose(f) != 0) {
		fprintf(stderr, "run-measure: %s: %s\n", argv[1], strerror(errno));
		return rc ? rc : 1;
	}
	return rc;
}
