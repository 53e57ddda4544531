/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Small helpers for agent/ code.  agent/ may not include libsync's private
 * headers, so it keeps its own copies of the few idioms it needs.
 *
 * Allocation: the x*() wrappers never return NULL; on allocation failure they
 * print "cpm-syncd: out of memory" to stderr and abort() (style C5: the
 * agent may treat OOM as fatal; libcpmsync never does).  Everything they
 * return is freed with free().
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AGENT_ATTR_FORMAT(f, a) __attribute__((format(printf, f, a)))

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
/* realloc() of n * size bytes, failing (aborting) on overflow. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) AGENT_ATTR_FORMAT(1, 2);
char *xvasprintf(const char *fmt, va_list ap) AGENT_ATTR_FORMAT(1, 0);

/* Wipes a NUL-terminated secret, then frees it.  Accepts NULL. */
void free_secret_str(char *s);

static inline void xfreep(void *p)
{
	free(*(void **)p);
}

static inline void xclosep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

/* The same spellings as libsync's private macro.h, defined only once. */
#ifndef _cleanup_
#define _cleanup_(f) __attribute__((cleanup(f)))
#endif
#ifndef _cleanup_free_
#define _cleanup_free_ _cleanup_(xfreep)
#endif
#ifndef _cleanup_close_
#define _cleanup_close_ _cleanup_(xclosep)
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
#ifndef TAKE_PTR
/* Hands ownership over: returns p and leaves NULL behind. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		typeof(p) _tp_ = (p);                                                              \
		(p) = NULL;                                                                        \
		_tp_;                                                                              \
	})
#endif
#ifndef TAKE_FD
/* Hands an fd over: returns fd and leaves -1 behind. */
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf_ = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_tf_;                                                                              \
	})
#endif

static inline bool str_eq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Both NULL, or both set and equal. */
static inline bool str_eq_null(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}
