/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: the D-Bus argument validators (dbus/dbus-util.c) and
 * Folder1.Search's criteria parser (dbus/folder.c).
 *
 * The first byte picks what the rest is given to:
 *   0-7  one validator on the rest as a string (NUL ends it): folder
 *        name, flag, section, rights, metadata entry, ACL identifier,
 *        account name, object path element (escape + unescape);
 *   8+   Search criteria: the rest is records "key\ttype\tvalue\n", type
 *        's', 'x', 'b' or 'a' (value split at ','), built into an a{sv}
 *        the way a client would send it (strings that are not UTF-8, which
 *        libdbus refuses to send, are skipped).
 * A validator's verdict must be stable, a refusal must have a text, and
 * what a rule accepts must obey it (a flag is an IMAP atom, a section has
 * no ']' or line end, an escaped path element round-trips).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dbus/dbus.h>

#include <cpmsync/utf8.h>

#include "dbus-util.h"
#include "folder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_c0(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* strndup() without reading past n (the input is not NUL-terminated). */
static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		abort();
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void one_validator(unsigned which, const char *s)
{
	char *err = NULL, *again = NULL, *esc, *back;

	switch (which) {
	case 0:
		err = cpm_check_name("name", s, false);
		again = cpm_check_name("name", s, false);
		if (!err)
			assert(s[0] && dbus_validate_utf8(s, NULL) &&
			       cpmsync_text_find_unsafe(s, strlen(s), NULL) == strlen(s));
		break;
	case 1:
		err = cpm_check_flag("flag", s);
		again = cpm_check_flag("flag", s);
		if (!err)
			assert(!has_c0(s) && s[0] && !strpbrk(s, " ()\"{"));
		break;
	case 2:
		err = cpm_check_section("section", s);
		again = cpm_check_section("section", s);
		if (!err)
			assert(!has_c0(s) && !strpbrk(s, "]\r\n"));
		else {
			/* A body part (Preview's) is a section too. */
			char *part = cpm_check_part("section", s);

			assert(part);
			free(part);
		}
		break;
	case 3:
		err = cpm_check_rights("rights", s);
		again = cpm_check_rights("rights", s);
		break;
	case 4:
		err = cpm_check_metadata_entry("entry", s);
		again = cpm_check_metadata_entry("entry", s);
		break;
	case 5:
		err = cpm_check_acl_identifier("identifier", s);
		again = cpm_check_acl_identifier("identifier", s);
		break;
	case 6:
		err = cpm_check_account_name("account", s);
		again = cpm_check_account_name("account", s);
		break;
	default:
		esc = cpm_path_escape(s);
		assert(esc && (esc[0] || !s[0]));
		for (const char *p = esc; *p; p++)
			assert((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			       (*p >= '0' && *p <= '9') || *p == '_');
		/* One-to-one: every name round-trips (so "a-" and "a_2d"
		 * cannot share an element, as they did when '_' was kept),
		 * and an element that unescapes is the one its name makes. */
		back = cpm_path_unescape(esc);
		assert(back && strcmp(back, s) == 0);
		free(back);
		free(esc);
		back = cpm_path_unescape(s);
		if (back) {
			esc = cpm_path_escape(back);
			assert(strcmp(esc, s) == 0);
			free(esc);
			free(back);
		}
		return;
	}
	assert(!err == !again);
	if (err)
		assert(err[0]);
	free(err);
	free(again);
}

static void append_variant_str(DBusMessageIter *d, const char *type, const char *v, size_t len)
{
	DBusMessageIter var, arr;
	char *tmp = dupn(v, len);

	if (type[0] == 's') {
		if (dbus_validate_utf8(tmp, NULL)) {
			dbus_message_iter_open_container(d, DBUS_TYPE_VARIANT, "s", &var);
			dbus_message_iter_append_basic(&var, DBUS_TYPE_STRING, &tmp);
			dbus_message_iter_close_container(d, &var);
		} else {
			dbus_bool_t b = 0;

			dbus_message_iter_open_container(d, DBUS_TYPE_VARIANT, "b", &var);
			dbus_message_iter_append_basic(&var, DBUS_TYPE_BOOLEAN, &b);
			dbus_message_iter_close_container(d, &var);
		}
	} else if (type[0] == 'x') {
		dbus_int64_t x = strtoll(tmp, NULL, 10);

		dbus_message_iter_open_container(d, DBUS_TYPE_VARIANT, "x", &var);
		dbus_message_iter_append_basic(&var, DBUS_TYPE_INT64, &x);
		dbus_message_iter_close_container(d, &var);
	} else if (type[0] == 'a') {
		char *save = NULL;

		dbus_message_iter_open_container(d, DBUS_TYPE_VARIANT, "as", &var);
		dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "s", &arr);
		for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (dbus_validate_utf8(t, NULL))
				dbus_message_iter_append_basic(&arr, DBUS_TYPE_STRING, &t);
		dbus_message_iter_close_container(&var, &arr);
		dbus_message_iter_close_container(d, &var);
	} else {
		dbus_bool_t b = 1;

		dbus_message_iter_open_container(d, DBUS_TYPE_VARIANT, "b", &var);
		dbus_message_iter_append_basic(&var, DBUS_TYPE_BOOLEAN, &b);
		dbus_message_iter_close_container(d, &var);
	}
	free(tmp);
}

static void criteria(const char *in, size_t len)
{
	DBusMessage *m =
		dbus_message_new_method_call("org.cpmsync", "/x", "org.cpmsync.Folder1", "Search");
	DBusMessageIter it, a, d;
	struct search_state *s;
	unsigned n = 0;
	char *err;

	assert(m);
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &a);
	while (len > 0 && n++ < 64) {
		const char *nl = memchr(in, '\n', len);
		size_t l = nl ? (size_t)(nl - in) : len;
		const char *t1 = memchr(in, '\t', l), *t2;
		char *key;

		if (t1 && (t2 = memchr(t1 + 1, '\t', l - (size_t)(t1 + 1 - in)))) {
			key = dupn(in, (size_t)(t1 - in));
			if (dbus_validate_utf8(key, NULL)) {
				dbus_message_iter_open_container(&a, DBUS_TYPE_DICT_ENTRY, NULL,
								 &d);
				dbus_message_iter_append_basic(&d, DBUS_TYPE_STRING, &key);
				append_variant_str(&d, t1 + 1, t2 + 1, l - (size_t)(t2 + 1 - in));
				dbus_message_iter_close_container(&a, &d);
			}
			free(key);
		}
		if (!nl)
			break;
		len -= l + 1;
		in = nl + 1;
	}
	dbus_message_iter_close_container(&it, &a);

	s = calloc(1, sizeof(*s));
	assert(s);
	dbus_message_iter_init(m, &it);
	err = cpm_parse_search_criteria(&it, s);
	if (err) {
		assert(err[0]);
		free(err);
	} else {
		for (size_t i = 0; s->c.flags && s->c.flags[i]; i++)
			assert(!cpm_check_flag("f", s->c.flags[i]));
		for (size_t i = 0; s->c.not_flags && s->c.not_flags[i]; i++)
			assert(!cpm_check_flag("f", s->c.not_flags[i]));
	}
	search_state_free(s);
	dbus_message_unref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1 || size > 65536)
		return 0;
	if (data[0] >= 8) {
		criteria((const char *)data + 1, size - 1);
		return 0;
	}
	s = dupn((const char *)data + 1, size - 1);
	one_validator(data[0], s);
	free(s);
	return 0;
}
