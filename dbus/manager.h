/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Manager1.AddAccount's settings, parsed apart for tests. */

#include <dbus/dbus.h>

#include "service.h"

/*
 * Reads and validates the a{sv} settings at iter into *ret (strings
 * borrowed from the message; ret->folders malloc()ed: release with
 * cpm_account_settings_clear()).  Returns NULL, or a malloc()ed sentence
 * naming the key and the rule (an unknown key, a wrong type, a missing
 * Host/User, both or neither of Password and PasswordFile ...).
 * Security defaults to "tls".
 */
char *cpm_parse_account_settings(DBusMessageIter *iter, struct cpmsync_account_settings *ret);
void cpm_account_settings_clear(struct cpmsync_account_settings *s);
