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
 *
 * With --cpm C it writes a CPM chat history instead (tests/bench/
 * bench-cpm.sh): N objects over C conversations under Default/ of a
 * Maildir++ root (folder A/B is the directory .A.B): 1-to-1 chats in
 * Default/tel:+1555NNNNNNN, and every tenth conversation a group chat with
 * two session folders Default/conv-S-C/sess-0 and sess-1, each opened by a
 * session-info object.  About 1 object in 5 is an IMDN report (delivered or
 * displayed) on the conversation's previous object; the others are CPIM
 * chat messages, sent or received, of 20-600 characters.  --plain writes
 * the same files (names, folders, sizes, dates, flags) as plain mail, the
 * twin the CPM set's sync time is compared with; --list-folders prints the
 * folder names (parents first) and writes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
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
	      "       bench-gen --cpm C [--plain | --list-folders] [--seed S] MAILDIR N\n"
	      "\n"
	      "Writes N messages (numbered K, K+1, ...; K defaults to 1) as Maildir\n"
	      "files into DIR/cur (DIR and DIR/cur, new, tmp are created if missing),\n"
	      "and prints their total size in bytes, then the same with CRLF line\n"
	      "ends (as IMAP sends them).  Message number and seed (default 1)\n"
	      "determine each message.\n"
	      "\n"
	      "--cpm C: N CPM objects over C conversations under Default/ of the\n"
	      "Maildir++ root MAILDIR (see the top of bench-gen.c); --plain: the same\n"
	      "files as plain mail; --list-folders: print the folder names only.\n",
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

/* ---- CPM mode ---------------------------------------------------------- */

#define CPM_OWN "tel:+15550000000"

struct cpm_gen {
	uint64_t seed, convs, n;
	bool plain;
	const char *root;
	uint64_t total, total_crlf;
};

static bool cpm_group(uint64_t c)
{
	return c % 10 == 9;
}

/* Objects of conversation c (object k, 1-based, is in conversation
 * (k - 1) % convs, its (k - 1) / convs-th). */
static uint64_t cpm_per_conv(const struct cpm_gen *g, uint64_t c)
{
	return g->n / g->convs + (c < g->n % g->convs);
}

/* The session (0 or 1) of a group conversation's i-th object. */
static unsigned cpm_session(const struct cpm_gen *g, uint64_t c, uint64_t i)
{
	return 2 * i >= cpm_per_conv(g, c);
}

static void cpm_folder(const struct cpm_gen *g, uint64_t c, uint64_t i, char *out, size_t size)
{
	if (cpm_group(c))
		snprintf(out, size, "Default/conv-%" PRIu64 "-%" PRIu64 "/sess-%u", g->seed, c,
			 cpm_session(g, c, i));
	else
		snprintf(out, size, "Default/tel:+1555%07" PRIu64, c);
}

static void cpm_list_folders(const struct cpm_gen *g)
{
	printf("Default\n");
	for (uint64_t c = 0; c < g->convs; c++) {
		if (cpm_group(c)) {
			printf("Default/conv-%" PRIu64 "-%" PRIu64 "\n", g->seed, c);
			for (unsigned s = 0; s < 2; s++)
				printf("Default/conv-%" PRIu64 "-%" PRIu64 "/sess-%u\n", g->seed, c,
				       s);
		} else {
			printf("Default/tel:+1555%07" PRIu64 "\n", c);
		}
	}
}

/* words up to len bytes (no newline), returns the length written */
static size_t cpm_text(char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *w = words[rnd() & 31];
		size_t wl = strlen(w);

		if (i && i < len)
			p[i++] = ' ';
		if (wl > len - i)
			wl = len - i;
		memcpy(p + i, w, wl);
		i += wl;
	}
	return i;
}

#define APPEND(...) (len += (size_t)snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__))

/* Object k into buf (at most size bytes); returns its length, or 0. */
static size_t cpm_object(const struct cpm_gen *g, uint64_t k, char *buf, size_t size,
			 const char **ret_flags)
{
	uint64_t c = (k - 1) % g->convs, i = (k - 1) / g->convs, r;
	bool group = cpm_group(c), info, report, sent;
	unsigned sess = group ? cpm_session(g, c, i) : 0;
	char date[64], peer[64], from[64], to[64], cid[64], contrib[64], text[700];
	time_t t = BASE_TIME + (time_t)k * 60;
	struct tm tm;
	size_t len = 0, tl;

	rng_state = g->seed * 0x100000001b3ULL ^ (k * 0x9e3779b97f4a7c15ULL);
	rnd();
	r = rnd();
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	info = group && (i == 0 || (sess == 1 && cpm_session(g, c, i - 1) == 0));
	report = !info && i > 0 && r % 5 == 0;
	sent = (r >> 8) & 1;
	if (group)
		snprintf(peer, sizeof(peer), "tel:+1666%04" PRIu64 "%03u", c % 10000,
			 (unsigned)((r >> 12) % 5));
	else
		snprintf(peer, sizeof(peer), "tel:+1555%07" PRIu64, c);
	snprintf(from, sizeof(from), "%s", sent ? CPM_OWN : peer);
	snprintf(to, sizeof(to), "%s", sent ? peer : CPM_OWN);
	snprintf(cid, sizeof(cid), "conv-%" PRIu64 "-%" PRIu64, g->seed, c);
	if (group)
		snprintf(contrib, sizeof(contrib), "sess-%" PRIu64 "-%u", c, sess);
	else
		snprintf(contrib, sizeof(contrib), "c-%" PRIu64 "-%" PRIu64, c, i);
	*ret_flags = (r >> 20) % 5 == 0 ? "" : "S";

	APPEND("Date: %s\nFrom: %s\nTo: %s\nMessage-ID: <cpm-%" PRIu64 "-%" PRIu64
	       "@bench.example>\nMIME-Version: 1.0\n",
	       date, from, info ? "sip:conf-factory@bench.example" : to, g->seed, k);
	if (info) {
		APPEND("Subject: group %" PRIu64 " session %u\nContent-Type: "
		       "Application/X-CPM-Session\nConversation-ID: %s\nContribution-ID: %s\n"
		       "Message-Direction: sent\n\n<session>\n  "
		       "<session-type>Group</session-type>\n"
		       "  <invited-participants>",
		       c, sess, cid, contrib);
		for (unsigned p = 0; p < 5; p++)
			APPEND("%stel:+1666%04" PRIu64 "%03u", p ? ";" : "", c % 10000, p);
		APPEND("</invited-participants>\n</session>\n");
		return len < size ? len : 0;
	}
	APPEND("Content-Type: Message/CPIM\nConversation-ID: %s\nContribution-ID: %s\n"
	       "IMDN-Message-ID: %s-%" PRIu64 "-%" PRIu64 "\nMessage-Direction: %s\n\n",
	       cid, contrib, report ? "rp" : "im", c, i, sent ? "sent" : "received");
	APPEND("From: <%s>\nTo: <%s>\nNS: imdn <urn:ietf:params:imdn>\nDateTime: "
	       "%04d-%02d-%02dT%02d:%02d:%02dZ\n",
	       from, to, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	       tm.tm_sec);
	if (report) {
		bool displayed = (r >> 24) & 1;

		APPEND("\nContent-Type: message/imdn+xml; charset=utf-8\n"
		       "Content-Disposition: notification\n\n"
		       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\">\n"
		       "  <message-id>im-%" PRIu64 "-%" PRIu64 "</message-id>\n"
		       "  <datetime>%04d-%02d-%02dT%02d:%02d:%02dZ</datetime>\n"
		       "  <%s-notification><status><%s/></status></%s-notification>\n</imdn>\n",
		       c, i - 1, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		       tm.tm_min, tm.tm_sec, displayed ? "display" : "delivery",
		       displayed ? "displayed" : "delivered", displayed ? "display" : "delivery");
		return len < size ? len : 0;
	}
	tl = cpm_text(text, 20 + (size_t)((r >> 32) % 581));
	APPEND("imdn.Message-ID: im-%" PRIu64 "-%" PRIu64 "\n"
	       "imdn.Disposition-Notification: positive-delivery, display\n\n"
	       "Content-Type: text/plain; charset=utf-8\n\n%.*s\n",
	       c, i, (int)tl, text);
	return len < size ? len : 0;
}

/* The plain-mail twin of a CPM object of cpm_len bytes: the same size. */
static size_t cpm_plain_twin(const struct cpm_gen *g, uint64_t k, size_t cpm_len, char *buf,
			     size_t size)
{
	time_t t = BASE_TIME + (time_t)k * 60;
	struct tm tm;
	char date[64];
	size_t len = 0;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	APPEND("Date: %s\nFrom: %s <%s@bench.example>\nTo: %s <%s@bench.example>\n"
	       "Message-ID: <cpm-%" PRIu64 "-%" PRIu64 "@bench.example>\n"
	       "Subject: plain twin %" PRIu64 "\nMIME-Version: 1.0\n"
	       "Content-Type: text/plain; charset=us-ascii\n\n",
	       date, names[k & 7], names[k & 7], names[(k >> 3) & 7], names[(k >> 3) & 7], g->seed,
	       k, k);
	if (len + 1 > cpm_len || cpm_len > size)
		return 0;
	fill_body(buf + len, cpm_len - len);
	return cpm_len;
}
#undef APPEND

static int write_file(const char *path, const char *data, size_t size, time_t t)
{
	struct timespec ts[2] = { { .tv_sec = t }, { .tv_sec = t } };
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		fprintf(stderr, "bench-gen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (write(fd, data, size) != (ssize_t)size) {
		fprintf(stderr, "bench-gen: write %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	futimens(fd, ts); /* the file's mtime is the message's INTERNALDATE */
	if (close(fd) < 0) {
		fprintf(stderr, "bench-gen: close %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int cpm_generate(struct cpm_gen *g)
{
	static char obj[16384], twin[16384];
	char folder[256], path[4096];

	for (uint64_t k = 1; k <= g->n; k++) {
		uint64_t c = (k - 1) % g->convs, i = (k - 1) / g->convs;
		const char *flags = "";
		size_t size = cpm_object(g, k, obj, sizeof(obj), &flags), lines = 0, n;
		const char *data = obj;
		char dir[512];

		if (!size) {
			fprintf(stderr, "bench-gen: object %" PRIu64 " is too large\n", k);
			return -1;
		}
		if (g->plain) {
			if (!cpm_plain_twin(g, k, size, twin, sizeof(twin))) {
				fprintf(stderr,
					"bench-gen: object %" PRIu64 " too small for a twin\n", k);
				return -1;
			}
			data = twin;
		}
		for (size_t j = 0; j < size; j++)
			lines += data[j] == '\n';
		cpm_folder(g, c, i, folder, sizeof(folder));
		n = (size_t)snprintf(dir, sizeof(dir), "%s/.", g->root);
		for (const char *p = folder; *p && n + 1 < sizeof(dir); p++)
			dir[n++] = *p == '/' ? '.' : *p;
		dir[n] = '\0';
		{ /* mkdir -p of a folder seen before: EEXIST, cheap */
			static const char *const sub[4] = { "", "/cur", "/new", "/tmp" };

			for (unsigned s = 0; s < 4; s++) {
				snprintf(path, sizeof(path), "%s%s", dir, sub[s]);
				if (mkdir(path, 0700) < 0 && errno != EEXIST) {
					fprintf(stderr, "bench-gen: mkdir %s: %s\n", path,
						strerror(errno));
					return -1;
				}
			}
		}
		snprintf(path, sizeof(path),
			 "%s/cur/%lld.M%" PRIu64 "P%" PRIu64 ".benchcpm,S=%zu,W=%zu:2,%s", dir,
			 (long long)(BASE_TIME + (time_t)k * 60), k, g->seed, size, size + lines,
			 flags);
		if (write_file(path, data, size, BASE_TIME + (time_t)k * 60) < 0)
			return -1;
		g->total += size;
		g->total_crlf += size + lines;
	}
	printf("%" PRIu64 " %" PRIu64 "\n", g->total, g->total_crlf);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[MAX_SIZE + 4096];
	uint64_t seed = 1, first = 1, n, k, total = 0, total_crlf = 0;
	const char *dir;
	char path[4096];
	int i = 1;

	struct cpm_gen g = { 0 };
	bool list = false, cpm = false;

	while (i < argc && argv[i][0] == '-' && argv[i][1] == '-') {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--plain") == 0 || strcmp(argv[i], "--list-folders") == 0) {
			*(argv[i][2] == 'p' ? &g.plain : &list) = true;
			i++;
			continue;
		}
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--seed") == 0)
			seed = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--first") == 0)
			first = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--cpm") == 0) {
			g.convs = strtoull(argv[i + 1], NULL, 10);
			cpm = true;
		} else
			break;
		i += 2;
	}
	if (argc - i != 2) {
		usage(stderr);
		return 2;
	}
	dir = argv[i];
	n = strtoull(argv[i + 1], NULL, 10);
	if (cpm || g.plain || list) {
		if (!g.convs || g.convs > 9999999 || (g.plain && list)) {
			usage(stderr);
			return 2;
		}
		g.seed = seed;
		g.n = n;
		g.root = dir;
		if (list) {
			cpm_list_folders(&g);
			return 0;
		}
		return cpm_generate(&g) < 0 ? 1 : 0;
	}

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
