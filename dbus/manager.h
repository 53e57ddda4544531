/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Manager1.AddAccount's settings, parsed apart for tests. */

#include <dbus/dbus.h>

#include "service.h"

/*
 * Reads and validates the a{sv} settings at iter into *ret and *ret_pems
 * (strings and bytes borrowed from the message; ret->folders malloc()ed:
 * release with cpm_account_settings_clear()).  Returns NULL, or a
 * malloc()ed sentence naming the key and the rule (an unknown key, a wrong
 * type, a missing Host/User/Password, PasswordFile/PasswordCommand/CaFile
 * (paths and commands are refused), a certificate that is not PEM ...).
 * Security defaults to "tls".  ret_pems may be NULL (then the certificate
 * keys are checked and dropped).
 */
char *cpm_parse_account_settings(DBusMessageIter *iter, struct cpmsync_account_settings *ret,
				 struct cpm_account_pems *ret_pems);
void cpm_account_settings_clear(struct cpmsync_account_settings *s);
