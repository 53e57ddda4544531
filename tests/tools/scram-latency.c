/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * scram-latency [RUNS] [ITERATIONS]: how long the event loop stalls while
 * the IMAP client logs in with SCRAM-SHA-256 for the first time (nothing in
 * the SaltedPassword cache), against a small SCRAM server forked on a
 * socketpair that asks for ITERATIONS rounds (default: the largest the
 * client accepts) and checks the proof.  A 1 ms timer runs on the client's
 * loop; per login it prints the login's wall time, the longest gap between
 * two ticks (the loop's worst latency) and the number of ticks, and the
 * longest gap in the 200 ms before it, the loop idle (the machine's noise).  Run by
 * tests/bench/bench-scram.sh; informational, never part of make check.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cpmsync/cpmsync.h>

#include "imap/imap-client.h"
#include "imap/sasl.h"
#include "util/base64.h"

#define USER	 "alice"
#define PASSWORD "s3cret-pw"
#define SALT64	 "QSXCR+Q6sek8bf92"

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ */
/* The server (a child process) */

static int read_line(FILE *in, char *line, size_t size)
{
	size_t n;

	if (!fgets(line, (int)size, in))
		return -1;
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return 0;
}

static void hmac256(const unsigned char *key, const void *data, size_t len,
		    unsigned char out[SHA256_DIGEST_LENGTH])
{
	unsigned n = SHA256_DIGEST_LENGTH;

	HMAC(EVP_sha256(), key, SHA256_DIGEST_LENGTH, data, len, out, &n);
}

static int send_b64(int fd, const char *prefix, const char *msg)
{
	char *b64 = NULL;
	int r = base64_encode(msg, strlen(msg), &b64);

	if (r < 0)
		return r;
	r = dprintf(fd, "%s%s\r\n", prefix, b64) < 0 ? -EIO : 0;
	free(b64);
	return r;
}

static char *decode_line(const char *b64)
{
	void *raw = NULL;
	size_t len = 0;
	char *s;

	if (base64_decode(b64, strlen(b64), &raw, &len) < 0)
		return NULL;
	s = realloc(raw, len + 1);
	if (!s) {
		free(raw);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

static int serve(int fd, unsigned long iterations)
{
	unsigned char salted[SHA256_DIGEST_LENGTH], client_key[SHA256_DIGEST_LENGTH],
		stored_key[SHA256_DIGEST_LENGTH], client_sig[SHA256_DIGEST_LENGTH],
		server_key[SHA256_DIGEST_LENGTH], server_sig[SHA256_DIGEST_LENGTH];
	char line[8192], server_first[512], auth_msg[2048], final[256];
	const char *prefix = "a1 AUTHENTICATE SCRAM-SHA-256 ";
	char *first, *client_final, *p, *sig64 = NULL;
	void *salt = NULL, *proof = NULL;
	size_t salt_len = 0, proof_len = 0;
	FILE *in = fdopen(dup(fd), "r");

	if (!in || base64_decode(SALT64, strlen(SALT64), &salt, &salt_len) < 0)
		return 2;
	/* Before the greeting: the server's own PBKDF2 is not timed. */
	PKCS5_PBKDF2_HMAC(PASSWORD, (int)strlen(PASSWORD), salt, (int)salt_len, (int)iterations,
			  EVP_sha256(), SHA256_DIGEST_LENGTH, salted);
	dprintf(fd, "* OK [CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256 SASL-IR] hi\r\n");
	if (read_line(in, line, sizeof(line)) < 0 || strncmp(line, prefix, strlen(prefix)) != 0)
		return 3;
	first = decode_line(line + strlen(prefix));
	if (!first || strncmp(first, "n,,n=" USER ",r=", strlen("n,,n=" USER ",r=")) != 0)
		return 4;
	snprintf(server_first, sizeof(server_first), "r=%ssrv,s=%s,i=%lu", first + 8 + strlen(USER),
		 SALT64, iterations);
	if (send_b64(fd, "+ ", server_first) < 0 || read_line(in, line, sizeof(line)) < 0)
		return 5;
	client_final = decode_line(line);
	p = client_final ? strstr(client_final, ",p=") : NULL;
	if (!p)
		return 6;
	*p = '\0';
	snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%s", first + 3, server_first, client_final);
	hmac256(salted, "Client Key", 10, client_key);
	SHA256(client_key, sizeof(client_key), stored_key);
	hmac256(stored_key, auth_msg, strlen(auth_msg), client_sig);
	if (base64_decode(p + 3, strlen(p + 3), &proof, &proof_len) < 0 ||
	    proof_len != SHA256_DIGEST_LENGTH)
		return 7;
	for (size_t i = 0; i < proof_len; i++)
		((unsigned char *)proof)[i] ^= client_sig[i]; /* now ClientKey */
	if (CRYPTO_memcmp(proof, client_key, SHA256_DIGEST_LENGTH) != 0) {
		dprintf(fd, "a1 NO [AUTHENTICATIONFAILED] wrong proof\r\n");
		return 8;
	}
	hmac256(salted, "Server Key", 10, server_key);
	hmac256(server_key, auth_msg, strlen(auth_msg), server_sig);
	if (base64_encode(server_sig, sizeof(server_sig), &sig64) < 0)
		return 9;
	snprintf(final, sizeof(final), "v=%s", sig64);
	if (send_b64(fd, "+ ", final) < 0 || read_line(in, line, sizeof(line)) < 0 || line[0])
		return 10;
	dprintf(fd, "a1 OK [CAPABILITY IMAP4rev1] in\r\n");
	while (read_line(in, line, sizeof(line)) == 0)
		;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The client */

struct run {
	bool done;
	int r;
	char reason[256];
	uint64_t last_tick, max_gap, ticks;
};

static int password_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup(PASSWORD);
	return *ret ? 0 : -ENOMEM;
}

static void state_cb(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct run *run = userdata;

	(void)client;
	run->done = true;
	run->r = r;
	snprintf(run->reason, sizeof(run->reason), "%s", reason ? reason : "ready");
}

static void tick_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct run *run = userdata;
	uint64_t now = mono_us();

	(void)src;
	if (run->last_tick && now - run->last_tick > run->max_gap)
		run->max_gap = now - run->last_tick;
	run->last_tick = now;
	run->ticks++;
}

int main(int argc, char **argv)
{
	unsigned runs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 5;
	unsigned long iterations =
		argc > 2 ? strtoul(argv[2], NULL, 10) : SASL_SCRAM_MAX_ITERATIONS;
	uint64_t worst = 0;
	int status = 0;

	signal(SIGPIPE, SIG_IGN);
	printf("# scram-latency: %u first logins, %lu iterations, 1 ms timer on the loop\n", runs,
	       iterations);
	printf("%-4s %9s %12s %7s %12s %s\n", "run", "login_ms", "max_gap_ms", "ticks",
	       "idle_gap_ms", "result");
	for (unsigned i = 0; i < runs; i++) {
		struct imap_client_callbacks cb = { .state = state_cb };
		struct cpmsync_account a = {
			.name = "bench",
			.host = "localhost",
			.user = USER,
			.security = CPMSYNC_SECURITY_NONE,
			.password_cb = password_cb,
		};
		struct cpmsync_loop_source *timer = NULL;
		struct cpmsync_loop *loop = NULL;
		struct imap_client *client = NULL;
		struct run run = { 0 };
		uint64_t t0, idle_gap;
		int sv[2], wstatus;
		pid_t pid;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			perror("socketpair");
			return 1;
		}
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(sv[0]);
			_exit(serve(sv[1], iterations));
		}
		close(sv[1]);
		sasl_scram_cache_clear(); /* a first login each time */
		if (cpmsync_loop_new(&loop) < 0 ||
		    imap_client_new(loop, &a, &cb, &run, &client) < 0 ||
		    cpmsync_loop_add_timer(loop, 1, 1, tick_cb, &run, NULL, &timer) < 0) {
			fprintf(stderr, "scram-latency: cannot set up the client\n");
			return 1;
		}
		/* The greeting comes after the server's PBKDF2: wait for it
		 * before timing (the client reads nothing before connect). */
		{
			char c;

			if (recv(sv[0], &c, 1, MSG_PEEK) != 1) {
				fprintf(stderr, "scram-latency: no greeting\n");
				return 1;
			}
		}
		/* The noise floor: the same timer, nothing else to do. */
		run.last_tick = mono_us();
		for (t0 = run.last_tick; mono_us() - t0 < 200000;)
			cpmsync_loop_iterate(loop, 100);
		idle_gap = run.max_gap;
		run.max_gap = 0;
		run.ticks = 0;
		t0 = mono_us();
		run.last_tick = t0;
		if (imap_client_connect_fd(client, sv[0]) < 0) {
			fprintf(stderr, "scram-latency: cannot connect\n");
			return 1;
		}
		while (!run.done && mono_us() - t0 < 30000000)
			cpmsync_loop_iterate(loop, 100);
		t0 = mono_us() - t0;
		printf("%-4u %9.1f %12.1f %7llu %12.1f %s\n", i + 1, (double)t0 / 1000,
		       (double)run.max_gap / 1000, (unsigned long long)run.ticks,
		       (double)idle_gap / 1000, run.r == 0 ? "ok" : run.reason);
		if (run.r != 0 || !run.done)
			status = 1;
		if (run.max_gap > worst)
			worst = run.max_gap;
		cpmsync_loop_source_remove(timer);
		imap_client_free(client);
		cpmsync_loop_free(loop);
		if (waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus) ||
		    WEXITSTATUS(wstatus) != 0) {
			fprintf(stderr, "scram-latency: the server failed (status %d)\n", wstatus);
			status = 1;
		}
	}
	printf("# worst loop gap: %.1f ms\n", (double)worst / 1000);
	return status;
}
