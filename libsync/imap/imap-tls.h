/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * TLS over a non-blocking socket, through OpenSSL.  The only file that
 * includes <openssl/ssl.h>.  The peer is verified against the system trust
 * store plus an optional extra CA file, and its certificate must name the
 * host we connected to (DNS name or IP address).  TLS 1.2 is the minimum.
 *
 * Every call that returns -EAGAIN stores in *ret_want which socket event
 * (CPMSYNC_LOOP_IN or CPMSYNC_LOOP_OUT) must happen before trying again.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct imap_tls;

/*
 * fd stays owned by the caller.  host, ca_file and client_cert are copied.
 * client_cert (or NULL) is a PEM file holding a certificate, its chain and
 * its private key, presented when the server asks for one; a file that
 * cannot be read or whose key does not match fails here.
 */
int imap_tls_new(int fd, const char *host, const char *ca_file, const char *client_cert,
		 struct imap_tls **ret_tls, char **ret_error);
/* The client certificate as "subject, issued by ..., valid until ...
 * [(expired)]", to explain a refusal; "" without one.  Borrowed. */
const char *imap_tls_client_cert_info(const struct imap_tls *tls);
struct imap_tls *imap_tls_free(struct imap_tls *tls);

/* 0 when done, -EAGAIN, -CPMSYNC_E_TLS_VERIFY or -CPMSYNC_E_TLS (reason in
 * imap_tls_error()). */
int imap_tls_handshake(struct imap_tls *tls, uint32_t *ret_want);

/* Bytes read (> 0), 0 at a clean end of stream, -EAGAIN, or an error. */
ssize_t imap_tls_read(struct imap_tls *tls, void *data, size_t len, uint32_t *ret_want);
/* Bytes written (> 0), -EAGAIN, or an error. */
ssize_t imap_tls_write(struct imap_tls *tls, const void *data, size_t len, uint32_t *ret_want);
/* True when decrypted bytes are waiting inside OpenSSL (no fd event will
 * announce them). */
int imap_tls_pending(struct imap_tls *tls);

/* Why the last call failed ("certificate verify failed: unable to get local
 * issuer certificate"); borrowed, "" when there is no error. */
const char *imap_tls_error(const struct imap_tls *tls);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", for debug logs. */
const char *imap_tls_description(const struct imap_tls *tls);
