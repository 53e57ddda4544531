/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/sasl.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cpmsync/error.h>

#include "util/base64.h"
#include "util/buf.h"
#include "util/macro.h"

#define HASH_LEN    SHA256_DIGEST_LENGTH
#define MAX_MESSAGE 4096

struct sasl_scram {
	char *user; /* escaped: , -> =2C, = -> =3D */
	char *password;
	char *cache_key; /* sasl_scram_set_cache_key(), or NULL */
	char *nonce;
	char *client_first_bare;
	/* From server-first (sasl_scram_read_server_first()), for the proof. */
	unsigned char *salt;
	size_t salt_len;
	unsigned long iterations;
	char *without_proof; /* "c=biws,r=..." */
	char *auth_msg;
	unsigned char salted[HASH_LEN];
	bool have_salted; /* salted came from the cache */
	unsigned char server_signature[HASH_LEN];
	bool sent_final;
	bool verified;
	char error[160];
};

int sasl_plain(const char *authzid, const char *user, const char *password, char **ret_msg,
	       size_t *ret_len)
{
	size_t a = authzid ? strlen(authzid) : 0, u = strlen(user), p = strlen(password);
	char *msg = malloc(a + u + p + 3);

	if (!msg)
		return -ENOMEM;
	memcpy(msg, authzid ? authzid : "", a);
	msg[a] = '\0';
	memcpy(msg + a + 1, user, u);
	msg[a + 1 + u] = '\0';
	memcpy(msg + a + u + 2, password, p);
	msg[a + u + p + 2] = '\0';
	*ret_msg = msg;
	*ret_len = a + u + p + 2;
	return 0;
}

static void set_error(struct sasl_scram *s, const char *msg)
{
	snprintf(s->error, sizeof(s->error), "%s", msg);
}

/* Quotes the server's e= value in the error, printable ASCII only. */
static void set_server_error(struct sasl_scram *s, const char *what, const char *v, size_t len)
{
	size_t o = (size_t)snprintf(s->error, sizeof(s->error), "%s (e=", what);

	if (o + 2 >= sizeof(s->error))
		return;

	for (size_t i = 0; i < len && v[i] != ',' && o + 2 < sizeof(s->error); i++)
		s->error[o++] = v[i] >= 0x20 && v[i] <= 0x7e ? v[i] : '?';
	s->error[o++] = ')';
	s->error[o] = '\0';
}

static bool has_control(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* Forgets what an earlier server-first left. */
static void server_first_clear(struct sasl_scram *s)
{
	free(s->salt);
	s->salt = NULL;
	s->salt_len = 0;
	s->iterations = 0;
	free(s->without_proof);
	s->without_proof = NULL;
	free(s->auth_msg);
	s->auth_msg = NULL;
	OPENSSL_cleanse(s->salted, sizeof(s->salted));
	s->have_salted = false;
}

struct sasl_scram *sasl_scram_free(struct sasl_scram *s)
{
	if (!s)
		return NULL;
	server_first_clear(s);
	free_secret(s->password);
	free(s->user);
	free(s->nonce);
	free(s->client_first_bare);
	free(s->cache_key);
	explicit_bzero(s, sizeof(*s));
	free(s);
	return NULL;
}

int sasl_scram_new(const char *user, const char *password, struct sasl_scram **ret)
{
	struct sasl_scram *s;
	struct buf u = BUF_INIT(1024);
	int r = 0;

	if (!user || !password || !ret)
		return -EINVAL;
	/* SASLprep (RFC 4013) in its minimal form: control characters are
	 * prohibited; anything else is used unchanged. */
	if (has_control(user) || has_control(password))
		return -EINVAL;
	for (const char *p = user; *p && r >= 0; p++) {
		if (*p == ',')
			r = buf_append_str(&u, "=2C");
		else if (*p == '=')
			r = buf_append_str(&u, "=3D");
		else
			r = buf_append_char(&u, *p);
	}
	if (r < 0 || !u.data) {
		buf_free(&u);
		return r < 0 ? r : -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		buf_free(&u);
		return -ENOMEM;
	}
	s->user = buf_steal(&u);
	s->password = strdup(password);
	if (!s->password) {
		sasl_scram_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

int sasl_scram_set_nonce_for_test(struct sasl_scram *s, const char *nonce)
{
	if (!*nonce)
		return -EINVAL;
	for (const char *p = nonce; *p; p++)
		if (*p < 0x21 || *p > 0x7e || *p == ',')
			return -EINVAL;
	free(s->nonce);
	s->nonce = strdup(nonce);
	return s->nonce ? 0 : -ENOMEM;
}

int sasl_scram_client_first(struct sasl_scram *s, char **ret_msg)
{
	char *msg;
	int r;

	if (!s->nonce) {
		unsigned char raw[24];

		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return -EIO;
		r = base64_encode(raw, sizeof(raw), &s->nonce);
		if (r < 0)
			return r;
	}
	free(s->client_first_bare);
	if (asprintf(&s->client_first_bare, "n=%s,r=%s", s->user, s->nonce) < 0) {
		s->client_first_bare = NULL;
		return -ENOMEM;
	}
	if (asprintf(&msg, "n,,%s", s->client_first_bare) < 0)
		return -ENOMEM;
	*ret_msg = msg;
	return 0;
}

/*
 * Takes the next attribute of a comma-separated message, which must be
 * "k=value"; advances *pos past it and its comma.
 */
static bool next_attr(const char *msg, size_t len, size_t *pos, char k, const char **ret,
		      size_t *ret_len)
{
	size_t i = *pos, j;

	if (len - i < 2 || msg[i] != k || msg[i + 1] != '=')
		return false;
	for (j = i + 2; j < len && msg[j] != ','; j++)
		;
	*ret = msg + i + 2;
	*ret_len = j - i - 2;
	*pos = j < len ? j + 1 : j;
	return true;
}

/* Finds "k=" attribute k in a comma-separated message; value up to ','. */
static bool attr(const char *msg, size_t len, char k, const char **ret, size_t *ret_len)
{
	size_t i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && msg[j] != ',')
			j++;
		if (j - i >= 2 && msg[i] == k && msg[i + 1] == '=') {
			*ret = msg + i + 2;
			*ret_len = j - i - 2;
			return true;
		}
		i = j + 1;
	}
	return false;
}

static int hmac(const unsigned char *key, size_t klen, const void *data, size_t dlen,
		unsigned char out[HASH_LEN])
{
	unsigned int n = HASH_LEN;

	return HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &n) ? 0 : -EIO;
}

/* ------------------------------------------------------------------ */
/*
 * The SaltedPassword cache (RFC 5802 section 5.1: a client may cache
 * SaltedPassword, or ClientKey/ServerKey, for a salt and iteration count).
 * Memory only, at most SCRAM_CACHE_MAX entries (the least recently used
 * goes), each wiped when it is replaced or forgotten.  The password itself
 * is not kept: an entry holds HMAC(SaltedPassword, password), so that a
 * different password (it changed) misses and replaces the entry.  That
 * value lets whoever reads this memory test guesses of the password at
 * HMAC speed; such a reader runs as the user and can read the password
 * file or run the password command anyway, and already has
 * SaltedPassword, which logs in to that server.
 */
#define SCRAM_CACHE_MAX 32

struct scram_cache_entry {
	char *key; /* NULL: free slot */
	unsigned char *salt;
	size_t salt_len;
	unsigned long iterations;
	unsigned char salted[HASH_LEN];
	unsigned char check[HASH_LEN];
	uint64_t used;
};

static struct scram_cache_entry scram_cache[SCRAM_CACHE_MAX];
static uint64_t scram_cache_clock;
static unsigned scram_pbkdf2_runs;
static pthread_mutex_t scram_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void cache_entry_wipe(struct scram_cache_entry *e)
{
	free(e->key);
	free(e->salt);
	OPENSSL_cleanse(e, sizeof(*e));
}

static struct scram_cache_entry *cache_find(const char *key)
{
	for (size_t i = 0; i < SCRAM_CACHE_MAX; i++)
		if (scram_cache[i].key && strcmp(scram_cache[i].key, key) == 0)
			return &scram_cache[i];
	return NULL;
}

int sasl_scram_set_cache_key(struct sasl_scram *s, const char *key)
{
	char *k = strdup(key);

	if (!k)
		return -ENOMEM;
	free(s->cache_key);
	s->cache_key = k;
	return 0;
}

void sasl_scram_cache_forget(const char *key)
{
	struct scram_cache_entry *e;

	pthread_mutex_lock(&scram_cache_lock);
	e = cache_find(key);
	if (e)
		cache_entry_wipe(e);
	pthread_mutex_unlock(&scram_cache_lock);
}

void sasl_scram_uncache(struct sasl_scram *s)
{
	if (s && s->cache_key)
		sasl_scram_cache_forget(s->cache_key);
}

void sasl_scram_cache_clear(void)
{
	pthread_mutex_lock(&scram_cache_lock);
	for (size_t i = 0; i < SCRAM_CACHE_MAX; i++)
		if (scram_cache[i].key)
			cache_entry_wipe(&scram_cache[i]);
	pthread_mutex_unlock(&scram_cache_lock);
}

unsigned sasl_scram_pbkdf2_runs(void)
{
	unsigned n;

	pthread_mutex_lock(&scram_cache_lock);
	n = scram_pbkdf2_runs;
	pthread_mutex_unlock(&scram_cache_lock);
	return n;
}

/* The cache's SaltedPassword for s's key, salt, count and password, if it
 * holds it: into s->salted. */
static bool cache_lookup(struct sasl_scram *s)
{
	size_t plen = strlen(s->password);
	unsigned char check[HASH_LEN];
	struct scram_cache_entry *e;
	bool hit = false;

	if (!s->cache_key)
		return false;
	pthread_mutex_lock(&scram_cache_lock);
	e = cache_find(s->cache_key);
	if (e && e->iterations == s->iterations && e->salt_len == s->salt_len &&
	    memcmp(e->salt, s->salt, s->salt_len) == 0 &&
	    hmac(e->salted, HASH_LEN, s->password, plen, check) == 0 &&
	    CRYPTO_memcmp(check, e->check, HASH_LEN) == 0) {
		memcpy(s->salted, e->salted, HASH_LEN);
		e->used = ++scram_cache_clock;
		hit = true;
	}
	pthread_mutex_unlock(&scram_cache_lock);
	OPENSSL_cleanse(check, sizeof(check));
	return hit;
}

/* Keeps salted (just computed for s's salt and count) under s's key. */
static void cache_store(const struct sasl_scram *s, const unsigned char salted[HASH_LEN])
{
	unsigned char check[HASH_LEN];
	struct scram_cache_entry *slot;

	if (!s->cache_key || hmac(salted, HASH_LEN, s->password, strlen(s->password), check) < 0)
		return;
	pthread_mutex_lock(&scram_cache_lock);
	/* The key's own entry (another salt, count or password before), else
	 * a free slot, else the least recently used. */
	slot = cache_find(s->cache_key);
	for (size_t i = 0; !slot && i < SCRAM_CACHE_MAX; i++)
		if (!scram_cache[i].key)
			slot = &scram_cache[i];
	if (!slot) {
		slot = &scram_cache[0];
		for (size_t i = 1; i < SCRAM_CACHE_MAX; i++)
			if (scram_cache[i].used < slot->used)
				slot = &scram_cache[i];
	}
	cache_entry_wipe(slot);
	slot->key = strdup(s->cache_key);
	slot->salt = malloc(s->salt_len);
	if (!slot->key || !slot->salt) {
		cache_entry_wipe(slot); /* not cached: no harm */
	} else {
		memcpy(slot->salt, s->salt, s->salt_len);
		slot->salt_len = s->salt_len;
		slot->iterations = s->iterations;
		memcpy(slot->salted, salted, HASH_LEN);
		memcpy(slot->check, check, HASH_LEN);
		slot->used = ++scram_cache_clock;
	}
	pthread_mutex_unlock(&scram_cache_lock);
	OPENSSL_cleanse(check, sizeof(check));
}

/* ------------------------------------------------------------------ */
/* PBKDF2, on whichever thread the caller likes */

struct sasl_scram_derive {
	char *password;
	unsigned char *salt;
	size_t salt_len;
	unsigned long iterations;
	unsigned char salted[HASH_LEN];
	int r; /* 1: not run yet; then 0 or -errno */
};

static int scram_pbkdf2_running;	       /* atomic */
static sasl_scram_pbkdf2_fn_t pbkdf2_for_test; /* atomic */

void sasl_scram_set_pbkdf2_for_test(sasl_scram_pbkdf2_fn_t fn)
{
	__atomic_store_n(&pbkdf2_for_test, fn, __ATOMIC_RELEASE);
}

unsigned sasl_scram_pbkdf2_running(void)
{
	return (unsigned)__atomic_load_n(&scram_pbkdf2_running, __ATOMIC_ACQUIRE);
}

int sasl_scram_derive_new(const struct sasl_scram *s, struct sasl_scram_derive **ret)
{
	struct sasl_scram_derive *d;

	if (!s->salt || !s->auth_msg)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->password = strdup(s->password);
	d->salt = malloc(s->salt_len);
	if (!d->password || !d->salt) {
		sasl_scram_derive_free(d);
		return -ENOMEM;
	}
	memcpy(d->salt, s->salt, s->salt_len);
	d->salt_len = s->salt_len;
	d->iterations = s->iterations;
	d->r = 1;
	*ret = d;
	return 0;
}

struct sasl_scram_derive *sasl_scram_derive_free(struct sasl_scram_derive *d)
{
	if (!d)
		return NULL;
	free_secret(d->password);
	free(d->salt);
	OPENSSL_cleanse(d, sizeof(*d));
	free(d);
	return NULL;
}

void sasl_scram_derive_run(struct sasl_scram_derive *d)
{
	sasl_scram_pbkdf2_fn_t fn = __atomic_load_n(&pbkdf2_for_test, __ATOMIC_ACQUIRE);
	size_t plen = strlen(d->password);

	__atomic_add_fetch(&scram_pbkdf2_running, 1, __ATOMIC_ACQ_REL);
	if (fn)
		d->r = fn(d->password, plen, d->salt, d->salt_len, d->iterations, d->salted);
	else if (PKCS5_PBKDF2_HMAC(d->password, (int)plen, d->salt, (int)d->salt_len,
				   (int)d->iterations, EVP_sha256(), HASH_LEN, d->salted) == 1)
		d->r = 0;
	else
		d->r = -EIO;
	if (d->r > 0)
		d->r = -EIO; /* a test's function must say 0 or -errno */
	if (d->r == 0) {
		pthread_mutex_lock(&scram_cache_lock);
		scram_pbkdf2_runs++;
		pthread_mutex_unlock(&scram_cache_lock);
	} else {
		OPENSSL_cleanse(d->salted, sizeof(d->salted));
	}
	__atomic_sub_fetch(&scram_pbkdf2_running, 1, __ATOMIC_ACQ_REL);
}

/* ------------------------------------------------------------------ */
/* client-final */

int sasl_scram_read_server_first(struct sasl_scram *s, const char *server_first, size_t len)
{
	const char *nonce, *salt64, *iter;
	size_t nonce_len, salt64_len, iter_len, salt_len = 0;
	void *salt = NULL;
	unsigned long iterations = 0;
	size_t pos = 0;

	s->error[0] = '\0';
	server_first_clear(s);
	if (!s->client_first_bare) {
		set_error(s, "client-first was not sent");
		return -EINVAL;
	}
	if (len == 0 || len > MAX_MESSAGE || memchr(server_first, '\0', len)) {
		set_error(s, "malformed server-first message");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (len >= 2 && server_first[0] == 'm' && server_first[1] == '=') {
		set_error(s, "the server requires an unsupported SCRAM extension (m=)");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (len >= 2 && server_first[0] == 'e' && server_first[1] == '=') {
		set_server_error(s, "the server refused the SCRAM exchange", server_first + 2,
				 len - 2);
		return -CPMSYNC_E_AUTH;
	}
	/* r=nonce,s=salt,i=count[,extensions], in this order (RFC 5802). */
	if (!next_attr(server_first, len, &pos, 'r', &nonce, &nonce_len) ||
	    !next_attr(server_first, len, &pos, 's', &salt64, &salt64_len) ||
	    !next_attr(server_first, len, &pos, 'i', &iter, &iter_len) ||
	    (pos < len && (len - pos < 2 || server_first[pos + 1] != '=')) ||
	    (pos == len && server_first[len - 1] == ',')) {
		set_error(s, "malformed server-first message (expected r=,s=,i=)");
		return -CPMSYNC_E_PROTOCOL;
	}
	for (size_t i = 0; i < nonce_len; i++) {
		if (nonce[i] < 0x21 || nonce[i] > 0x7e) {
			set_error(s, "the server's nonce has invalid characters");
			return -CPMSYNC_E_PROTOCOL;
		}
	}
	if (nonce_len <= strlen(s->nonce) || memcmp(nonce, s->nonce, strlen(s->nonce)) != 0) {
		set_error(s, "the server's nonce does not extend ours");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (iter_len == 0) {
		set_error(s, "bad iteration count");
		return -CPMSYNC_E_PROTOCOL;
	}
	for (size_t i = 0; i < iter_len; i++) {
		if (iter[i] < '0' || iter[i] > '9') {
			set_error(s, "bad iteration count");
			return -CPMSYNC_E_PROTOCOL;
		}
		/* Saturates: anything above the limit is refused below. */
		if (iterations <= SASL_SCRAM_MAX_ITERATIONS)
			iterations = iterations * 10 + (unsigned long)(iter[i] - '0');
	}
	if (iterations == 0) {
		set_error(s, "bad iteration count 0");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (iterations < SASL_SCRAM_MIN_ITERATIONS) {
		snprintf(s->error, sizeof(s->error),
			 "iteration count %lu too small (RFC 7677 requires at least %u)",
			 iterations, (unsigned)SASL_SCRAM_MIN_ITERATIONS);
		return -CPMSYNC_E_PROTOCOL;
	}
	if (iterations > SASL_SCRAM_MAX_ITERATIONS) {
		snprintf(s->error, sizeof(s->error), "iteration count %.*s too large (limit %u)",
			 iter_len > 20 ? 20 : (int)iter_len, iter,
			 (unsigned)SASL_SCRAM_MAX_ITERATIONS);
		return -CPMSYNC_E_PROTOCOL;
	}
	if (base64_decode(salt64, salt64_len, &salt, &salt_len) < 0 || salt_len == 0) {
		free(salt);
		set_error(s, "the salt is not base64");
		return -CPMSYNC_E_PROTOCOL;
	}
	s->salt = salt;
	s->salt_len = salt_len;
	s->iterations = iterations;
	if (asprintf(&s->without_proof, "c=biws,r=%.*s", (int)nonce_len, nonce) < 0) {
		s->without_proof = NULL;
		goto nomem;
	}
	if (asprintf(&s->auth_msg, "%s,%.*s,%s", s->client_first_bare, (int)len, server_first,
		     s->without_proof) < 0) {
		s->auth_msg = NULL;
		goto nomem;
	}
	s->have_salted = cache_lookup(s);
	return s->have_salted ? 0 : 1;
nomem:
	server_first_clear(s);
	set_error(s, "cannot compute the SCRAM proof (out of memory)");
	return -ENOMEM;
}

int sasl_scram_client_final_finish(struct sasl_scram *s, const struct sasl_scram_derive *d,
				   char **ret_msg)
{
	unsigned char salted[HASH_LEN], client_key[HASH_LEN], stored_key[HASH_LEN],
		client_sig[HASH_LEN], proof[HASH_LEN], server_key[HASH_LEN];
	_cleanup_free_ char *proof64 = NULL;
	int r = -EIO;

	s->error[0] = '\0';
	if (!s->auth_msg || (!d && !s->have_salted)) {
		set_error(s, "server-first was not read");
		return -EINVAL;
	}
	if (d) {
		if (d->r != 0) {
			set_error(s, d->r > 0 ? "the SCRAM key derivation (PBKDF2) did not run"
					      : "the SCRAM key derivation (PBKDF2) failed");
			return d->r < 0 ? d->r : -EINVAL;
		}
		if (d->iterations != s->iterations || d->salt_len != s->salt_len ||
		    memcmp(d->salt, s->salt, s->salt_len) != 0) {
			set_error(s, "the SCRAM key derivation was for another server-first");
			return -EINVAL;
		}
		memcpy(salted, d->salted, HASH_LEN);
		cache_store(s, salted);
	} else {
		memcpy(salted, s->salted, HASH_LEN);
	}
	if (hmac(salted, HASH_LEN, "Client Key", 10, client_key) < 0 ||
	    !EVP_Digest(client_key, HASH_LEN, stored_key, NULL, EVP_sha256(), NULL) ||
	    hmac(stored_key, HASH_LEN, s->auth_msg, strlen(s->auth_msg), client_sig) < 0 ||
	    hmac(salted, HASH_LEN, "Server Key", 10, server_key) < 0 ||
	    hmac(server_key, HASH_LEN, s->auth_msg, strlen(s->auth_msg), s->server_signature) < 0)
		goto out;
	for (size_t i = 0; i < HASH_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	r = base64_encode(proof, HASH_LEN, &proof64);
	if (r < 0)
		goto out;
	if (asprintf(ret_msg, "%s,p=%s", s->without_proof, proof64) < 0) {
		r = -ENOMEM;
		goto out;
	}
	s->sent_final = true;
	r = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	if (r < 0 && !s->error[0])
		set_error(s, "cannot compute the SCRAM proof");
	return r;
}

int sasl_scram_client_final(struct sasl_scram *s, const char *server_first, size_t len,
			    char **ret_msg)
{
	struct sasl_scram_derive *d = NULL;
	int r;

	r = sasl_scram_read_server_first(s, server_first, len);
	if (r < 0)
		return r;
	if (r > 0) {
		r = sasl_scram_derive_new(s, &d);
		if (r < 0) {
			set_error(s, "cannot compute the SCRAM proof (out of memory)");
			return r;
		}
		sasl_scram_derive_run(d);
	}
	r = sasl_scram_client_final_finish(s, d, ret_msg);
	sasl_scram_derive_free(d);
	return r;
}

int sasl_scram_verify_server_final(struct sasl_scram *s, const char *server_final, size_t len)
{
	_cleanup_free_ void *sig = NULL;
	const char *v;
	size_t vlen, siglen = 0;

	s->error[0] = '\0';
	if (!s->sent_final) {
		set_error(s, "server-final before client-final");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (len > MAX_MESSAGE) {
		set_error(s, "malformed server-final message");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (len >= 2 && server_final[0] == 'e' && server_final[1] == '=') {
		set_server_error(s, "the server rejected the proof (wrong password?)",
				 server_final + 2, len - 2);
		sasl_scram_uncache(s);
		return -CPMSYNC_E_AUTH;
	}
	if (!attr(server_final, len, 'v', &v, &vlen) || base64_decode(v, vlen, &sig, &siglen) < 0 ||
	    siglen != HASH_LEN || CRYPTO_memcmp(sig, s->server_signature, HASH_LEN) != 0) {
		set_error(s, "server signature mismatch: the server does not know the password "
			     "(possible impostor)");
		sasl_scram_uncache(s);
		return -CPMSYNC_E_AUTH;
	}
	s->verified = true;
	return 0;
}

bool sasl_scram_has_final(const struct sasl_scram *s)
{
	return s->sent_final;
}

bool sasl_scram_verified(const struct sasl_scram *s)
{
	return s->verified;
}

const char *sasl_scram_error(const struct sasl_scram *s)
{
	return s->error;
}
