/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_LIMITS_H
#define CPMSYNC_LIMITS_H

/*
 * The sizes every layer agrees on: the store refuses more, and the D-Bus
 * service and the configuration file check against the same numbers, so
 * that what one accepts the next does not refuse.  Bytes unless named.
 */
enum cpmsync_limit {
	CPMSYNC_ACCOUNT_NAME_MAX = 64,		       /* an account name, [A-Za-z0-9_-]+ */
	CPMSYNC_HOST_MAX = 253,			       /* a host name or IP address */
	CPMSYNC_SETTING_MAX = 4096,		       /* any other account setting's value */
	CPMSYNC_PASSWORD_MAX = 4096,		       /* a password */
	CPMSYNC_SYNC_BODIES_MAX_KIB = 4 * 1024 * 1024, /* sync_bodies, KiB: 4 GiB */
	CPMSYNC_FOLDER_NAME_MAX = 1024,		/* a folder name (UTF-8, '/' between levels) */
	CPMSYNC_METADATA_ENTRY_MAX = 1024,	/* a METADATA entry name */
	CPMSYNC_METADATA_VALUE_MAX = 64 * 1024, /* a METADATA value */
	CPMSYNC_ACL_IDENTIFIER_MAX = 256,	/* an ACL identifier */
};

#endif
