/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench-gen: writes N RFC 5322 messages straight into a Maildir folder
 * (DIR/cur, with ":2," info), for benchmarks.  Deterministic: the same
 * seed and numbers give the same messages and file names.  Sizes are
 * uniform in 1-20 KiB, about 1 in 4 messages carries a Conversation-ID
 * header, about 1 in 5 is \Seen and 1 in 20 \Flagged.  The file names
 * carry S= (size) and W= (size with CRLF line ends), so that Dovecot need
 * not read the files to learn their sizes.  The caller fixes ownership
 * and lets the server index the folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE  (20 * 1024)
#define MIN_SIZE  1024
#define BASE_TIME 1704067200 /* 2024-01-01T00:00:00Z */

static uint64_t rng_state;

/* splitmix64: small, fast, good enough for test data. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *const words[32] = {
	"lorem",  "ipsum",   "dolor",	"sit",	     "amet",	     "consectetur", "adipiscing",
	"elit",	  "sed",     "do",	"eiusmod",   "tempor",	     "incididunt",  "ut",
	"labore", "et",	     "dolore",	"magna",     "aliqua",	     "enim",	    "ad",
	"minim",  "veniam",  "quis",	"nostrud",   "exercitation", "ullamco",	    "laboris",
	"nisi",	  "aliquip", "commodo", "consequat",
};

static const char *const names[8] = {
	"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
};

static void usage(FILE *f)
{
	fputs("Usage: bench-gen [--seed S] [--first K] DIR N\n"
	      "\n"
	      "Writes N messages (numbered K, K+1, ...; K defaults to 1) as Maildir\n"
	      "files into DIR/cur (DIR and DIR/cur, new, tmp are created if missing),\n"
	      "and prints their total size in bytes, then the same with CRLF line\n"
	      "ends (as IMAP sends them).  Message number and seed (default 1)\n"
	      "determine each message.\n",
	      f);
}

/* The body: lines of words up to 72 columns, exactly len bytes, ending
 * with '\n' (len >= 1). */
static size_t fill_body(char *p, size_t len)
{
	size_t i = 0, col = 0;

	while (i < len - 1) {
		uint64_t r = rnd();
		int k;

		for (k = 0; k < 12 && i < len - 1; k++, r >>= 5) {
			const char *w = words[r & 31];
			size_t wl = strlen(w);

			if (col + wl + 1 > 72) {
				p[i++] = '\n';
				col = 0;
				continue;
			}
			if (col) {
				p[i++] = ' ';
				col++;
			}
			if (wl > len - 1 - i)
				wl = len - 1 - i;
			memcpy(p + i, w, wl);
			i += wl;
			col += wl;
		}
	}
	p[len - 1] = '\n';
	return len;
}

/* mkdir -p */
static int mkdir_p(const char *dir)
{
	char path[4096];
	size_t i, len = strlen(dir);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		path[i] = dir[i];
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[MAX_SIZE + 4096];
	uint64_t seed = 1, first = 1, n, k, total = 0, total_crlf = 0;
	const char *dir;
	char path[4096];
	int i = 1;

	while (i < argc && argv[i][0] == '-' && argv[i][1] == '-') {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--seed") == 0)
			seed = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--first") == 0)
			first = strtoull(argv[i + 1], NULL, 10);
		else
			break;
		i += 2;
	}
	if (argc - i != 2) {
		usage(stderr);
		return 2;
	}
	dir = argv[i];
	n = strtoull(argv[i + 1], NULL, 10);

	if (mkdir_p(dir) < 0) {
		fprintf(stderr, "bench-gen: mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	for (k = 0; k < 3; k++) {
		static const char *const sub[3] = { "cur", "new", "tmp" };

		snprintf(path, sizeof(path), "%s/%s", dir, sub[k]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "bench-gen: mkdir %s: %s\n", path, strerror(errno));
			return 1;
		}
	}

	for (k = first; k < first + n; k++) {
		size_t size, hlen, lines = 0, j;
		time_t t = BASE_TIME + (time_t)k * 60;
		struct tm tm;
		char date[64];
		const char *flags;
		struct timespec ts[2];
		uint64_t r;
		int fd, len;

		/* One stream per message: message k is the same whatever
		 * range it was generated in. */
		rng_state = seed * 0x100000001b3ULL ^ k;
		rnd();
		r = rnd();
		size = MIN_SIZE + (size_t)(r % (MAX_SIZE - MIN_SIZE + 1));
		r = rnd();
		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		len = snprintf(buf, sizeof(buf),
			       "Message-ID: <bench-%" PRIu64 "-%" PRIu64 "@bench.example>\n"
			       "Date: %s\n"
			       "From: %s <%s@bench.example>\n"
			       "To: %s <%s@bench.example>\n"
			       "Subject: Benchmark message %" PRIu64 " (%s %s)\n",
			       seed, k, date, names[r & 7], names[r & 7], names[(r >> 3) & 7],
			       names[(r >> 3) & 7], k, words[(r >> 6) & 31], words[(r >> 11) & 31]);
		if (((r >> 16) & 3) == 0)
			len += snprintf(buf + len, sizeof(buf) - (size_t)len,
					"Conversation-ID: conv-%" PRIu64 "-%" PRIu64 "\n", seed,
					(r >> 20) % 500);
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
				"MIME-Version: 1.0\n"
				"Content-Type: text/plain; charset=us-ascii\n\n");
		hlen = (size_t)len;
		if (size < hlen + 1)
			size = hlen + 1;
		fill_body(buf + hlen, size - hlen);
		for (j = 0; j < size; j++)
			lines += buf[j] == '\n';

		switch ((r >> 40) % 20) {
		case 0:
			flags = "F";
			break;
		case 1:
		case 2:
		case 3:
			flags = "S";
			break;
		case 4:
			flags = "FS";
			break;
		default:
			flags = "";
		}
		snprintf(path, sizeof(path),
			 "%s/cur/%lld.M%" PRIu64 "P%" PRIu64 ".bench,S=%zu,W=%zu:2,%s", dir,
			 (long long)t, k, seed, size, size + lines, flags);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "bench-gen: %s: %s\n", path, strerror(errno));
			return 1;
		}
		if (write(fd, buf, size) != (ssize_t)size) {
			fprintf(stderr, "bench-gen: write %s: %s\n", path, strerror(errno));
			close(fd);
			return 1;
		}
		/* The file's mtime is the message's INTERNALDATE. */
		ts[0].tv_sec = ts[1].tv_sec = t;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		futimens(fd, ts);
		if (close(fd) < 0) {
			fprintf(stderr, "bench-gen: close %s: %s\n", path, strerror(errno));
			return 1;
		}
		total += size;
		total_crlf += size + lines;
	}
	printf("%" PRIu64 " %" PRIu64 "\n", total, total_crlf);
	return 0;
}
