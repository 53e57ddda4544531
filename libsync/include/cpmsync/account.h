/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_ACCOUNT_H
#define CPMSYNC_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include <cpmsync/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cpmsync_security {
	CPMSYNC_SECURITY_TLS,	   /* implicit TLS (port 993) */
	CPMSYNC_SECURITY_STARTTLS, /* STARTTLS, failing closed */
	CPMSYNC_SECURITY_NONE	   /* clear text: loopback hosts only */
};

/* "tls", "starttls", "none"; NULL for an unknown value. */
const char *cpmsync_security_to_string(enum cpmsync_security s);
/* Returns 0 and sets *ret, or -EINVAL. */
int cpmsync_security_from_string(const char *s, enum cpmsync_security *ret);

struct cpmsync_account;

/*
 * Asked each time the library needs the password.  On success store a
 * malloc()ed NUL-terminated string in *ret_password and return 0; the
 * library wipes and frees it as soon as it is sent.  Return a negative
 * errno-style code on failure (reported as the authentication error).
 * The library never stores or logs a password.
 *
 * -EINPROGRESS: the password is not ready yet (the host gets it without
 * blocking, e.g. from a command it runs on the loop).  The connection then
 * waits before authenticating, nothing sent, until the host calls
 * cpmsync_session_password_ready(); the callback is then asked again.
 */
typedef int (*cpmsync_password_cb_t)(const struct cpmsync_account *account, char **ret_password,
				     void *userdata);
/*
 * As cpmsync_password_cb_t, and a failure may say why: a malloc()ed
 * sentence in *ret_reason (it starts NULL; the library frees it), such as
 * "password file '/home/u/pw' is readable by group or others (mode 0644)
 * ...".  The library's error (the session's LastError, the check's
 * reason) is then "cannot get the password: " and that sentence, not the
 * errno's text.  Never put the password in it.
 */
typedef int (*cpmsync_password_reason_cb_t)(const struct cpmsync_account *account,
					    char **ret_password, char **ret_reason, void *userdata);

/* sync_bodies special values (otherwise a limit in KiB). */
#define CPMSYNC_SYNC_BODIES_ALL	 (-1)
#define CPMSYNC_SYNC_BODIES_NONE 0

/*
 * An account's settings, as the host reads them from its configuration.
 * Every string is borrowed by calls that take the struct: the library
 * copies what it keeps.
 */
struct cpmsync_account {
	const char *name; /* [A-Za-z0-9_-]+ */
	const char *host;
	uint16_t port; /* 0: 993 for tls, 143 otherwise */
	enum cpmsync_security security;
	const char *user;
	const char *ca_file;	    /* extra trust anchor (PEM) or NULL */
	const char *const *folders; /* NULL-terminated LIST patterns; NULL: "*" */
	int64_t sync_bodies;	    /* CPMSYNC_SYNC_BODIES_ALL, _NONE or KiB */
	cpmsync_password_cb_t password_cb;
	void *password_userdata;
	/* Timeouts in milliseconds; 0 takes the default. */
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
	/* PEM file with a certificate (and its chain) and its private key,
	 * presented in TLS; with a server that offers AUTH=EXTERNAL the login
	 * is SASL EXTERNAL and needs no password.  NULL: none. */
	const char *client_cert;
	/* Names of the other users' and shared namespaces (RFC 2342): 0 hides
	 * them, non-zero shows them under a root of their own ("#Shared/...",
	 * "#Users/...").  Personal folders are named relative to the
	 * personal namespace's prefix either way. */
	int show_other_namespaces;
	/* Not NULL: asked instead of password_cb (with password_userdata
	 * too), for a host that can say why it has no password. */
	cpmsync_password_reason_cb_t password_reason_cb;
};

/* The port that will be used: account->port, or the security's default. */
uint16_t cpmsync_account_port(const struct cpmsync_account *account);

/*
 * Result of cpmsync_account_check: on success, r == 0 and capabilities is
 * the server's list after login (space-separated).  On failure r is the
 * error and reason a sentence naming what went wrong (for instance the
 * certificate verification error, or the server's text).  Both strings are
 * borrowed for the duration of the callback.
 */
typedef void (*cpmsync_check_cb_t)(int r, const char *capabilities, const char *reason,
				   void *userdata);

struct cpmsync_check;

/*
 * Connects, secures, authenticates and logs out, changing nothing.  cb is
 * called once, from the loop.  *ret_check (optional) can be passed to
 * cpmsync_check_cancel() before cb has run; it is freed after cb returns.
 */
int cpmsync_account_check(struct cpmsync_loop *loop, const struct cpmsync_account *account,
			  cpmsync_check_cb_t cb, void *userdata, struct cpmsync_check **ret_check);
void cpmsync_check_cancel(struct cpmsync_check *check);

#ifdef __cplusplus
}
#endif
#endif
