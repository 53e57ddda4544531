/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_SETTINGS_H
#define CPMSYNC_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include <cpmsync/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * An account's settings as text, the way a user or an application gives
 * them (cpmsync.conf, Manager1.AddAccount), before they become a struct
 * cpmsync_account.  The one place they are judged is
 * cpmsync_account_settings_check(); the front ends only word the answer.
 * Strings are borrowed.
 */
struct cpmsync_account_settings {
	const char *host;
	uint16_t port;	      /* 0: the security's default */
	const char *security; /* "tls" | "starttls" | "none"; NULL: "tls" */
	const char *user;
	/* Exactly one of the three (NULL: not given). */
	const char *password;
	const char *password_file;
	const char *password_command;
	const char *ca_file;	    /* or NULL */
	const char *const *folders; /* NULL-terminated, or NULL: "*" */
	const char *sync_bodies;    /* "all" | "none" | KiB, or NULL */
	const char *cpm_root;	    /* the CPM root folder ("" top level), or NULL: Default */
};

enum cpmsync_settings_error {
	CPMSYNC_SETTINGS_OK = 0,
	CPMSYNC_SETTINGS_NO_HOST,	/* host NULL or "" */
	CPMSYNC_SETTINGS_BAD_HOST,	/* not a host name or IP address (cpmsync_host_valid) */
	CPMSYNC_SETTINGS_NO_USER,	/* user NULL or "" */
	CPMSYNC_SETTINGS_BAD_USER,	/* a line break, or longer than CPMSYNC_SETTING_MAX */
	CPMSYNC_SETTINGS_BAD_SECURITY,	/* not tls, starttls or none */
	CPMSYNC_SETTINGS_NO_PASSWORD,	/* none of password, password_file, password_command */
	CPMSYNC_SETTINGS_TWO_PASSWORDS, /* more than one of them */
	CPMSYNC_SETTINGS_BAD_PASSWORD,	/* empty, a line break, longer than CPMSYNC_PASSWORD_MAX */
	CPMSYNC_SETTINGS_EMPTY_PATH,	/* password_file, password_command or ca_file "" */
	CPMSYNC_SETTINGS_BAD_SYNC_BODIES, /* not all, none or 1..CPMSYNC_SYNC_BODIES_MAX_KIB */
	CPMSYNC_SETTINGS_BAD_CPM_ROOT,	  /* not a folder name (cpmsync_cpm_root_valid) */
};

/*
 * Judges s.  Returns CPMSYNC_SETTINGS_OK or the first problem found, in
 * the order of the enum; *ret_why (optional) then gets a short phrase that
 * completes "<setting> ...", e.g. "contains a line break" (static).
 */
enum cpmsync_settings_error cpmsync_account_settings_check(const struct cpmsync_account_settings *s,
							   const char **ret_why);

/* [A-Za-z0-9_-]+, at most CPMSYNC_ACCOUNT_NAME_MAX bytes. */
bool cpmsync_account_name_valid(const char *name);

/* A host name, an IPv4 or an IPv6 address (no brackets), at most CPMSYNC_HOST_MAX bytes. */
bool cpmsync_host_valid(const char *host);

/*
 * "all", "none" or a size in KiB (decimal digits, 1..CPMSYNC_SYNC_BODIES_MAX_KIB)
 * into *ret (CPMSYNC_SYNC_BODIES_ALL, _NONE or KiB).  0, -EINVAL (not
 * that syntax) or -ERANGE (a number out of range).
 */
int cpmsync_sync_bodies_from_string(const char *s, int64_t *ret);

#ifdef __cplusplus
}
#endif
#endif
