/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <cpmsync/cpmsync.h>

#include "util/macro.h"

static const char *const error_text[CPMSYNC_E_MAX - CPMSYNC_E_BASE] = {
	[0] = "unknown error",
	[CPMSYNC_E_NOT_FOUND - CPMSYNC_E_BASE] = "not found",
	[CPMSYNC_E_OFFLINE - CPMSYNC_E_BASE] = "account is offline",
	[CPMSYNC_E_NOT_SUPPORTED - CPMSYNC_E_BASE] = "not supported by the server",
	[CPMSYNC_E_SERVER - CPMSYNC_E_BASE] = "the server refused the command",
	[CPMSYNC_E_AUTH - CPMSYNC_E_BASE] = "authentication failed",
	[CPMSYNC_E_TLS_VERIFY - CPMSYNC_E_BASE] = "certificate verification failed",
	[CPMSYNC_E_TLS - CPMSYNC_E_BASE] = "TLS failure",
	[CPMSYNC_E_STARTTLS - CPMSYNC_E_BASE] = "STARTTLS not available",
	[CPMSYNC_E_INSECURE - CPMSYNC_E_BASE] = "refusing to continue without TLS",
	[CPMSYNC_E_PROTOCOL - CPMSYNC_E_BASE] = "protocol error",
	[CPMSYNC_E_BYE - CPMSYNC_E_BASE] = "the server closed the session",
	[CPMSYNC_E_DISCONNECTED - CPMSYNC_E_BASE] = "connection lost",
	[CPMSYNC_E_UIDVALIDITY - CPMSYNC_E_BASE] = "UIDVALIDITY changed",
	[CPMSYNC_E_CONFIG - CPMSYNC_E_BASE] = "invalid account settings",
	[CPMSYNC_E_STORE_BUSY - CPMSYNC_E_BASE] = "local store is busy",
	[CPMSYNC_E_STORE_CORRUPT - CPMSYNC_E_BASE] = "local store is corrupt",
	[CPMSYNC_E_STORE_FULL - CPMSYNC_E_BASE] = "local store is full",
	[CPMSYNC_E_CANCELED - CPMSYNC_E_BASE] = "cancelled",
	[CPMSYNC_E_STORE_GONE - CPMSYNC_E_BASE] = "local store file removed while in use",
};

const char *cpmsync_strerror(int r)
{
	int e = r < 0 ? -r : r;

	if (e > CPMSYNC_E_BASE && e < CPMSYNC_E_MAX)
		return error_text[e - CPMSYNC_E_BASE];
	if (e < CPMSYNC_E_BASE)
		return strerror(e);
	return error_text[0];
}

const char *cpmsync_version(void)
{
	return CPMSYNC_VERSION_STRING;
}

static const char *const security_names[] = {
	[CPMSYNC_SECURITY_TLS] = "tls",
	[CPMSYNC_SECURITY_STARTTLS] = "starttls",
	[CPMSYNC_SECURITY_NONE] = "none",
};

const char *cpmsync_security_to_string(enum cpmsync_security s)
{
	if ((unsigned)s >= ARRAY_SIZE(security_names))
		return NULL;
	return security_names[s];
}

int cpmsync_security_from_string(const char *s, enum cpmsync_security *ret)
{
	for (unsigned i = 0; i < ARRAY_SIZE(security_names); i++)
		if (s && streq(s, security_names[i])) {
			*ret = (enum cpmsync_security)i;
			return 0;
		}
	return -EINVAL;
}

uint16_t cpmsync_account_port(const struct cpmsync_account *account)
{
	if (account->port)
		return account->port;
	return account->security == CPMSYNC_SECURITY_TLS ? 993 : 143;
}
