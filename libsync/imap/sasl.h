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
 * message (sasl_scram_error() says why). */
int sasl_scram_client_final(struct sasl_scram *s, const char *server_first, size_t len,
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
/* PBKDF2 runs so far (tests: was the cache used?). */
unsigned sasl_scram_pbkdf2_runs(void);
/* Tests only: use this client nonce instead of a random one. */
int sasl_scram_set_nonce_for_test(struct sasl_scram *s, const char *nonce);

/*
 * Iteration counts accepted from a server.  RFC 7677 section 4 requires at
 * least 4096; the upper bound keeps the PBKDF2 run on the event loop short
 * (200000 rounds of HMAC-SHA-256: about 0.1 s), so a hostile or
 * misconfigured server cannot stall every account for seconds per login.
 */
#define SASL_SCRAM_MIN_ITERATIONS 4096
#define SASL_SCRAM_MAX_ITERATIONS 200000
