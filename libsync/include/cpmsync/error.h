/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_ERROR_H
#define CPMSYNC_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Errors are values.  Every libcpmsync function that can fail returns an
 * int: 0 (or a documented positive count) on success, -errno for operating
 * system and transport failures (-ENOMEM, -ECONNREFUSED, -ETIMEDOUT, -EIO),
 * or -CPMSYNC_E_* for domain failures.  The CPMSYNC_E_* range starts far
 * above any errno value so the two never collide.  Each code tells the
 * caller what to do next.
 */
enum cpmsync_error {
	CPMSYNC_E_BASE = 0x10000,
	CPMSYNC_E_NOT_FOUND,	 /* no such account, folder or message */
	CPMSYNC_E_OFFLINE,	 /* needs the server; the account is offline */
	CPMSYNC_E_NOT_SUPPORTED, /* the server lacks an extension (detail names it) */
	CPMSYNC_E_SERVER,	 /* tagged NO or BAD (detail carries the server's text) */
	CPMSYNC_E_AUTH, /* authentication rejected: do not retry until the credentials change */
	CPMSYNC_E_TLS_VERIFY, /* certificate or host name verification failed */
	CPMSYNC_E_TLS,	      /* TLS handshake or record layer failed */
	CPMSYNC_E_STARTTLS,   /* STARTTLS not offered or refused (security=starttls fails closed) */
	CPMSYNC_E_INSECURE,   /* refused to send credentials or data without TLS */
	CPMSYNC_E_PROTOCOL, /* the server sent something we cannot parse, or a limit was exceeded */
	CPMSYNC_E_BYE,	    /* the server closed the session (BYE) */
	CPMSYNC_E_DISCONNECTED, /* the connection was lost */
	CPMSYNC_E_UIDVALIDITY,	/* folder must be resynchronized from scratch */
	CPMSYNC_E_CONFIG,	/* invalid account settings */
	CPMSYNC_E_STORE_BUSY,
	CPMSYNC_E_STORE_CORRUPT,
	CPMSYNC_E_STORE_FULL,
	CPMSYNC_E_CANCELED,   /* the operation was cancelled by its owner */
	CPMSYNC_E_STORE_GONE, /* the store's file was removed or replaced while open */
	CPMSYNC_E_MAX
};

/* A static, human-readable description of r (-errno or -CPMSYNC_E_*). */
const char *cpmsync_strerror(int r);

#ifdef __cplusplus
}
#endif
#endif
