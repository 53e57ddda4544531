/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_CPMSYNC_H
#define CPMSYNC_CPMSYNC_H

/* Umbrella header of libcpmsync: every public header.  Link with
 * `pkg-config --libs cpmsync`.  (tests/unit/test-umbrella.c uses one
 * declaration of each through this header alone.) */

#define CPMSYNC_VERSION_MAJOR  0
#define CPMSYNC_VERSION_MINOR  1
#define CPMSYNC_VERSION_MICRO  0
#define CPMSYNC_VERSION_STRING "0.1.0"

#include <cpmsync/account.h>
#include <cpmsync/conversation.h>
#include <cpmsync/cpm-folders.h>
#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/limits.h>
#include <cpmsync/log.h>
#include <cpmsync/loop.h>
#include <cpmsync/message.h>
#include <cpmsync/ops.h>
#include <cpmsync/preview.h>
#include <cpmsync/session.h>
#include <cpmsync/settings.h>
#include <cpmsync/store.h>
#include <cpmsync/sync.h>
#include <cpmsync/utf8.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version at run time ("0.1.0"). */
const char *cpmsync_version(void);

#ifdef __cplusplus
}
#endif
#endif
