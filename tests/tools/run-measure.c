/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * run-measure: runs a command and writes what it cost to a file, for
 * benchmarks:
 *
 *   run-measure [--device-of PATH] OUTFILE -- COMMAND [ARG...]
 *
 *   wall SECONDS          elapsed (CLOCK_MONOTONIC)
 *   cpu SECONDS           user + system CPU of the command and its waited-for
 *   user SECONDS          children
 *   sys SECONDS
 *   maxrss_kib N          peak resident set size (ru_maxrss, KiB)
 *   written_bytes N       bytes the command caused to be written to storage
 *                         (ru_oublock x 512: Linux's write_bytes of
 *                         /proc/PID/io, counted when pages are dirtied, so
 *                         WAL, checkpoints and journals included; a page
 *                         cache folio counts whole when a write dirties
 *                         it, so with large folios a small write into a
 *                         file that was read can count tens of KiB)
 *   device_written_bytes N
 *                         with --device-of PATH only: the sectors (x 512)
 *                         the block device holding PATH wrote (field 7 of
 *                         /sys/dev/block/MAJ:MIN/stat, for stat(PATH)'s
 *                         st_dev: the partition or the whole disk, as the
 *                         file system sits), from after a sync() before the
 *                         command to after a sync() once it has exited, so
 *                         its writeback and journal commits count.  It is
 *                         machine-wide: every process's writes to that
 *                         device in the meantime count too, so it is only
 *                         meaningful on an otherwise quiet machine.  The
 *                         syncs are outside the wall time; the one before
 *                         also means the command starts with no dirty pages
 *                         left by earlier ones (which changes what
 *                         written_bytes counts: nothing it dirties again is
 *                         already dirty).
 *   wchar N               bytes the command's own process passed to write
 *                         calls (wchar of /proc/PID/io, read while it is a
 *                         zombie): files, sockets and pipes alike, its
 *                         children not included.  Unlike written_bytes it
 *                         does not depend on the page cache: an SQLite
 *                         store's figure is its pages (WAL frames,
 *                         checkpoints, journals) plus what went to sockets,
 *                         the same on a loaded machine as on a quiet one.
 *                         Absent when /proc could not be read.
 *   status N              exit status, or 128 + signal number
 * and exits with the command's status (2 for a bad usage or a PATH whose
 * device has no block statistics, before running anything).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

static void usage(void)
{
	fputs("Usage: run-measure [--device-of PATH] OUTFILE -- COMMAND [ARG...]\n"
	      "  --device-of PATH  also report device_written_bytes: the sectors written by the\n"
	      "                    block device holding PATH, sync() before and after the command\n"
	      "                    (machine-wide: only meaningful on an otherwise quiet machine)\n",
	      stderr);
}

/*
 * The statistics file of the block device holding PATH into STAT_PATH (size
 * N); 0, or -1 with the reason said.
 */
static int device_stat_path(const char *path, char *stat_path, size_t n)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "run-measure: --device-of %s: %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(stat_path, n, "/sys/dev/block/%u:%u/stat", major(st.st_dev), minor(st.st_dev));
	if (access(stat_path, R_OK) != 0) {
		fprintf(stderr,
			"run-measure: --device-of %s: its file system is on device %u:%u, which "
			"has "
			"no block statistics (%s: %s; tmpfs, overlayfs, btrfs and network file "
			"systems have none)\n",
			path, major(st.st_dev), minor(st.st_dev), stat_path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The wchar line of /proc/PID/io into WCHAR, for PID exited but not yet
 * reaped; 0, or -1 (nothing said: the figure is left out).
 */
static int proc_wchar(pid_t pid, unsigned long long *wchar)
{
	char path[64], line[128];
	FILE *f_in;
	int found = -1;

	snprintf(path, sizeof(path), "/proc/%ld/io", (long)pid);
	f_in = fopen(path, "r");
	if (!f_in)
		return -1;
	while (fgets(line, sizeof(line), f_in))
		if (sscanf(line, "wchar: %llu", wchar) == 1) {
			found = 0;
			break;
		}
	fclose(f_in);
	return found;
}

/* Sectors written so far (field 7 of STAT_PATH) into SECTORS; 0 or -1. */
static int device_sectors(const char *stat_path, unsigned long long *sectors)
{
	unsigned long long f[7];
	FILE *f_in;
	int n;

	f_in = fopen(stat_path, "r");
	if (!f_in) {
		fprintf(stderr, "run-measure: %s: %s\n", stat_path, strerror(errno));
		return -1;
	}
	n = fscanf(f_in, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4],
		   &f[5], &f[6]);
	fclose(f_in);
	if (n != 7) {
		fprintf(stderr, "run-measure: %s: not 7 numbers at its start\n", stat_path);
		return -1;
	}
	*sectors = f[6];
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long long sect0 = 0, sect1 = 0, wchar = 0;
	const char *device_of = NULL, *outfile;
	char stat_path[64];
	struct rusage ru;
	double start, wall;
	int status, rc, ai = 1, dev_ok = 1, wchar_ok;
	siginfo_t si;
	pid_t pid;
	FILE *f;

	if (argc > 1 && strcmp(argv[1], "--device-of") == 0) {
		if (argc < 3) {
			fputs("run-measure: --device-of needs a PATH\n", stderr);
			usage();
			return 2;
		}
		device_of = argv[2];
		ai = 3;
	}
	if (argc - ai < 3 || strcmp(argv[ai + 1], "--") != 0) {
		usage();
		return 2;
	}
	outfile = argv[ai];
	if (device_of) {
		if (device_stat_path(device_of, stat_path, sizeof(stat_path)) != 0)
			return 2;
		/* What earlier commands left dirty is written now, not counted. */
		sync();
		if (device_sectors(stat_path, &sect0) != 0)
			return 2;
	}
	start = now();
	pid = fork();
	if (pid < 0) {
		perror("run-measure: fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[ai + 2], argv + ai + 2);
		fprintf(stderr, "run-measure: %s: %s\n", argv[ai + 2], strerror(errno));
		_exit(127);
	}
	/* The terminal's ^C goes to both; let the child decide. */
	signal(SIGINT, SIG_IGN);
	/* Exited but left a zombie, so that its /proc/PID/io can be read. */
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0) {
		if (errno != EINTR) {
			perror("run-measure: waitid");
			return 1;
		}
	}
	wchar_ok = proc_wchar(pid, &wchar) == 0;
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
	if (device_of) {
		/* The command's writeback (and the journal commits) counted. */
		sync();
		if (device_sectors(stat_path, &sect1) != 0)
			dev_ok = 0;
	}

	f = fopen(outfile, "w");
	if (!f) {
		fprintf(stderr, "run-measure: %s: %s\n", outfile, strerror(errno));
		return rc ? rc : 1;
	}
	fprintf(f, "wall %.3f\ncpu %.3f\nuser %.3f\nsys %.3f\nmaxrss_kib %ld\nwritten_bytes %lld\n",
		wall, tv(&ru.ru_utime) + tv(&ru.ru_stime), tv(&ru.ru_utime), tv(&ru.ru_stime),
		ru.ru_maxrss, (long long)ru.ru_oublock * 512);
	if (device_of && dev_ok)
		fprintf(f, "device_written_bytes %llu\n", (sect1 - sect0) * 512);
	if (wchar_ok)
		fprintf(f, "wchar %llu\n", wchar);
	fprintf(f, "status %d\n", rc);
	if (fclose(f) != 0) {
		fprintf(stderr, "run-measure: %s: %s\n", outfile, strerror(errno));
		return rc ? rc : 1;
	}
	if (!dev_ok)
		return rc ? rc : 1;
	return rc;
}
