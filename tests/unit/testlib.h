/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A scripted IMAP peer for unit tests: a child process on one end of a
 * socketpair plays a script of steps (send bytes, expect a line, close,
 * stall), while the test drives the real client on the other end.  The
 * child exits 0 when the whole script ran as written; anything else
 * (a line that did not match, an unexpected line before close) makes it
 * exit non-zero with the reason on stderr, and script_peer_wait() returns
 * that status.
 */

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cpmsync/sync.h>

enum script_op {
	SCRIPT_END,
	SCRIPT_SEND,	   /* arg: bytes to send (CRLF not added) */
	SCRIPT_EXPECT,	   /* arg: the next line must start with this (CRLF stripped) */
	SCRIPT_CLOSE,	   /* close the connection */
	SCRIPT_STALL,	   /* read and discard until the peer closes; never answer */
	SCRIPT_EXPECT_EOF, /* the client must close without sending anything */
	SCRIPT_SLEEP,	   /* arg: milliseconds, as a decimal string */
	SCRIPT_SKIP,	   /* arg: bytes to read and drop, as a decimal string */
	/* TCP peers only: accept the client's next connection and play the
	 * rest of the script on it.  arg "close": the current one is closed
	 * first; "keep": it stays open and is never read or answered again
	 * (a dead path: what the client sends vanishes without a word). */
	SCRIPT_ACCEPT,
	/* TCP peers only: no new connection may come within arg
	 * milliseconds (a decimal string); one that does fails the peer. */
	SCRIPT_NO_ACCEPT,
};

struct script_step {
	enum script_op op;
	const char *arg;
};

struct script_peer {
	pid_t pid;
	int fd; /* the client's end */
};

/* Starts the peer; returns 0 or -errno. */
int script_peer_start(const struct script_step *script, struct script_peer *ret);
/* The same over TCP, for code that connects by host and port (a session):
 * the child accepts one connection on 127.0.0.1:*ret_port and plays the
 * script on it (ret->fd is -1). */
int script_peer_listen(const struct script_step *script, struct script_peer *ret,
		       uint16_t *ret_port);
/* Waits for the child; returns its exit status (0 when the script ran). */
int script_peer_wait(struct script_peer *peer);

/* rm -rf dir (a test's own temporary directory), links not followed;
 * what cannot be removed is left. */
void test_rm_rf(const char *dir);

/* Runs the loop until *done is true or timeout_ms passed; returns *done. */
struct cpmsync_loop;
struct cpmsync_store;
bool test_loop_run_until(struct cpmsync_loop *loop, const bool *done, unsigned timeout_ms);

/* A sync run's outcome: sync_result_cb() (a cpmsync_sync_cb_t) fills the
 * struct sync_result given as its userdata. */
struct cpmsync_sync_stats;
struct sync_result {
	bool done;
	int r;
	char reason[512]; /* as the engine's */
	struct cpmsync_sync_stats stats;
};
void sync_result_cb(int r, const char *reason, const struct cpmsync_sync_stats *stats,
		    void *userdata);

/* The first column of the first row of sql on s, as text ("(null)" for
 * NULL); the test fails if there is no row.  Valid until the next call. */
struct store;
const char *test_store_text(struct store *s, const char *sql);

/*
 * The set-up a test against a scripted peer shares: a loop, the peer
 * playing script (over a socketpair, or over TCP with TEST_ENV_TCP: then
 * env->port is where it listens and env->peer.fd is -1) and, with
 * TEST_ENV_STORE, a store in a fresh temporary directory (env->store).
 * script may be NULL: no peer.  Every step is asserted.
 */
enum {
	TEST_ENV_TCP = 1 << 0,
	TEST_ENV_STORE = 1 << 1,
};
struct test_env {
	unsigned flags;
	struct cpmsync_loop *loop;
	struct cpmsync_store *store;
	struct script_peer peer;
	bool has_peer;
	uint16_t port;
	char dir[64];
};
void test_env_start(struct test_env *env, const struct script_step *script, unsigned flags);
/* Once the client or session on the peer is freed: the peer must have run
 * its whole script (exit 0); with a store, the loop runs a few times for
 * what the freed session cancelled, then the store is closed and its
 * directory removed; the loop is freed last. */
void test_env_end(struct test_env *env);

/* Runs one suite with Check's defaults; the exit status for main(). */
int testlib_run_suite(Suite *suite);

/* How many times SQLite synced a WAL file to the disk (xSync) in this
 * process since test_wal_syncs_install(), which puts a counting VFS over
 * the default one for the connections opened after it. */
void test_wal_syncs_install(void);
unsigned long test_wal_syncs(void);
#define TEST_MAIN(suite_fn)                                                                        \
	int main(void)                                                                             \
	{                                                                                          \
		return testlib_run_suite(suite_fn());                                              \
	}
