/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_PREVIEW_H
#define CPMSYNC_PREVIEW_H

/*
 * Previews of body parts (contract: Folder1.Preview): a scaled image of an
 * image part, a plain-text excerpt of a text part.
 *
 * cpmsync_preview() answers from the store's cache when it can; else it
 * asks the server (CONVERT, RFC 5259) when the session's server offers
 * it; else it converts locally, from the stored body or from the part
 * fetched from the server.  Images are converted by a helper program
 * (cpm-preview, installed under libexec) in a short-lived process with
 * resource limits and a seccomp filter: libcpmsync never decodes an image
 * itself.  Text parts are decoded here (transfer encoding, charset).
 * Results are cached in the store by (message, section, format, size) and
 * dropped with the message.
 *
 * The helper protocol (below) is public so that the helper, the library
 * and the tests share one definition.
 */

#include <stddef.h>
#include <stdint.h>

#include <cpmsync/loop.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* The helper protocol.
 *
 * The helper is started with fd 0 a stream socket (request in, response
 * out), fd 1 and 2 /dev/null, nothing else open; it may be started before
 * there is a request.  It reads one request (a fixed
 * CPMSYNC_PREVIEW_HEADER_SIZE header, with the image attached to it as a
 * file descriptor, SCM_RIGHTS: a sealed memfd of exactly input_size
 * bytes), writes one response (a header of
 * the same size, then `length` bytes: the image, or the error text in
 * UTF-8), and exits.  All numbers are little-endian.  Anything that does
 * not decode is an error: the magic, the version, the kind, a format or
 * status out of range, sizes past the limits below. */

#define CPMSYNC_PREVIEW_HEADER_SIZE 32
#define CPMSYNC_PREVIEW_VERSION	    1
/* Largest input image, output image and error text. */
#define CPMSYNC_PREVIEW_MAX_INPUT  (64u * 1024 * 1024)
#define CPMSYNC_PREVIEW_MAX_OUTPUT (32u * 1024 * 1024)
#define CPMSYNC_PREVIEW_MAX_TEXT   1024u
/* Largest requested side, and largest source image (pixels) converted. */
#define CPMSYNC_PREVIEW_MAX_SIDE   4096u
#define CPMSYNC_PREVIEW_MAX_PIXELS (80u * 1000 * 1000)

enum cpmsync_preview_format {
	CPMSYNC_PREVIEW_JPEG = 1,
	CPMSYNC_PREVIEW_PNG = 2,
	CPMSYNC_PREVIEW_WEBP = 3,
};

enum cpmsync_preview_status {
	CPMSYNC_PREVIEW_OK = 0,
	CPMSYNC_PREVIEW_E_REQUEST = 1,	 /* the request did not decode */
	CPMSYNC_PREVIEW_E_NOT_IMAGE = 2, /* not a JPEG, PNG, WebP or GIF image */
	CPMSYNC_PREVIEW_E_TOO_LARGE = 3, /* more than CPMSYNC_PREVIEW_MAX_PIXELS */
	CPMSYNC_PREVIEW_E_DAMAGED = 4,	 /* truncated or corrupt image data */
	CPMSYNC_PREVIEW_E_INTERNAL = 5,	 /* the converter failed otherwise */
	_CPMSYNC_PREVIEW_STATUS_MAX
};

struct cpmsync_preview_request {
	uint32_t format; /* enum cpmsync_preview_format */
	uint32_t width, height;
	uint64_t input_size;
};

struct cpmsync_preview_response {
	uint32_t status;	/* enum cpmsync_preview_status */
	uint32_t width, height; /* of the image sent (0 on error) */
	uint64_t length;	/* bytes that follow */
};

/* Encode into / decode from exactly CPMSYNC_PREVIEW_HEADER_SIZE bytes.
 * Decoding returns 0, -EPROTO (not this protocol or version) or -EINVAL
 * (a value out of range). */
int cpmsync_preview_request_encode(const struct cpmsync_preview_request *req, uint8_t *out);
int cpmsync_preview_request_decode(const uint8_t *in, struct cpmsync_preview_request *ret);
int cpmsync_preview_response_encode(const struct cpmsync_preview_response *resp, uint8_t *out);
int cpmsync_preview_response_decode(const uint8_t *in, struct cpmsync_preview_response *ret);

/* "image/jpeg" ... to the enum; 0 for anything else. */
uint32_t cpmsync_preview_format_from_type(const char *media_type);

/* ------------------------------------------------------------------ */
/* Previews. */

struct cpmsync_previewer;

/*
 * helper: the cpm-preview program; NULL means $CPMSYNC_PREVIEW_HELPER when
 * set, else the installed one ($(LIBEXECDIR)/cpmsync/cpm-preview).  At
 * most CPMSYNC_PREVIEW_MAX_RUNNING helpers run at once (the others wait);
 * one that runs longer than CPMSYNC_PREVIEW_TIMEOUT_MS is killed.
 */
#define CPMSYNC_PREVIEW_MAX_RUNNING 2
#define CPMSYNC_PREVIEW_TIMEOUT_MS  20000
int cpmsync_previewer_new(struct cpmsync_loop *loop, struct cpmsync_store *store,
			  const char *helper, struct cpmsync_previewer **ret);
/* Kills running helpers; pending callbacks get -CPMSYNC_E_CANCELED.
 * Accepts NULL; returns NULL. */
struct cpmsync_previewer *cpmsync_previewer_free(struct cpmsync_previewer *p);

/*
 * A preview of part section ("" the message's body, "2", "1.3") of a
 * stored message, in format ("image/jpeg", "image/png", "image/webp" from
 * an image part; "text/plain" from a text part: width characters by
 * height lines), fitting inside width x height with the aspect kept (an
 * image is never enlarged).  session may be NULL (nothing from the
 * server then).  cb is called exactly once, from the loop, never before
 * this returns: with the content in a file (read from 0, yours), or with
 * the error and its reason:
 *   -EINVAL                 a bad argument (reason names it)
 *   -CPMSYNC_E_NOT_FOUND    no such message or part
 *   -CPMSYNC_E_NOT_SUPPORTED the part's type cannot become format (reason: the type)
 *   -CPMSYNC_E_OFFLINE      the body is not stored and the account is offline
 *   -EBADMSG, -EFBIG        the image is damaged, not an image, too large (reason says)
 *   -CPMSYNC_E_SERVER ...   what the session's fetch or CONVERT gave
 * Returns 0, or -EINVAL / -ENOMEM (then cb is not called).
 */
int cpmsync_preview(struct cpmsync_previewer *p, struct cpmsync_session *session,
		    int64_t message_id, const char *section, const char *format, uint32_t width,
		    uint32_t height, cpmsync_data_cb_t cb, void *userdata);

/*
 * Only the helper: image data (not transfer-encoded) to format, nothing
 * cached.  The same callback rules.  For tests and tools.
 */
int cpmsync_preview_image(struct cpmsync_previewer *p, const void *data, size_t len,
			  const char *format, uint32_t width, uint32_t height, cpmsync_data_cb_t cb,
			  void *userdata);

/* ------------------------------------------------------------------ */
/* The cache (in the store). */

/* The cached preview: *ret_data (free()) and *ret_len, or
 * -CPMSYNC_E_NOT_FOUND. */
int cpmsync_store_preview_get(struct cpmsync_store *store, int64_t message_id, const char *section,
			      const char *format, uint32_t width, uint32_t height, void **ret_data,
			      size_t *ret_len);
/* Keeps a preview (replacing one of the same key); -CPMSYNC_E_NOT_FOUND
 * when the message is gone. */
int cpmsync_store_preview_put(struct cpmsync_store *store, int64_t message_id, const char *section,
			      const char *format, uint32_t width, uint32_t height, const void *data,
			      size_t len);
/* Largest preview kept in the cache. */
#define CPMSYNC_PREVIEW_MAX_CACHED (4u * 1024 * 1024)

#ifdef __cplusplus
}
#endif
#endif
