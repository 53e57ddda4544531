/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_IO_H
#define CPMSYNC_IO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Blocking whole-buffer I/O on a file descriptor, the one copy for
 * libcpmsync and its programs (public because agent/ and dbus/ may include
 * public headers only).  Each retries after EINTR and goes on after a
 * short read or write.  Non-blocking descriptors get -EAGAIN back.
 */

/* Writes all len bytes.  0, or -errno (-EPIPE, -ENOSPC, ...). */
int cpmsync_write_all(int fd, const void *buf, size_t len);

/* Reads exactly len bytes.  0, -EIO if end of file comes first, or -errno. */
int cpmsync_read_exact(int fd, void *buf, size_t len);

/*
 * Reads from the current offset to end of file.  On success *ret is a
 * malloc()ed buffer the caller frees, with a NUL after the *ret_len bytes
 * (not counted).  -EFBIG when there are more than max bytes, -ENOMEM, or
 * -errno; *ret and *ret_len are left alone on failure.
 */
int cpmsync_read_all(int fd, size_t max, char **ret, size_t *ret_len);

#ifdef __cplusplus
}
#endif
#endif
