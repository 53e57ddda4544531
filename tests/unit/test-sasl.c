/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "testlib.h"
#include "imap/sasl.h"
#include "util/base64.h"

/* RFC 7677 section 3. */
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_FIRST                                                                           \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                                    \
	"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                             \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static struct sasl_scram *rfc_exchange(void)
{
	struct sasl_scram *s;
	char *msg;

	ck_assert_int_eq(sasl_scram_new("user", "pencil", &s), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	ck_assert_str_eq(msg, "n,,n=user,r=" RFC_NONCE);
	free(msg);
	ck_assert_int_eq(
		sasl_scram_client_final(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &msg), 0);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert(sasl_scram_has_final(s));
	return s;
}

START_TEST(test_scram_rfc7677_vector)
{
	struct sasl_scram *s = rfc_exchange();

	ck_assert(!sasl_scram_verified(s));
	ck_assert_int_eq(
		sasl_scram_verify_server_final(s, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), 0);
	ck_assert(sasl_scram_verified(s));
	sasl_scram_free(s);
}
END_TEST

/* One exchange with the RFC 7677 nonce; returns its client-final (to free). */
static char *cached_exchange(const char *key, const char *password, const char *server_first)
{
	struct sasl_scram *s;
	char *msg;

	ck_assert_int_eq(sasl_scram_new("user", password, &s), 0);
	if (key)
		ck_assert_int_eq(sasl_scram_set_cache_key(s, key), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	free(msg);
	ck_assert_int_eq(sasl_scram_client_final(s, server_first, strlen(server_first), &msg), 0);
	if (strcmp(msg, RFC_CLIENT_FINAL) == 0)
		ck_assert_int_eq(sasl_scram_verify_server_final(s, RFC_SERVER_FINAL,
								strlen(RFC_SERVER_FINAL)),
				 0);
	sasl_scram_free(s);
	return msg;
}

/*
 * RFC 5802 5.1: the SaltedPassword is cached per key (account and server),
 * salt, iteration count and password, so that a reconnect runs no PBKDF2;
 * the proof is the same (the RFC 7677 vector).  A changed password, salt or
 * count computes it again; a refused exchange forgets it.
 */
START_TEST(test_scram_salted_password_cached)
{
	static const char other_salt[] = "r=" RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
					 "s=QSXCR+Q6sek8bf92,i=4096";
	static const char other_count[] = "r=" RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
					  "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4097";
	static const char bad_sig[] = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
	const char *key = "a\nimap.example.org:993\nuser";
	struct sasl_scram *s;
	unsigned runs;
	char *msg;

	sasl_scram_cache_clear();
	runs = sasl_scram_pbkdf2_runs();
	msg = cached_exchange(key, "pencil", RFC_SERVER_FIRST);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);

	/* The reconnect: no PBKDF2, the same proof. */
	msg = cached_exchange(key, "pencil", RFC_SERVER_FIRST);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);

	/* No key (another server, or the caller does not cache): computed. */
	msg = cached_exchange(NULL, "pencil", RFC_SERVER_FIRST);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 2);
	msg = cached_exchange("b\nimap.example.org:993\nuser", "pencil", RFC_SERVER_FIRST);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 3);

	/* The password changed: computed again (another proof), and the
	 * entry is the new password's. */
	msg = cached_exchange(key, "pencil2", RFC_SERVER_FIRST);
	ck_assert_str_ne(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 4);
	msg = cached_exchange(key, "pencil2", RFC_SERVER_FIRST);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 4);
	msg = cached_exchange(key, "pencil", RFC_SERVER_FIRST);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 5);

	/* Another salt, another count: computed. */
	msg = cached_exchange(key, "pencil", other_salt);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 6);
	msg = cached_exchange(key, "pencil", other_count);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 7);
	msg = cached_exchange(key, "pencil", RFC_SERVER_FIRST);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 8);

	/* A wrong server signature forgets the entry. */
	ck_assert_int_eq(sasl_scram_new("user", "pencil", &s), 0);
	ck_assert_int_eq(sasl_scram_set_cache_key(s, key), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	free(msg);
	ck_assert_int_eq(
		sasl_scram_client_final(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &msg), 0);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 8);
	ck_assert_int_eq(sasl_scram_verify_server_final(s, bad_sig, strlen(bad_sig)),
			 -CPMSYNC_E_AUTH);
	sasl_scram_free(s);
	msg = cached_exchange(key, "pencil", RFC_SERVER_FIRST);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 9);

	/* Cleared: computed. */
	sasl_scram_cache_clear();
	msg = cached_exchange(key, "pencil", RFC_SERVER_FIRST);
	free(msg);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 10);
	sasl_scram_cache_clear();
}
END_TEST

START_TEST(test_scram_impostor_signature_refused)
{
	static const char bad[] = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
	struct sasl_scram *s = rfc_exchange();

	ck_assert_int_eq(sasl_scram_verify_server_final(s, bad, strlen(bad)), -CPMSYNC_E_AUTH);
	ck_assert(!sasl_scram_verified(s));
	ck_assert_ptr_nonnull(strstr(sasl_scram_error(s), "signature"));
	ck_assert_int_eq(sasl_scram_verify_server_final(s, "e=invalid-proof", 15), -CPMSYNC_E_AUTH);
	ck_assert_int_eq(sasl_scram_verify_server_final(s, "x=1", 3), -CPMSYNC_E_AUTH);
	sasl_scram_free(s);
}
END_TEST

static const struct {
	const char *server_first;
	int r;
} bad_first[] = {
	{ "r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	  -CPMSYNC_E_PROTOCOL }, /* no server part */
	{ "r=" RFC_NONCE "xyz,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=12a", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=!!!!,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "m=ext,r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "e=other-error", -CPMSYNC_E_AUTH },
	{ "", -CPMSYNC_E_PROTOCOL },
	{ "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" RFC_NONCE "xyz,i=4096", -CPMSYNC_E_PROTOCOL }, /* order */
	{ "r=" RFC_NONCE "xyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,junk", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "x\001z,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001", -CPMSYNC_E_PROTOCOL },
	/* RFC 7677: at least 4096; and at most SASL_SCRAM_MAX_ITERATIONS. */
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=200001", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000", -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=184467440737095516161",
	  -CPMSYNC_E_PROTOCOL },
	{ "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "R=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", -CPMSYNC_E_PROTOCOL },
	{ "r" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", -CPMSYNC_E_PROTOCOL },
};

START_TEST(test_scram_bad_server_first)
{
	struct sasl_scram *s;
	char *msg = NULL;

	ck_assert_int_eq(sasl_scram_new("user", "pencil", &s), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	free(msg);
	msg = NULL;
	ck_assert_int_eq(sasl_scram_client_final(s, bad_first[_i].server_first,
						 strlen(bad_first[_i].server_first), &msg),
			 bad_first[_i].r);
	ck_assert_ptr_null(msg);
	ck_assert(!sasl_scram_has_final(s));
	ck_assert_str_ne(sasl_scram_error(s), "");
	sasl_scram_free(s);
}
END_TEST

START_TEST(test_scram_error_texts)
{
	static const char huge[] = "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999";
	static const char weak[] = "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1";
	static const char err[] = "e=unknown-user";
	struct sasl_scram *s;
	char *msg = NULL;

	ck_assert_int_eq(sasl_scram_new("user", "pencil", &s), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	free(msg);
	msg = NULL;
	ck_assert_int_eq(sasl_scram_client_final(s, huge, strlen(huge), &msg), -CPMSYNC_E_PROTOCOL);
	ck_assert_str_eq(sasl_scram_error(s), "iteration count 99999999 too large (limit 200000)");
	ck_assert_int_eq(sasl_scram_client_final(s, weak, strlen(weak), &msg), -CPMSYNC_E_PROTOCOL);
	ck_assert_str_eq(sasl_scram_error(s),
			 "iteration count 1 too small (RFC 7677 requires at least 4096)");
	ck_assert_int_eq(sasl_scram_client_final(s, err, strlen(err), &msg), -CPMSYNC_E_AUTH);
	ck_assert_ptr_nonnull(strstr(sasl_scram_error(s), "(e=unknown-user)"));
	ck_assert_ptr_null(msg);
	sasl_scram_free(s);

	s = rfc_exchange();
	ck_assert_int_eq(sasl_scram_verify_server_final(s, "e=invalid-proof", 15), -CPMSYNC_E_AUTH);
	ck_assert_ptr_nonnull(strstr(sasl_scram_error(s), "(e=invalid-proof)"));
	ck_assert(!sasl_scram_verified(s));
	sasl_scram_free(s);
}
END_TEST

START_TEST(test_scram_extensions_ignored)
{
	static const char first[] = "r=" RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
				    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=future";
	struct sasl_scram *s;
	char *msg;

	/* An unknown extension after i= changes AuthMessage, so the proof
	 * differs from the RFC's, but the exchange goes on. */
	ck_assert_int_eq(sasl_scram_new("user", "pencil", &s), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	free(msg);
	ck_assert_int_eq(sasl_scram_client_final(s, first, strlen(first), &msg), 0);
	ck_assert_int_eq(strncmp(msg, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL) - 44), 0);
	ck_assert_str_ne(msg, RFC_CLIENT_FINAL);
	free(msg);
	/* The RFC's server signature does not match this AuthMessage. */
	ck_assert_int_eq(
		sasl_scram_verify_server_final(s, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)),
		-CPMSYNC_E_AUTH);
	sasl_scram_free(s);
}
END_TEST

START_TEST(test_scram_argument_checks)
{
	struct sasl_scram *s = NULL;

	ck_assert_int_eq(sasl_scram_new("", "pw", &s), -EINVAL);
	ck_assert_int_eq(sasl_scram_new("us\ter", "pw", &s), -EINVAL);
	ck_assert_int_eq(sasl_scram_new("user", "pw\177", &s), -EINVAL);
	ck_assert_ptr_null(s);
	/* Non-ASCII passes through unchanged. */
	ck_assert_int_eq(sasl_scram_new("j\xc3\xb6rg", "p\xc3\xa4ss", &s), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, "a,b"), -EINVAL);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, ""), -EINVAL);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, "a b"), -EINVAL);
	/* client-final before client-first. */
	{
		char *msg = NULL;

		ck_assert_int_lt(sasl_scram_client_final(s, RFC_SERVER_FIRST,
							 strlen(RFC_SERVER_FIRST), &msg),
				 0);
		ck_assert_ptr_null(msg);
		ck_assert_int_lt(sasl_scram_verify_server_final(s, RFC_SERVER_FINAL,
								strlen(RFC_SERVER_FINAL)),
				 0);
	}
	sasl_scram_free(s);
}
END_TEST

START_TEST(test_scram_username_escaping_and_random_nonce)
{
	struct sasl_scram *s, *t;
	char *a, *b;

	ck_assert_int_eq(sasl_scram_new("a,b=c", "pw", &s), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &a), 0);
	ck_assert_int_eq(strncmp(a, "n,,n=a=2Cb=3Dc,r=", 17), 0);
	ck_assert_int_ge(strlen(a), 17 + 32);
	ck_assert_int_eq(sasl_scram_new("a", "pw", &t), 0);
	ck_assert_int_eq(sasl_scram_client_first(t, &b), 0);
	ck_assert_str_ne(a + 17, b + 12); /* fresh nonce each time */
	free(a);
	free(b);
	sasl_scram_free(s);
	sasl_scram_free(t);
	ck_assert_int_eq(sasl_scram_new("u", "bad\npassword", &s), -EINVAL);
	ck_assert_ptr_null(sasl_scram_free(NULL));
}
END_TEST

START_TEST(test_plain)
{
	char *msg;
	size_t len;

	ck_assert_int_eq(sasl_plain(NULL, "alice", "pw", &msg, &len), 0);
	ck_assert_uint_eq(len, 9);
	ck_assert_int_eq(memcmp(msg, "\0alice\0pw", 9), 0);
	free(msg);
	ck_assert_int_eq(sasl_plain("admin", "alice", "pw", &msg, &len), 0);
	ck_assert_int_eq(memcmp(msg, "admin\0alice\0pw", 14), 0);
	free(msg);
}
END_TEST

static const struct {
	const char *plain;
	const char *b64;
} b64_cases[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(test_base64_rfc4648_vectors)
{
	char *enc;
	void *dec;
	size_t len;

	ck_assert_int_eq(base64_encode(b64_cases[_i].plain, strlen(b64_cases[_i].plain), &enc), 0);
	ck_assert_str_eq(enc, b64_cases[_i].b64);
	free(enc);
	ck_assert_int_eq(base64_decode(b64_cases[_i].b64, strlen(b64_cases[_i].b64), &dec, &len),
			 0);
	ck_assert_uint_eq(len, strlen(b64_cases[_i].plain));
	ck_assert_int_eq(memcmp(dec, b64_cases[_i].plain, len), 0);
	free(dec);
}
END_TEST

static const char *const bad_b64[] = {
	"Zg=",	"Zg",	"Z===",	 "=Zg=",  "Zm9v!A==", "Zm=v", "Zm9v\n", "Zg==Zg==",
	"Zh==", "Zm9=", "Zm9v ", " Zm9v", "Zm9v-_==", "Zm,v", "====",	"Zm9vY===",
};

START_TEST(test_base64_invalid)
{
	void *dec = NULL;
	size_t len = 0;

	ck_assert_int_eq(base64_decode(bad_b64[_i], strlen(bad_b64[_i]), &dec, &len), -EINVAL);
	ck_assert_ptr_null(dec);
}
END_TEST

START_TEST(test_base64_binary_round_trip)
{
	unsigned char data[64];
	unsigned seed = 7;

	for (size_t len = 0; len <= sizeof(data); len++) {
		char *enc;
		void *dec;
		size_t n;

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			data[i] = (unsigned char)(seed >> 16);
		}
		if (len)
			data[0] = 0; /* a NUL inside */
		ck_assert_int_eq(base64_encode(data, len, &enc), 0);
		ck_assert_uint_eq(strlen(enc), 4 * ((len + 2) / 3));
		ck_assert_int_eq(base64_decode(enc, strlen(enc), &dec, &n), 0);
		ck_assert_uint_eq(n, len);
		ck_assert_int_eq(memcmp(dec, data, len), 0);
		free(enc);
		free(dec);
	}
}
END_TEST

START_TEST(test_plain_exact_bytes)
{
	static const char want[] = "\0tim\0tanstaaftanstaaf";
	char *msg;
	size_t len;

	/* RFC 4616 section 4 example. */
	ck_assert_int_eq(sasl_plain(NULL, "tim", "tanstaaftanstaaf", &msg, &len), 0);
	ck_assert_uint_eq(len, sizeof(want) - 1);
	ck_assert_int_eq(memcmp(msg, want, len), 0);
	free(msg);
	ck_assert_int_eq(sasl_plain("", "a", "", &msg, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(msg, "\0a\0", 3), 0);
	free(msg);
}
END_TEST

/* A client at the point where server-first comes (RFC 7677 nonce). */
static struct sasl_scram *scram_at_first(const char *key)
{
	struct sasl_scram *s;
	char *msg;

	ck_assert_int_eq(sasl_scram_new("user", "pencil", &s), 0);
	if (key)
		ck_assert_int_eq(sasl_scram_set_cache_key(s, key), 0);
	ck_assert_int_eq(sasl_scram_set_nonce_for_test(s, RFC_NONCE), 0);
	ck_assert_int_eq(sasl_scram_client_first(s, &msg), 0);
	free(msg);
	return s;
}

/*
 * The client-final in steps (the IMAP client runs PBKDF2 on a thread): the
 * same answer as in one call, the cache filled from the job's result, and a
 * job that owes nothing to the exchange it came from.
 */
START_TEST(test_scram_steps)
{
	const char *key = "steps\nhost:143\nuser";
	struct sasl_scram_derive *d = NULL;
	struct sasl_scram *s;
	char *msg = NULL;
	unsigned runs;

	sasl_scram_cache_clear();
	runs = sasl_scram_pbkdf2_runs();
	s = scram_at_first(key);
	ck_assert_int_eq(sasl_scram_client_final_finish(s, NULL, &msg), -EINVAL);
	ck_assert_str_eq(sasl_scram_error(s), "server-first was not read");
	ck_assert_int_eq(
		sasl_scram_read_server_first(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), 1);
	ck_assert_int_eq(sasl_scram_client_final_finish(s, NULL, &msg), -EINVAL);
	ck_assert_int_eq(sasl_scram_derive_new(s, &d), 0);
	/* Not run yet. */
	ck_assert_int_eq(sasl_scram_client_final_finish(s, d, &msg), -EINVAL);
	ck_assert_str_eq(sasl_scram_error(s), "the SCRAM key derivation (PBKDF2) did not run");
	ck_assert(!sasl_scram_has_final(s));
	sasl_scram_derive_run(d);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);
	ck_assert_uint_eq(sasl_scram_pbkdf2_running(), 0);
	ck_assert_int_eq(sasl_scram_client_final_finish(s, d, &msg), 0);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	ck_assert_int_eq(
		sasl_scram_verify_server_final(s, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), 0);
	sasl_scram_free(s);
	d = sasl_scram_derive_free(d);

	/* From the cache now: 0, no job. */
	s = scram_at_first(key);
	ck_assert_int_eq(
		sasl_scram_read_server_first(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), 0);
	ck_assert_int_eq(sasl_scram_client_final_finish(s, NULL, &msg), 0);
	ck_assert_str_eq(msg, RFC_CLIENT_FINAL);
	free(msg);
	sasl_scram_free(s);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);

	/* The exchange freed while its job runs (a closed connection): the
	 * job has its own copies (ASan). */
	sasl_scram_cache_clear();
	s = scram_at_first(NULL);
	ck_assert_int_eq(
		sasl_scram_read_server_first(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), 1);
	ck_assert_int_eq(sasl_scram_derive_new(s, &d), 0);
	sasl_scram_free(s);
	sasl_scram_derive_run(d);
	sasl_scram_derive_free(d);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 2);
}
END_TEST

static int failing_pbkdf2(const char *password, size_t password_len, const unsigned char *salt,
			  size_t salt_len, unsigned long iterations, unsigned char out[32])
{
	(void)password;
	(void)password_len;
	(void)salt;
	(void)salt_len;
	(void)iterations;
	(void)out;
	return -EIO;
}

/* A job for another server-first, or one that failed: refused, nothing
 * cached, no answer. */
START_TEST(test_scram_steps_refused)
{
	static const char other_first[] = "r=" RFC_NONCE "xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=8192";
	struct sasl_scram_derive *d = NULL;
	struct sasl_scram *s;
	char *msg = NULL;
	unsigned runs = sasl_scram_pbkdf2_runs();

	sasl_scram_cache_clear();
	s = scram_at_first("k");
	ck_assert_int_eq(sasl_scram_read_server_first(s, other_first, strlen(other_first)), 1);
	ck_assert_int_eq(sasl_scram_derive_new(s, &d), 0);
	sasl_scram_derive_run(d);
	ck_assert_int_eq(
		sasl_scram_read_server_first(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), 1);
	ck_assert_int_eq(sasl_scram_client_final_finish(s, d, &msg), -EINVAL);
	ck_assert_str_eq(sasl_scram_error(s), "the SCRAM key derivation was for another "
					      "server-first");
	ck_assert_ptr_null(msg);
	d = sasl_scram_derive_free(d);

	sasl_scram_set_pbkdf2_for_test(failing_pbkdf2);
	ck_assert_int_eq(sasl_scram_derive_new(s, &d), 0);
	sasl_scram_derive_run(d);
	ck_assert_int_eq(sasl_scram_client_final_finish(s, d, &msg), -EIO);
	ck_assert_str_eq(sasl_scram_error(s), "the SCRAM key derivation (PBKDF2) failed");
	ck_assert_ptr_null(msg);
	ck_assert(!sasl_scram_has_final(s));
	d = sasl_scram_derive_free(d);
	/* In one call too. */
	ck_assert_int_eq(
		sasl_scram_client_final(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &msg), -EIO);
	ck_assert_str_eq(sasl_scram_error(s), "the SCRAM key derivation (PBKDF2) failed");
	sasl_scram_set_pbkdf2_for_test(NULL);
	sasl_scram_free(s);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);
	/* Nothing cached from the failures: the next one runs PBKDF2. */
	s = scram_at_first("k");
	ck_assert_int_eq(
		sasl_scram_read_server_first(s, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), 1);
	sasl_scram_free(s);
	sasl_scram_cache_clear();
}
END_TEST

static Suite *sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("scram");

	tcase_add_test(tc, test_scram_rfc7677_vector);
	tcase_add_test(tc, test_scram_salted_password_cached);
	tcase_add_test(tc, test_scram_steps);
	tcase_add_test(tc, test_scram_steps_refused);
	tcase_add_test(tc, test_scram_impostor_signature_refused);
	tcase_add_loop_test(tc, test_scram_bad_server_first, 0,
			    sizeof(bad_first) / sizeof(bad_first[0]));
	tcase_add_test(tc, test_scram_username_escaping_and_random_nonce);
	tcase_add_test(tc, test_scram_error_texts);
	tcase_add_test(tc, test_scram_extensions_ignored);
	tcase_add_test(tc, test_scram_argument_checks);
	suite_add_tcase(s, tc);
	tc = tcase_create("plain-base64");
	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_plain_exact_bytes);
	tcase_add_test(tc, test_base64_binary_round_trip);
	tcase_add_loop_test(tc, test_base64_rfc4648_vectors, 0,
			    sizeof(b64_cases) / sizeof(b64_cases[0]));
	tcase_add_loop_test(tc, test_base64_invalid, 0, sizeof(bad_b64) / sizeof(bad_b64[0]));
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(sasl_suite)
