/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_CPMSYNC_H
#define CPMSYNC_CPMSYNC_H

/* Umbrella header of libcpmsync.  Link with `pkg-config --libs cpmsync`. */

#define CPMSYNC_VERSION_MAJOR  0
#define CPMSYNC_VERSION_MINOR  1
#define CPMSYNC_VERSION_MICRO  0
#define CPMSYNC_VERSION_STRING "0.1.0"

#include <cpmsync/account.h>
#include <cpmsync/error.h>
#include <cpmsync/log.h>
#include <cpmsync/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version at run time ("0.1.0"). */
const char *cpmsync_version(void);

#ifdef __cplusplus
}
#endif
#endif
