/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdbool.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The expansion of x as a string literal (a limit into SQL or a message). */
#define STR_(x) #x
#define STR(x)	STR_(x)
/* Each argument evaluated once. */
#define MIN(a, b)                                                                                  \
	({                                                                                         \
		__typeof__(a) min_a_ = (a);                                                        \
		__typeof__(b) min_b_ = (b);                                                        \
		min_a_ < min_b_ ? min_a_ : min_b_;                                                 \
	})
#define ATTR_FORMAT(f, a) __attribute__((format(printf, f, a)))
#define ATTR_UNUSED	  __attribute__((unused))
#define _cleanup_(f)	  __attribute__((cleanup(f)))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Hands ownership over: returns *p and leaves NULL behind. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		typeof(p) _tp_ = (p);                                                              \
		(p) = NULL;                                                                        \
		_tp_;                                                                              \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf_ = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_tf_;                                                                              \
	})

/* Wipes a secret before freeing it. */
static inline void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}
