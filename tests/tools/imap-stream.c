/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap-stream: the reference time for benchmarks -- how long the server
 * takes to stream a folder's bodies to a client that throws them away.
 * Plaintext IMAP (loopback only): LOGIN, SELECT FOLDER,
 * UID FETCH 1:* (BODY.PEEK[]), LOGOUT; literals are skipped without being
 * looked at.  Prints "key value" lines: bytes_in, bytes_out, messages,
 * literal_bytes, seconds (connect to LOGOUT) and fetch_seconds.
 *
 * With --qresync UIDVALIDITY MODSEQ it is the floor of a resync instead:
 * LOGIN, ENABLE QRESYNC, SELECT FOLDER (QRESYNC (UIDVALIDITY MODSEQ)),
 * LOGOUT -- what the server must do for any client to learn what changed
 * since MODSEQ.  It prints seconds (the whole session), select_seconds
 * (the SELECT alone) and messages (the FETCH responses it sent).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (256 * 1024)

static int fd = -1;
static char rbuf[RBUF_SIZE];
static size_t rpos, rlen;
static uint64_t bytes_in, bytes_out, messages, literal_bytes;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "imap-stream: %s\n", what);
	exit(1);
}

static void send_all(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("send failed");
		s += n;
		len -= (size_t)n;
		bytes_out += (uint64_t)n;
	}
}

static void fill(void)
{
	ssize_t n;

	do
		n = recv(fd, rbuf, sizeof(rbuf), 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		die("connection closed by the server");
	rpos = 0;
	rlen = (size_t)n;
	bytes_in += (uint64_t)n;
}

/* The next line, up to and including its '\n' (cut at size - 1 bytes: the
 * rest of an overlong line is read as further lines). */
static size_t read_line(char *line, size_t size)
{
	size_t len = 0;

	for (;;) {
		char *nl;
		size_t take;

		if (rpos == rlen)
			fill();
		nl = memchr(rbuf + rpos, '\n', rlen - rpos);
		take = nl ? (size_t)(nl - (rbuf + rpos)) + 1 : rlen - rpos;
		if (take > size - 1 - len)
			take = size - 1 - len;
		memcpy(line + len, rbuf + rpos, take);
		rpos += take;
		len += take;
		if ((len > 0 && line[len - 1] == '\n') || len == size - 1)
			break;
	}
	line[len] = '\0';
	return len;
}

static void skip_bytes(uint64_t n)
{
	while (n > 0) {
		size_t take;

		if (rpos == rlen)
			fill();
		take = rlen - rpos;
		if (take > n)
			take = (size_t)n;
		rpos += take;
		n -= take;
	}
}

/* Literal size if the line ends with {N}\r\n (or {N+}), else -1. */
static int64_t literal_at_end(const char *line, size_t len)
{
	const char *p;

	if (len < 4 || strcmp(line + len - 3, "}\r\n") != 0)
		return -1;
	p = line + len - 4;
	if (*p == '+')
		p--;
	while (p > line && *p >= '0' && *p <= '9')
		p--;
	if (*p != '{')
		return -1;
	return strtoll(p + 1, NULL, 10);
}

/* Reads responses until the tagged one; returns true for OK. */
static bool wait_tagged(const char *tag)
{
	static char line[8192];
	size_t tl = strlen(tag);
	bool start = true;

	for (;;) {
		size_t len = read_line(line, sizeof(line));
		int64_t lit = literal_at_end(line, len);

		if (start && strncmp(line, tag, tl) == 0 && line[tl] == ' ')
			return strncmp(line + tl + 1, "OK", 2) == 0;
		if (start && strncmp(line, "* ", 2) == 0 && strstr(line, " FETCH "))
			messages++;
		if (lit >= 0) {
			skip_bytes((uint64_t)lit);
			literal_bytes += (uint64_t)lit;
			start = false;
		} else {
			start = true;
		}
	}
}

/* s as an IMAP quoted string. */
static void quote(char *out, size_t size, const char *s)
{
	size_t o = 0;

	out[o++] = '"';
	for (; *s && o + 3 < size; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = '\0';
}

int main(int argc, char **argv)
{
	char user[1024], pass[1024], folder[1024], cmd[4096], line[1024];
	struct sockaddr_in sin;
	const char *qr_uidvalidity = NULL, *qr_modseq = NULL;
	double t0, t1, t2;
	FILE *pf;

	if (argc == 9 && strcmp(argv[6], "--qresync") == 0) {
		qr_uidvalidity = argv[7];
		qr_modseq = argv[8];
		if (strspn(qr_uidvalidity, "0123456789") != strlen(qr_uidvalidity) ||
		    strspn(qr_modseq, "0123456789") != strlen(qr_modseq))
			die("--qresync takes two numbers");
	} else if (argc != 6) {
		fputs("Usage: imap-stream HOST PORT USER PASSWORD_FILE FOLDER [--qresync "
		      "UIDVALIDITY MODSEQ]\n"
		      "  HOST is an IPv4 address (plaintext LOGIN: use loopback).\n",
		      stderr);
		return 2;
	}
	pf = fopen(argv[4], "r");
	if (!pf || !fgets(line, sizeof(line), pf))
		die("cannot read the password file");
	fclose(pf);
	line[strcspn(line, "\r\n")] = '\0';
	quote(pass, sizeof(pass), line);
	quote(user, sizeof(user), argv[3]);
	quote(folder, sizeof(folder), argv[5]);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1)
		die("HOST must be an IPv4 address");

	t0 = now();
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		die("cannot connect");
	read_line(line, sizeof(line));
	if (strncmp(line, "* OK", 4) != 0)
		die("no greeting");

	snprintf(cmd, sizeof(cmd), "a LOGIN %s %s\r\n", user, pass);
	send_all(cmd, strlen(cmd));
	explicit_bzero(cmd, sizeof(cmd));
	explicit_bzero(pass, sizeof(pass));
	if (!wait_tagged("a"))
		die("LOGIN failed");
	if (qr_modseq) {
		send_all("e ENABLE QRESYNC\r\n", 18);
		if (!wait_tagged("e"))
			die("ENABLE QRESYNC failed");
		snprintf(cmd, sizeof(cmd), "b SELECT %s (QRESYNC (%s %s))\r\n", folder,
			 qr_uidvalidity, qr_modseq);
		t1 = now();
		messages = 0;
		send_all(cmd, strlen(cmd));
		if (!wait_tagged("b"))
			die("SELECT (QRESYNC) failed");
		t2 = now();
		send_all("d LOGOUT\r\n", 10);
		wait_tagged("d");
		close(fd);
		printf("bytes_in %" PRIu64 "\nbytes_out %" PRIu64 "\nmessages %" PRIu64
		       "\nseconds %.4f\nselect_seconds %.4f\n",
		       bytes_in, bytes_out, messages, now() - t0, t2 - t1);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "b SELECT %s\r\n", folder);
	send_all(cmd, strlen(cmd));
	if (!wait_tagged("b"))
		die("SELECT failed");

	t1 = now();
	messages = 0;
	send_all("c UID FETCH 1:* (BODY.PEEK[])\r\n", 31);
	if (!wait_tagged("c"))
		die("UID FETCH failed");
	t2 = now();

	send_all("d LOGOUT\r\n", 10);
	wait_tagged("d");
	close(fd);

	printf("bytes_in %" PRIu64 "\nbytes_out %" PRIu64 "\nmessages %" PRIu64
	       "\nliteral_bytes %" PRIu64 "\nseconds %.3f\nfetch_seconds %.3f\n",
	       bytes_in, bytes_out, messages, literal_bytes, now() - t0, t2 - t1);
	return 0;
}
