/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * preview-bench: times image previews made the way cpm-syncd makes them
 * (cpmsync_preview_image(): memfd, fork + exec of cpm-preview with its
 * limits and sandbox, decode, scale, encode, reap), for
 * tests/bench/bench-preview.sh.
 *
 *   preview-bench HELPER FILE FORMAT WIDTH HEIGHT RUNS [OUT [PAUSE_MS]]
 *   preview-bench --base64 FILE RUNS
 *
 * The second form times the step before the helper when the image is a
 * part of a stored message: FILE as a mail has it (base64, lines of 76 and
 * CRLF) decoded by transfer_decode() as cpmsync_preview() does, RUNS
 * times: base64_ms_min/median, base64_cpu_ms_per_run.
 *
 * PAUSE_MS between previews (default 0) lets the spare helper that the
 * library starts ahead finish starting, as between a user's previews;
 * with 0 the next preview competes with the spare's start-up.
 *
 * Prints, one "key value" a line: runs, the wall time per preview (min,
 * median, max, ms), the helper's CPU time per run (ms) and its peak RSS
 * (KiB; getrusage(RUSAGE_CHILDREN): the helpers are this program's only
 * children), the preview's size in bytes, and every run's wall time in the
 * order run (wall_ms_each).  OUT keeps the last preview.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/io.h>
#include <cpmsync/preview.h>

#include "util/base64.h"
#include "util/buf.h"
#include "util/transfer.h"

struct result {
	bool done;
	int r;
	char reason[512];
	char *data;
	size_t len;
};

static void cb(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct result *res = userdata;

	(void)size;
	res->done = true;
	res->r = r;
	snprintf(res->reason, sizeof(res->reason), "%s", reason ? reason : "");
	if (r == 0) {
		res->r = cpmsync_read_all(fd, 64u << 20, &res->data, &res->len);
		close(fd);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
	       (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

static int bench_base64(const char *file, long runs)
{
	struct buf mail = BUF_INIT(128u << 20);
	char *data = NULL, *enc = NULL;
	size_t len = 0, elen;
	double *ms, cpu = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || cpmsync_read_all(fd, 64u << 20, &data, &len) < 0)
		return perror(file), 2;
	close(fd);
	if (base64_encode(data, len, &enc) < 0)
		return fprintf(stderr, "preview-bench: base64_encode failed\n"), 1;
	elen = strlen(enc);
	for (size_t i = 0; i < elen; i += 76)
		if (buf_append(&mail, enc + i, elen - i < 76 ? elen - i : 76) < 0 ||
		    buf_append(&mail, "\r\n", 2) < 0)
			return fprintf(stderr, "preview-bench: out of memory\n"), 1;
	ms = calloc((size_t)runs, sizeof(double));
	if (!ms)
		return fprintf(stderr, "preview-bench: out of memory\n"), 1;
	for (long i = 0; i < runs; i++) {
		struct buf out = BUF_INIT(CPMSYNC_PREVIEW_MAX_INPUT);
		double t0 = now_ms(), c0 = cpu_ms();

		int r = transfer_decode(TRANSFER_BASE64, mail.data, mail.len, &out);

		ms[i] = now_ms() - t0;
		cpu += cpu_ms() - c0;
		if (r < 0 || out.len != len || memcmp(out.data, data, len) != 0)
			return fprintf(stderr, "preview-bench: base64 decoded wrong\n"), 1;
		buf_free(&out);
	}
	qsort(ms, (size_t)runs, sizeof(double), cmp_double);
	printf("base64_bytes %zu\n", mail.len);
	printf("base64_ms_min %.1f\n", ms[0]);
	printf("base64_ms_median %.1f\n", ms[runs / 2]);
	printf("base64_cpu_ms_per_run %.1f\n", cpu / (double)runs);
	free(ms);
	free(enc);
	free(data);
	buf_free(&mail);
	return 0;
}

int main(int argc, char **argv)
{
	struct cpmsync_previewer *p = NULL;
	struct cpmsync_loop *loop = NULL;
	struct rusage ru;
	char *data = NULL;
	size_t len = 0;
	double *ms, *each;
	long runs;
	int fd;

	if (argc == 4 && strcmp(argv[1], "--base64") == 0) {
		runs = strtol(argv[3], NULL, 10);
		if (runs < 1 || runs > 10000)
			return fprintf(stderr, "preview-bench: RUNS 1..10000\n"), 2;
		return bench_base64(argv[2], runs);
	}
	if (argc < 7 || argc > 9) {
		fprintf(stderr, "usage: preview-bench HELPER FILE FORMAT WIDTH HEIGHT RUNS [OUT "
				"[PAUSE_MS]]\n");
		return 2;
	}
	runs = strtol(argv[6], NULL, 10);
	if (runs < 1 || runs > 10000)
		return fprintf(stderr, "preview-bench: RUNS 1..10000\n"), 2;
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || cpmsync_read_all(fd, 64u << 20, &data, &len) < 0)
		return perror(argv[2]), 2;
	close(fd);
	if (cpmsync_loop_new(&loop) < 0 || cpmsync_previewer_new(loop, NULL, argv[1], &p) < 0)
		return fprintf(stderr, "preview-bench: setup failed\n"), 1;
	ms = calloc((size_t)runs, sizeof(double));
	each = calloc((size_t)runs, sizeof(double));
	if (!ms || !each)
		return fprintf(stderr, "preview-bench: out of memory\n"), 1;
	for (long i = 0; i < runs; i++) {
		struct result res = { 0 };
		double t0;
		int r;

		if (argc == 9 && i > 0) {
			double until = now_ms() + atof(argv[8]);

			/* the loop runs meanwhile: the spare's exit is reaped */
			while (now_ms() < until)
				cpmsync_loop_iterate(loop, 10);
		}
		t0 = now_ms();
		r = cpmsync_preview_image(p, data, len, argv[3], (uint32_t)atoi(argv[4]),
					  (uint32_t)atoi(argv[5]), cb, &res);

		while (r >= 0 && !res.done)
			r = cpmsync_loop_iterate(loop, 1000);
		ms[i] = each[i] = now_ms() - t0;
		if (r < 0 || res.r < 0) {
			fprintf(stderr, "preview-bench: %s\n", r < 0 ? "loop failed" : res.reason);
			return 1;
		}
		if (i == runs - 1) {
			printf("preview_bytes %zu\n", res.len);
			if (argc >= 8) {
				FILE *f = fopen(argv[7], "wb");

				if (!f || fwrite(res.data, 1, res.len, f) != res.len || fclose(f))
					return perror(argv[7]), 1;
			}
		}
		free(res.data);
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	qsort(ms, (size_t)runs, sizeof(double), cmp_double);
	printf("runs %ld\n", runs);
	printf("wall_ms_min %.1f\n", ms[0]);
	printf("wall_ms_median %.1f\n", ms[runs / 2]);
	printf("wall_ms_max %.1f\n", ms[runs - 1]);
	printf("helper_cpu_ms_per_run %.1f\n",
	       ((double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
		(double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3) /
		       (double)runs);
	printf("helper_peak_rss_kib %ld\n", ru.ru_maxrss);
	/* every run's time in the order run, for merging several sittings */
	printf("wall_ms_each");
	for (long i = 0; i < runs; i++)
		printf(" %.1f", each[i]);
	printf("\n");
	free(each);
	free(ms);
	free(data);
	cpmsync_previewer_free(p);
	cpmsync_loop_free(loop);
	return 0;
}
