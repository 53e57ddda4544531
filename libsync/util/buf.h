/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "util/macro.h"

/*
 * A growable byte buffer with a hard maximum (curl's dynbuf idea).  The
 * contents are always NUL-terminated (the NUL is not counted in len), so
 * text can be used as a C string.  Growing past max fails with -E2BIG and
 * leaves the buffer unchanged; allocation failure gives -ENOMEM.
 */
struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t max;
};

#define BUF_INIT(maxlen) ((struct buf){ .max = (maxlen) })

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) ATTR_FORMAT(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) ATTR_FORMAT(2, 0);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Takes the data away (caller frees); the buffer is left empty. */
char *buf_steal(struct buf *b);

static inline void buf_freep(struct buf *b)
{
	buf_free(b);
}
#define _cleanup_buf_ _cleanup_(buf_freep)
