/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One IMAP connection: connect (non-blocking), secure (implicit TLS or
 * STARTTLS, failing closed), authenticate (SCRAM-SHA-256 with the server's
 * signature verified, then PLAIN with SASL-IR, then LOGIN), re-read
 * CAPABILITY and ENABLE QRESYNC/CONDSTORE; then a tagged command queue with
 * pipelining, per-command callbacks, cancellation and deadlines.
 *
 * Everything runs on a cpmsync_loop.  Callbacks are called from the loop,
 * never from inside the call that queued the work.  What could block it runs
 * on a thread of its own: the name lookup, and SCRAM's PBKDF2 when the
 * SaltedPassword is not cached yet (the login waits meanwhile).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/account.h>
#include <cpmsync/loop.h>

#include "imap/imap-ns.h"
#include "imap/imap-parser.h"
#include "imap/imap-resp.h"
#include "imap/imap-seqset.h"

struct imap_client;

enum imap_client_state {
	IMAP_CLIENT_DISCONNECTED,
	IMAP_CLIENT_CONNECTING,
	IMAP_CLIENT_TLS_HANDSHAKE,
	IMAP_CLIENT_GREETING,
	IMAP_CLIENT_PREAUTH_CAPABILITY,
	IMAP_CLIENT_STARTTLS,
	IMAP_CLIENT_AUTHENTICATING,
	IMAP_CLIENT_POSTAUTH,
	IMAP_CLIENT_READY,
	IMAP_CLIENT_LOGOUT,
	IMAP_CLIENT_CLOSED,
	IMAP_CLIENT_STATE_MAX
};

const char *imap_client_state_name(enum imap_client_state s);

/*
 * The result of a command, borrowed during the callback.  r is 0 for OK,
 * -CPMSYNC_E_SERVER for NO or BAD (status says which), -CPMSYNC_E_AUTH for
 * a refused authentication, -CPMSYNC_E_DISCONNECTED or -CPMSYNC_E_BYE when
 * the connection went away with the command in flight, -ETIMEDOUT when the
 * server did not answer in time, -CPMSYNC_E_CANCELED when cancelled.
 * resp is the tagged response (NULL unless the server answered); text is
 * the server's text or a description of the local failure.
 */
struct imap_cmd_result {
	int r;
	enum imap_status status;
	const struct imap_response *resp;
	const char *text;
};

typedef void (*imap_cmd_cb_t)(struct imap_client *client, const struct imap_cmd_result *result,
			      void *userdata);

/*
 * Called for every untagged response (and for continuations that no
 * command consumed).  Borrowed during the call.
 */
typedef void (*imap_untagged_cb_t)(struct imap_client *client, const struct imap_response *resp,
				   void *userdata);

/*
 * Connection-level events: the connection became READY (r == 0), or it
 * failed or closed (r < 0, reason says why; the client is DISCONNECTED and
 * every queued command has already been completed with an error).
 */
typedef void (*imap_state_cb_t)(struct imap_client *client, int r, const char *reason,
				void *userdata);

struct imap_client_callbacks {
	imap_state_cb_t state;
	imap_untagged_cb_t untagged;
	/* Literals in FETCH responses the caller wants streamed, and FETCH
	 * responses over the line limit it does without (long_fetch); see
	 * struct imap_parser_callbacks. */
	struct imap_parser_callbacks literals;
};

/*
 * Default timeouts (milliseconds).  The command timeout is the longest
 * silence while an answer is awaited.  Each command also has a total
 * deadline, so that a server trickling a byte now and then cannot keep it
 * alive forever: IMAP_COMMAND_TOTAL_FACTOR command timeouts from when it
 * was sent, plus one more for every IMAP_COMMAND_PROGRESS_BYTES received
 * while it is the oldest in flight (a large FETCH that keeps streaming at
 * a useful rate is never cut).  An accepted IDLE has neither.
 */
#define IMAP_CONNECT_TIMEOUT_MS	    30000
#define IMAP_COMMAND_TIMEOUT_MS	    60000
#define IMAP_COMMAND_TOTAL_FACTOR   10
#define IMAP_COMMAND_PROGRESS_BYTES (1u << 20)
/* Most commands in flight at once. */
#define IMAP_MAX_IN_FLIGHT 32
/*
 * How long the client reads while the server keeps sending before it lets
 * the loop's other sources (D-Bus calls, other accounts) run; it goes on
 * from a deferred call.  A variable for the tests.
 */
#define IMAP_READ_BUDGET_MS 10
extern unsigned imap_read_budget_ms;
/*
 * A deadline timer that fires this much or more after it was due says the
 * loop did not run (the process was stopped or frozen): the deadlines then
 * start again, once, instead of failing a connection whose answer may be
 * waiting in the socket (imap-client.c check_thaw()).  A variable for the tests.
 */
#define IMAP_FREEZE_LATE_MS 1000
extern unsigned imap_freeze_late_ms;

/*
 * Body literals in FETCH responses (BODY[...], BINARY[...], RFC822...):
 * each must be at most the message's RFC822.SIZE when the same response
 * announced it before the literal, at most the max_literal of the commands
 * in flight when they all set one (imap_cmd_set_max_literal()), both plus
 * slack (IMAP_LITERAL_SLACK()), and at most IMAP_MAX_BODY_LITERAL
 * (IMAP_MAX_HEADER_LITERAL for a header).  A
 * larger one drops the connection as soon as its size is read
 * (-CPMSYNC_E_PROTOCOL, the reason naming the limit).
 */
#define IMAP_MAX_BODY_LITERAL ((uint64_t)256 << 20)
/* The cap in force: IMAP_MAX_BODY_LITERAL, or for tests only
 * CPMSYNC_TEST_MAX_BODY_LITERAL from the environment (bytes, 1 to
 * IMAP_MAX_BODY_LITERAL; read with secure_getenv() at each call), so
 * that a test reaches it without a 256 MiB message.  The sync asks for
 * at most this much of a body (BODY.PEEK[]<0.n>). */
#define IMAP_MAX_BODY_LITERAL_ENV "CPMSYNC_TEST_MAX_BODY_LITERAL"
uint64_t imap_max_body_literal(void);
/*
 * A header literal (BODY[HEADER], BODY[HEADER.FIELDS ...], BODY[n.MIME],
 * BODY[n.HEADER], RFC822.HEADER; BINARY alike) is at most this (what the
 * summary searches, MSG_SUMMARY_SCAN_HEADER), whatever RFC822.SIZE
 * the server announces; but for BODY[HEADER], the message's whole header,
 * the announced RFC822.SIZE (plus slack) bounds it as it does a body, so
 * that a message with a header over 1 MiB (a To: of 40,000 addresses)
 * does not stop its account's sync: the sync streams it and keeps what
 * the summary needs (ENGINE_BODY_MEM_MAX).
 */
#define IMAP_MAX_HEADER_LITERAL ((uint64_t)1 << 20)
#define IMAP_LITERAL_SLACK(n)	((n) / 16 + 4096)
/* Longest command line we build (RFC 7162 section 4 asks for <= 8192). */
#define IMAP_MAX_COMMAND_LINE 8000
/*
 * Most bytes of one command with its literals: the largest message Store
 * accepts (CPMSYNC_OP_MAX_MESSAGE_SIZE, counted with CRLF line ends, as
 * APPEND sends it) and room for the rest of an APPEND (mailbox, flags,
 * date).  imap_cmd_add_literal() and the like fail with -E2BIG beyond.
 */
#define IMAP_MAX_COMMAND_BYTES ((64u << 20) + (1u << 20))

/*
 * account is copied (strings and all; password_userdata is kept as given
 * and must outlive the client).  password_cb receives the client's copy,
 * not the caller's struct.  callbacks is copied.
 */
int imap_client_new(struct cpmsync_loop *loop, const struct cpmsync_account *account,
		    const struct imap_client_callbacks *callbacks, void *userdata,
		    struct imap_client **ret_client);
/* Closes the connection at once, completing queued commands with
 * -CPMSYNC_E_CANCELED.  Accepts NULL. */
struct imap_client *imap_client_free(struct imap_client *client);

/*
 * Starts connecting; state.cb reports READY or the failure (a name that
 * does not resolve included).  The host name is resolved on a thread of its
 * own, so the loop never waits for DNS; the connect timeout covers it.
 */
int imap_client_connect(struct imap_client *client);
/* Tests only: the function the resolver thread calls instead of
 * getaddrinfo() (NULL: getaddrinfo again).  Process-wide. */
struct addrinfo;
typedef int (*imap_resolve_fn_t)(const char *host, const char *service,
				 const struct addrinfo *hints, struct addrinfo **res);
void imap_client_set_resolver_for_test(imap_resolve_fn_t fn);
/* Tests only: the SCRAM client nonce of every login from now on (NULL: a
 * random one again), so that a scripted server can expect the proof.
 * Process-wide; the string must outlive its use. */
void imap_client_set_scram_nonce_for_test(const char *nonce);
/*
 * Uses an already connected socket instead (tests: a socketpair with a
 * scripted server).  The fd is taken over.  An AF_UNIX socket counts as
 * local for security=none.
 */
int imap_client_connect_fd(struct imap_client *client, int fd);
/* Sends LOGOUT (if connected) and closes once it is answered. */
void imap_client_logout(struct imap_client *client);
/*
 * The account's password_cb returned -EINPROGRESS (the connection waits,
 * authenticating, nothing sent): ask it again and go on.  Does nothing
 * when the client is not waiting for its password.
 */
void imap_client_password_ready(struct imap_client *client);

enum imap_client_state imap_client_get_state(const struct imap_client *client);
/* Capabilities as of now (after login once READY). */
const struct imap_caps *imap_client_caps(const struct imap_client *client);
bool imap_client_has(const struct imap_client *client, enum imap_cap cap);
/* Extensions enabled with ENABLE (IMAP_CAP_QRESYNC, IMAP_CAP_CONDSTORE...). */
bool imap_client_enabled(const struct imap_client *client, enum imap_cap cap);
/* The last failure's description ("" if none); borrowed. */
const char *imap_client_error(const struct imap_client *client);
/* Unix time of the last bytes received from the server (0: none). */
uint64_t imap_client_last_activity(const struct imap_client *client);
/* Hands the connection to another owner (between commands: the sync engine
 * and the session take turns on one connection). */
void imap_client_set_callbacks(struct imap_client *client,
			       const struct imap_client_callbacks *callbacks, void *userdata);
/* A flag of whoever uses the connection, false again on each new one
 * (the sync engine: this server was checked against the store,
 * engine-ident.c). */
bool *imap_client_user_mark(struct imap_client *client);
/* A set of numbers of whoever uses the connection, empty again on each new
 * one (the sync engine: the folders checked against the store). */
struct rangeset *imap_client_user_set(struct imap_client *client);
/* Bytes read and written on the wire so far (after TLS decryption). */
void imap_client_traffic(const struct imap_client *client, uint64_t *ret_in, uint64_t *ret_out);

/*
 * Building a command: create, add parts, submit.  The tag and the final
 * CRLF are added by the client.  Until submitted the command belongs to
 * the caller (imap_cmd_free() to drop it); after imap_cmd_submit() it
 * belongs to the client, and cb is called exactly once.
 */
struct imap_cmd;

enum imap_cmd_flags {
	IMAP_CMD_PREAUTH = 1 << 0,   /* may run before READY */
	IMAP_CMD_EXCLUSIVE = 1 << 1, /* nothing pipelined with it (IDLE, STARTTLS) */
	IMAP_CMD_SECRET = 1 << 2,    /* never show its arguments in logs; wiped */
	IMAP_CMD_IDLE = 1 << 3,	     /* no deadline once its "+" arrived */
};

int imap_cmd_new(struct imap_client *client, unsigned flags, imap_cmd_cb_t cb, void *userdata,
		 struct imap_cmd **ret_cmd);
struct imap_cmd *imap_cmd_free(struct imap_cmd *cmd);
/* Verbatim text (the command name, spaces, parentheses, numbers). */
int imap_cmd_add(struct imap_cmd *cmd, const char *text);
int imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A string argument, as an atom, a quoted string or a literal, whichever
 * fits (LITERAL+ / LITERAL- used when offered). */
int imap_cmd_add_string(struct imap_cmd *cmd, const char *s, size_t len);
/* A string where the grammar wants a string, not an atom (an nstring
 * value: ANNOTATE, RFC 5257; METADATA, RFC 5464): quoted, or a literal. */
int imap_cmd_add_nstring(struct imap_cmd *cmd, const char *s, size_t len);
/* A mailbox name in our form (UTF-8, '/' between levels, relative to the
 * personal namespace: imap-ns.h), encoded for this server (under its
 * namespace prefix; modified UTF-7 unless UTF8=ACCEPT is enabled; its
 * delimiter). */
int imap_cmd_add_mailbox(struct imap_cmd *cmd, const char *name);
/* A literal of len bytes (copied), always sent as a literal. */
int imap_cmd_add_literal(struct imap_cmd *cmd, const void *data, size_t len, bool literal8);
/*
 * The largest body literal (message size in bytes) the server may send in
 * answer to this command, e.g. the sync_bodies limit when fetching the
 * bodies that are no larger; see IMAP_MAX_BODY_LITERAL.  0 (the default):
 * no limit of its own.
 */
void imap_cmd_set_max_literal(struct imap_cmd *cmd, uint64_t max);
/*
 * Sets the handler for "+" continuations that are not literal prompts
 * (AUTHENTICATE, IDLE).  It returns 0 and a line to send (without CRLF,
 * malloc'ed, sent then wiped and freed; NULL to send nothing), or a
 * negative error to abort the connection.
 */
typedef int (*imap_cont_cb_t)(struct imap_client *client, const char *text, char **ret_line,
			      void *userdata);
void imap_cmd_set_continuation(struct imap_cmd *cmd, imap_cont_cb_t cb);
/* Queues the command; returns its id (> 0) for imap_client_cancel(). */
int64_t imap_cmd_submit(struct imap_cmd *cmd);

/*
 * Cancels a queued or running command with -CPMSYNC_E_CANCELED.  A command
 * not sent yet is dropped and its callback runs from the loop; one already
 * sent has its callback run before this returns (the server's late answer
 * is then ignored), so do not cancel from inside that command's own
 * callback.  Returns 0, or -CPMSYNC_E_NOT_FOUND for an unknown or finished
 * id.
 */
int imap_client_cancel(struct imap_client *client, int64_t id);

/* Convenience: a command made of verbatim text only. */
int64_t imap_client_simple(struct imap_client *client, unsigned flags, imap_cmd_cb_t cb,
			   void *userdata, const char *text);

/*
 * Sends raw bytes after a continuation of a command that set a
 * continuation handler (IDLE's DONE).  Returns 0 or -errno.
 */
int imap_client_send_line(struct imap_client *client, const char *line);

/*
 * Ends the IDLE command id (its "+" arrived): sends DONE, and from then on
 * the commands queued behind it are sent at once, pipelined after DONE,
 * without waiting for the IDLE's tagged answer (RFC 2177 section 3), which
 * is then awaited under the usual deadlines.  Returns 0, -CPMSYNC_E_NOT_FOUND
 * when id is not an IDLE in flight whose "+" came, or -errno.
 */
int imap_client_end_idle(struct imap_client *client, int64_t id);

/*
 * Acknowledge what the server sends at once (Linux TCP_QUICKACK after every
 * read; elsewhere nothing).  A server with Nagle's algorithm on (Cyrus 3.6)
 * holds a write while an earlier one is unacknowledged, and our delayed ACK
 * waits up to 40 ms when we have nothing to send: on Cyrus the answer to a
 * UID FETCH pipelined after DONE came ~40 ms after the IDLE's "OK", every
 * time.  Off by default: where our next command carries the ACK anyway, a
 * separate one only costs the server a wakeup (Dovecot's NOTIFY push
 * measured ~20 ms slower with it).
 */
void imap_client_set_quick_ack(struct imap_client *client, bool on);

/*
 * A sign of life from the server within ms, whatever the command timeout:
 * after a network change or a resume from suspend, a connection that looks
 * fine may be dead without a word (a half-open socket waits the command
 * timeout, 60 s, before anything is found).  Any bytes read end the probe;
 * if none come within ms of an answer being awaited (a command in flight,
 * other than an accepted IDLE), the connection fails with -ETIMEDOUT, the
 * reason naming `why` ("the network changed").  So the caller gives the
 * server something to answer (a NOOP, the DONE of an IDLE).  Only once
 * logged in (-EBUSY before: connect and login have deadlines of their own).
 */
int imap_client_probe(struct imap_client *client, unsigned ms, const char *why);

/* The server's hierarchy delimiter ('/' until LIST tells otherwise). */
void imap_client_set_delimiter(struct imap_client *client, char delimiter);
char imap_client_delimiter(const struct imap_client *client);

/*
 * Namespaces (RFC 2342).  When the server offers NAMESPACE, the client asks
 * it after login (after ENABLE), once per connection, before READY; a
 * refused or malformed answer fails the connection.  Until then, and on a
 * server without it, names map as they are.
 */
/* Show the other users' and shared namespaces (imap-ns.h); default hidden. */
void imap_client_set_show_other_namespaces(struct imap_client *client, bool show);
const struct imap_ns_map *imap_client_namespace(const struct imap_client *client);
/*
 * The one way in for a server's mailbox name (LIST, STATUS...), with the
 * delimiter its response gave: imap_ns_to_local() in this connection's
 * namespaces and UTF-8 mode.  -ENOENT for a hidden name.
 */
int imap_client_mailbox_to_local(const struct imap_client *client, const char *name, size_t len,
				 char delimiter, struct buf *out);
