/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SASL client mechanisms, as raw messages (the IMAP client adds base64).
 * Cryptography is OpenSSL's.  Every buffer that held a secret is wiped.
 */

#include <stdbool.h>
#include <stddef.h>

/* PLAIN (RFC 4616): "authzid\0user\0password"; *ret_msg malloc'ed, wipe it. */
int sasl_plain(const char *authzid, const char *user, const char *password, char **ret_msg,
	       size_t *ret_len);

/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding.  Mutual:
 * sasl_scram_verify_server_final() checks that the server knows the
 * password too, and login must not be trusted until it succeeded.
 */
struct sasl_scram;

/* Copies user and password.  Passwords are used as given (UTF-8);
 * control characters are refused (-EINVAL), per SASLprep's prohibitions. */
int sasl_scram_new(const char *user, const char *password, struct sasl_scram **ret);
struct sasl_scram *sasl_scram_free(struct sasl_scram *s);
/* "n,,n=user,r=nonce" (malloc'ed). */
int sasl_scram_client_first(struct sasl_scram *s, char **ret_msg);
/* Answers server-first ("r=...,s=...,i=..."): -CPMSYNC_E_PROTOCOL for a bad
 * message (sasl_scram_error() says why).  Runs PBKDF2 on the calling thread
 * unless the cache (below) holds SaltedPassword: read_server_first(), then
 * derive_new() and derive_run() if it said 1, then client_final_finish(). */
int sasl_scram_client_final(struct sasl_scram *s, const char *server_first, size_t len,
			    char **ret_msg);
/*
 * The same in steps, so that PBKDF2 (up to SASL_SCRAM_MAX_ITERATIONS rounds)
 * can run off the event loop.  sasl_scram_read_server_first() checks
 * server-first (errors as above) and keeps what the proof needs; it returns
 * 0 when SaltedPassword came from the cache, 1 when PBKDF2 must run.
 * sasl_scram_derive_new() then copies the password, salt and count into a
 * job that owes nothing to s: sasl_scram_derive_run() may run it on any
 * thread, and s may be freed meanwhile (free the job on its own).
 * sasl_scram_client_final_finish() makes client-final from the job (NULL
 * after a 0) and fills the cache; a failed job gives -EIO with the reason
 * in sasl_scram_error().
 */
int sasl_scram_read_server_first(struct sasl_scram *s, const char *server_first, size_t len);
struct sasl_scram_derive;
int sasl_scram_derive_new(const struct sasl_scram *s, struct sasl_scram_derive **ret);
void sasl_scram_derive_run(struct sasl_scram_derive *d);
struct sasl_scram_derive *sasl_scram_derive_free(struct sasl_scram_derive *d);
int sasl_scram_client_final_finish(struct sasl_scram *s, const struct sasl_scram_derive *d,
				   char **ret_msg);
/* Checks server-final ("v=..."): 0, or -CPMSYNC_E_AUTH. */
int sasl_scram_verify_server_final(struct sasl_scram *s, const char *server_final, size_t len);
bool sasl_scram_has_final(const struct sasl_scram *s); /* client-final sent */
bool sasl_scram_verified(const struct sasl_scram *s);
const char *sasl_scram_error(const struct sasl_scram *s);
/*
 * The SaltedPassword cache (RFC 5802 section 5.1), so that a reconnect
 * does not run PBKDF2 again: with a key set (one per account and server,
 * e.g. "name host:port user"), sasl_scram_client_final() reuses the
 * SaltedPassword computed for the same key, salt, iteration count and
 * password.  Memory only; a different password, salt or count replaces
 * the entry; a refused proof or a wrong server signature forgets it.
 */
int sasl_scram_set_cache_key(struct sasl_scram *s, const char *key);
void sasl_scram_cache_forget(const char *key);
/* Forgets s's entry (its key's): the login failed. */
void sasl_scram_uncache(struct sasl_scram *s);
void sasl_scram_cache_clear(void);
/* PBKDF2 runs so far (tests: was the cache used?), and running now (on
 * any thread: tests, did the loop run meanwhile?). */
unsigned sasl_scram_pbkdf2_runs(void);
unsigned sasl_scram_pbkdf2_running(void);
/* Tests only: what sasl_scram_derive_run() calls instead of PKCS5_PBKDF2_HMAC
 * (NULL: that again); returns 0 or -errno.  Process-wide. */
typedef int (*sasl_scram_pbkdf2_fn_t)(const char *password, size_t password_len,
				      const unsigned char *salt, size_t salt_len,
				      unsigned long iterations, unsigned char out[32]);
void sasl_scram_set_pbkdf2_for_test(sasl_scram_pbkdf2_fn_t fn);
/* Tests only: use this client nonce instead of a random one. */
int sasl_scram_set_nonce_for_test(struct sasl_scram *s, const char *nonce);

/*
 * Iteration counts accepted from a server.  RFC 7677 section 4 requires at
 * least 4096; the upper bound keeps a login's PBKDF2 short (200000 rounds
 * of HMAC-SHA-256: about 0.15 s of one core), so a hostile or misconfigured
 * server cannot make each login cost seconds of CPU.  The IMAP client runs
 * it off the event loop in any case.
 */
#define SASL_SCRAM_MIN_ITERATIONS 4096
#define SASL_SCRAM_MAX_ITERATIONS 200000
