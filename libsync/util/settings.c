/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <cpmsync/settings.h>

#include <errno.h>
#include <string.h>

#include <cpmsync/account.h>
#include <cpmsync/cpm-folders.h>

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool cpmsync_account_name_valid(const char *name)
{
	size_t n = 0;

	for (; name[n]; n++)
		if (!is_alnum(name[n]) && name[n] != '_' && name[n] != '-')
			return false;
	return n > 0 && n <= CPMSYNC_ACCOUNT_NAME_MAX;
}

bool cpmsync_host_valid(const char *host)
{
	size_t n = strlen(host);

	if (n == 0 || n > CPMSYNC_HOST_MAX)
		return false;
	for (; *host; host++)
		if (!is_alnum(*host) && !strchr(".-_:%", *host))
			return false;
	return true;
}

int cpmsync_sync_bodies_from_string(const char *s, int64_t *ret)
{
	int64_t v = 0;
	bool big = false;

	if (!strcmp(s, "all")) {
		*ret = CPMSYNC_SYNC_BODIES_ALL;
		return 0;
	}
	if (!strcmp(s, "none")) {
		*ret = CPMSYNC_SYNC_BODIES_NONE;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > CPMSYNC_SYNC_BODIES_MAX_KIB)
			big = true; /* keep scanning for non-digits */
		else
			v = v * 10 + (*s - '0');
	}
	if (big || v < 1 || v > CPMSYNC_SYNC_BODIES_MAX_KIB)
		return -ERANGE;
	*ret = v;
	return 0;
}

static const char *one_line_why(const char *s, size_t max)
{
	if (strpbrk(s, "\r\n"))
		return "contains a line break";
	if (strlen(s) > max)
		return "is too long";
	return NULL;
}

enum cpmsync_settings_error cpmsync_account_settings_check(const struct cpmsync_account_settings *s,
							   const char **ret_why)
{
	enum cpmsync_security sec;
	const char *why = NULL;
	enum cpmsync_settings_error e = CPMSYNC_SETTINGS_OK;
	int64_t kib;
	int n_pw = !!s->password + !!s->password_file + !!s->password_command;

	if (!s->host || !*s->host) {
		e = CPMSYNC_SETTINGS_NO_HOST;
		why = "is not set";
	} else if (!cpmsync_host_valid(s->host)) {
		e = CPMSYNC_SETTINGS_BAD_HOST;
		why = "is not a host name or an IP address";
	} else if (!s->user || !*s->user) {
		e = CPMSYNC_SETTINGS_NO_USER;
		why = "is not set";
	} else if ((why = one_line_why(s->user, CPMSYNC_SETTING_MAX))) {
		e = CPMSYNC_SETTINGS_BAD_USER;
	} else if (s->security && cpmsync_security_from_string(s->security, &sec) < 0) {
		e = CPMSYNC_SETTINGS_BAD_SECURITY;
		why = "is not tls, starttls or none";
	} else if (n_pw == 0) {
		e = CPMSYNC_SETTINGS_NO_PASSWORD;
		why = "is not set";
	} else if (n_pw > 1) {
		e = CPMSYNC_SETTINGS_TWO_PASSWORDS;
		why = "is given more than once";
	} else if (s->password &&
		   (!*s->password || (why = one_line_why(s->password, CPMSYNC_PASSWORD_MAX)))) {
		e = CPMSYNC_SETTINGS_BAD_PASSWORD;
		if (!why)
			why = "is empty";
	} else if ((s->password_file && !*s->password_file) ||
		   (s->password_command && !*s->password_command) || (s->ca_file && !*s->ca_file)) {
		e = CPMSYNC_SETTINGS_EMPTY_PATH;
		why = "is empty";
	} else if (s->sync_bodies && cpmsync_sync_bodies_from_string(s->sync_bodies, &kib) < 0) {
		e = CPMSYNC_SETTINGS_BAD_SYNC_BODIES;
		why = "is not all, none or a size in KiB";
	} else if (s->cpm_root && !cpmsync_cpm_root_valid(s->cpm_root, &why)) {
		e = CPMSYNC_SETTINGS_BAD_CPM_ROOT;
	}
	if (ret_why)
		*ret_why = why;
	return e;
}
