/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/imap-tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cpmsync/error.h>
#include <cpmsync/loop.h>

#include "util/macro.h"

struct imap_tls {
	SSL_CTX *ctx;
	SSL *ssl;
	char error[512];
	char desc[128];
	char cert_info[400];
};

/* One line about the certificate: subject, issuer, end of validity. */
static void describe_cert(struct imap_tls *tls, X509 *x)
{
	char subject[128] = "", issuer[128] = "", until[64] = "";
	BIO *b = BIO_new(BIO_s_mem());
	int days = 0, secs = 0;

	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
	X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
	if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) > 0) {
		int n = BIO_read(b, until, sizeof(until) - 1);

		until[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x));
	snprintf(tls->cert_info, sizeof(tls->cert_info), "%s, issued by %s, valid until %s%s",
		 subject, issuer, until, days < 0 || secs < 0 ? " (expired)" : "");
}

static bool is_ip_address(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* Drains OpenSSL's error queue into tls->error, after prefix. */
static void set_error(struct imap_tls *tls, const char *prefix)
{
	unsigned long e;
	size_t n;

	n = (size_t)snprintf(tls->error, sizeof(tls->error), "%s", prefix);
	while ((e = ERR_get_error()) != 0) {
		char one[256];

		if (n >= sizeof(tls->error) - 1)
			continue;
		ERR_error_string_n(e, one, sizeof(one));
		n += (size_t)snprintf(tls->error + n, sizeof(tls->error) - n, "%s%s", n ? ": " : "",
				      one);
	}
}

struct imap_tls *imap_tls_free(struct imap_tls *tls)
{
	if (!tls)
		return NULL;
	SSL_free(tls->ssl);
	SSL_CTX_free(tls->ctx);
	free(tls);
	return NULL;
}

int imap_tls_new(int fd, const char *host, const char *ca_file, const char *client_cert,
		 struct imap_tls **ret_tls, char **ret_error)
{
	struct imap_tls *tls;
	const char *what = NULL;
	char msg[256];

	tls = calloc(1, sizeof(*tls));
	if (!tls)
		return -ENOMEM;
	ERR_clear_error();
	tls->ctx = SSL_CTX_new(TLS_client_method());
	if (!tls->ctx) {
		what = "cannot create a TLS context";
		goto fail;
	}
	SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(tls->ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_default_verify_paths(tls->ctx) != 1) {
		what = "cannot load the system trust store";
		goto fail;
	}
	if (ca_file && SSL_CTX_load_verify_locations(tls->ctx, ca_file, NULL) != 1) {
		snprintf(msg, sizeof(msg), "cannot load ca_file '%s'", ca_file);
		what = msg;
		goto fail;
	}
	if (client_cert) {
		if (SSL_CTX_use_certificate_chain_file(tls->ctx, client_cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(tls->ctx, client_cert, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(tls->ctx) != 1) {
			snprintf(msg, sizeof(msg),
				 "cannot use client_cert '%s' (a PEM certificate and its key)",
				 client_cert);
			what = msg;
			goto fail;
		}
		describe_cert(tls, SSL_CTX_get0_certificate(tls->ctx));
	}
	tls->ssl = SSL_new(tls->ctx);
	if (!tls->ssl || SSL_set_fd(tls->ssl, fd) != 1) {
		what = "cannot create a TLS session";
		goto fail;
	}
	if (is_ip_address(host)) {
		X509_VERIFY_PARAM *param = SSL_get0_param(tls->ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
			what = "cannot set the expected IP address";
			goto fail;
		}
	} else {
		if (SSL_set_tlsext_host_name(tls->ssl, host) != 1 ||
		    SSL_set1_host(tls->ssl, host) != 1) {
			what = "cannot set the expected host name";
			goto fail;
		}
		SSL_set_hostflags(tls->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	*ret_tls = tls;
	return 0;
fail:
	if (ret_error) {
		set_error(tls, what);
		*ret_error = strdup(tls->error);
	}
	imap_tls_free(tls);
	return -CPMSYNC_E_TLS;
}

/* Maps an SSL_* result to 0/-EAGAIN/-error, filling tls->error. */
static int map_result(struct imap_tls *tls, int ret, const char *op, uint32_t *ret_want)
{
	int e = SSL_get_error(tls->ssl, ret);
	char prefix[128];

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*ret_want = CPMSYNC_LOOP_IN;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		*ret_want = CPMSYNC_LOOP_OUT;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			int err = errno ? errno : EPIPE;

			snprintf(tls->error, sizeof(tls->error), "TLS %s: %s", op,
				 ret == 0 ? "connection closed by the server" : strerror(err));
			return ret == 0 ? -CPMSYNC_E_DISCONNECTED : -err;
		}
		/* fall through */
	default:
		snprintf(prefix, sizeof(prefix), "TLS %s failed", op);
		set_error(tls, prefix);
		return -CPMSYNC_E_TLS;
	}
}

int imap_tls_handshake(struct imap_tls *tls, uint32_t *ret_want)
{
	int ret, r;
	long v;

	ERR_clear_error();
	ret = SSL_connect(tls->ssl);
	if (ret == 1) {
		snprintf(tls->desc, sizeof(tls->desc), "%s %s", SSL_get_version(tls->ssl),
			 SSL_CIPHER_get_name(SSL_get_current_cipher(tls->ssl)));
		return 0;
	}
	v = SSL_get_verify_result(tls->ssl);
	if (v != X509_V_OK) {
		const char *why = X509_verify_cert_error_string(v);

		if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			why = "the certificate does not match the host name";
		snprintf(tls->error, sizeof(tls->error), "server certificate refused: %s", why);
		ERR_clear_error();
		return -CPMSYNC_E_TLS_VERIFY;
	}
	r = map_result(tls, ret, "handshake", ret_want);
	if (r == 0) {
		snprintf(tls->error, sizeof(tls->error),
			 "TLS handshake: connection closed by the server");
		return -CPMSYNC_E_TLS;
	}
	return r;
}

ssize_t imap_tls_read(struct imap_tls *tls, void *data, size_t len, uint32_t *ret_want)
{
	size_t n = 0;
	int ret;

	ERR_clear_error();
	ret = SSL_read_ex(tls->ssl, data, len, &n);
	if (ret == 1)
		return (ssize_t)n;
	return map_result(tls, ret, "read", ret_want);
}

ssize_t imap_tls_write(struct imap_tls *tls, const void *data, size_t len, uint32_t *ret_want)
{
	size_t n = 0;
	int ret, r;

	ERR_clear_error();
	ret = SSL_write_ex(tls->ssl, data, len, &n);
	if (ret == 1)
		return (ssize_t)n;
	r = map_result(tls, ret, "write", ret_want);
	return r == 0 ? -CPMSYNC_E_DISCONNECTED : r;
}

int imap_tls_pending(struct imap_tls *tls)
{
	return SSL_pending(tls->ssl) > 0;
}

const char *imap_tls_error(const struct imap_tls *tls)
{
	return tls->error;
}

const char *imap_tls_client_cert_info(const struct imap_tls *tls)
{
	return tls->cert_info;
}

const char *imap_tls_description(const struct imap_tls *tls)
{
	return tls->desc;
}
