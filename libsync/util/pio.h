/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_UTIL_PIO_H
#define CPMSYNC_UTIL_PIO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Positioned whole-buffer I/O (util/io.c, beside the public
 * cpmsync_write_all() family, with the same rules: EINTR retried, short
 * transfers continued, -errno).  io_pread_exact() gives -EIO when the file
 * ends before len bytes.
 */
int io_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int io_pread_exact(int fd, void *buf, size_t len, uint64_t off);

#endif
