/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmctl watch: the daemon's signals as they come, one line each, until
 * interrupted (like busctl monitor, but named by account and folder):
 *
 *   ACCOUNT TAB FOLDER TAB SIGNAL TAB DETAILS
 *
 * FOLDER is empty for an account's own signals.  DETAILS per signal:
 * MessagesAdded/MessagesChanged/MessagesRemoved: the message ids;
 * SyncProgress: FOLDER DONE/TOTAL ("all" for the account as a whole);
 * PropertiesChanged: NAME=VALUE for each changed property (arrays joined
 * with ','); OperationFailed: ID OPERATION FOLDER [CODE] TEXT;
 * ConversationChanged: the Conversation-ID; InterfacesAdded and
 * InterfacesRemoved: the interfaces (Account1, Folder1); the manager's
 * PropertiesChanged (ConfigError) and UnsentChangesSaved (the removed
 * account's path, the directory, messages, changes) with empty account
 * and folder, when every account is watched; DaemonStarted and
 * DaemonStopped (empty account and folder): the daemon's bus name came or
 * went.  --json: one object per line, {"Account", "Folder", "Signal"} and
 * the signal's arguments by their contract names, dicts as objects.
 *
 * The subscription comes before the snapshot of the object tree, so no
 * signal is missed between them; each line is flushed as it is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cpmctl.h"

static const char watch_usage[] = "Usage: cpmctl watch [--json] [ACCOUNT]\n";

struct watched {
	char *path, *account, *folder; /* folder NULL for an account */
};

struct watch {
	DBusConnection *conn;
	const char *only; /* ACCOUNT, or NULL for all */
	bool json;
	struct watched *v;
	size_t n;
};

static void watched_clear(struct watch *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		free(w->v[i].account);
		free(w->v[i].folder);
	}
	free(w->v);
	w->v = NULL;
	w->n = 0;
}

static struct watched *watched_find(struct watch *w, const char *path)
{
	for (size_t i = 0; path && i < w->n; i++)
		if (str_eq(w->v[i].path, path))
			return &w->v[i];
	return NULL;
}

static struct watched *watched_find_account(struct watch *w, const char *path)
{
	struct watched *o = watched_find(w, path);

	return o && !o->folder ? o : NULL;
}

/* Records an account (folder_props NULL) or a folder with its properties. */
static void watched_add(struct watch *w, const char *path, const DBusMessageIter *account_props,
			const DBusMessageIter *folder_props)
{
	struct watched *o = watched_find(w, path);
	const char *account = NULL, *folder = NULL;

	if (folder_props) {
		const char *owner = prop_str(folder_props, "Account", NULL);
		struct watched *a = watched_find_account(w, owner);
		size_t plen;

		folder = prop_str(folder_props, "Name", "");
		if (a) {
			account = a->account;
		} else {
			/* Not known yet (or no Account property): by path. */
			for (size_t i = 0; i < w->n && !account; i++) {
				plen = strlen(w->v[i].path);
				if (!w->v[i].folder && !str_eq(w->v[i].path, ROOT_PATH) &&
				    strncmp(path, w->v[i].path, plen) == 0 && path[plen] == '/')
					account = w->v[i].account;
			}
		}
		if (!account)
			account = "";
	} else if (account_props) {
		account = prop_str(account_props, "Name", "");
	} else {
		return;
	}
	if (!o) {
		w->v = xreallocarray(w->v, w->n + 1, sizeof(*w->v));
		o = &w->v[w->n++];
		*o = (struct watched){ .path = xstrdup(path) };
	}
	/* account may point into o itself: copy first. */
	{
		char *acc = xstrdup(account);

		free(o->account);
		o->account = acc;
	}
	free(o->folder);
	o->folder = folder ? xstrdup(folder) : NULL;
}

static void watched_remove(struct watch *w, const char *path)
{
	struct watched *o = watched_find(w, path);

	if (!o)
		return;
	free(o->path);
	free(o->account);
	free(o->folder);
	*o = w->v[--w->n];
}

/* The object tree now; 0 or 1 after printing why. */
static int watch_snapshot(struct watch *w)
{
	struct objects objs = { 0 };

	watched_clear(w);
	if (get_objects(w->conn, &objs))
		return 1;
	/* Accounts first: folders name their account. */
	for (size_t i = 0; i < objs.n; i++)
		if (objs.v[i].is_account)
			watched_add(w, objs.v[i].path, &objs.v[i].account, NULL);
	for (size_t i = 0; i < objs.n; i++)
		if (objs.v[i].is_folder && !objs.v[i].is_account)
			watched_add(w, objs.v[i].path, NULL, &objs.v[i].folder);
	/* The manager (ConfigError): its PropertiesChanged, named by neither
	 * account nor folder. */
	w->v = xreallocarray(w->v, w->n + 1, sizeof(*w->v));
	w->v[w->n++] = (struct watched){ .path = xstrdup(ROOT_PATH), .account = xstrdup("") };
	if (w->only && !find_account(&objs, w->only)) {
		objects_free(&objs);
		return 1;
	}
	objects_free(&objs);
	return 0;
}

/* ---- values ---- */

/* A D-Bus value as JSON: dicts with string keys as objects, other arrays
 * and structs as arrays. */
static void json_value(DBusMessageIter *it)
{
	int type = dbus_message_iter_get_arg_type(it);
	DBusMessageIter sub, entry;
	DBusBasicValue v;
	bool first = true;

	switch (type) {
	case DBUS_TYPE_STRING:
	case DBUS_TYPE_OBJECT_PATH:
	case DBUS_TYPE_SIGNATURE:
		dbus_message_iter_get_basic(it, &v);
		json_str(v.str);
		return;
	case DBUS_TYPE_BOOLEAN:
		dbus_message_iter_get_basic(it, &v);
		fputs(v.bool_val ? "true" : "false", stdout);
		return;
	case DBUS_TYPE_BYTE:
		dbus_message_iter_get_basic(it, &v);
		printf("%u", (unsigned)v.byt);
		return;
	case DBUS_TYPE_INT16:
		dbus_message_iter_get_basic(it, &v);
		printf("%d", (int)v.i16);
		return;
	case DBUS_TYPE_UINT16:
		dbus_message_iter_get_basic(it, &v);
		printf("%u", (unsigned)v.u16);
		return;
	case DBUS_TYPE_INT32:
		dbus_message_iter_get_basic(it, &v);
		printf("%" PRId32, (int32_t)v.i32);
		return;
	case DBUS_TYPE_UINT32:
	case DBUS_TYPE_UNIX_FD:
		dbus_message_iter_get_basic(it, &v);
		printf("%" PRIu32, (uint32_t)v.u32);
		return;
	case DBUS_TYPE_INT64:
		dbus_message_iter_get_basic(it, &v);
		printf("%" PRId64, (int64_t)v.i64);
		return;
	case DBUS_TYPE_UINT64:
		dbus_message_iter_get_basic(it, &v);
		printf("%" PRIu64, (uint64_t)v.u64);
		return;
	case DBUS_TYPE_DOUBLE:
		dbus_message_iter_get_basic(it, &v);
		printf("%.17g", v.dbl);
		return;
	case DBUS_TYPE_VARIANT:
		dbus_message_iter_recurse(it, &sub);
		json_value(&sub);
		return;
	case DBUS_TYPE_ARRAY:
		dbus_message_iter_recurse(it, &sub);
		if (dbus_message_iter_get_element_type(it) == DBUS_TYPE_DICT_ENTRY) {
			putchar('{');
			for (; dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_DICT_ENTRY;
			     dbus_message_iter_next(&sub)) {
				dbus_message_iter_recurse(&sub, &entry);
				if (!first)
					putchar(',');
				first = false;
				if (dbus_message_iter_get_arg_type(&entry) == DBUS_TYPE_STRING) {
					json_value(&entry);
				} else {
					/* A JSON key is a string: the value as text. */
					putchar('"');
					json_value(&entry);
					putchar('"');
				}
				putchar(':');
				dbus_message_iter_next(&entry);
				json_value(&entry);
			}
			putchar('}');
			return;
		}
		/* fall through */
	case DBUS_TYPE_STRUCT:
		if (type == DBUS_TYPE_STRUCT)
			dbus_message_iter_recurse(it, &sub);
		putchar('[');
		for (; dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID;
		     dbus_message_iter_next(&sub)) {
			if (!first)
				putchar(',');
			first = false;
			json_value(&sub);
		}
		putchar(']');
		return;
	default:
		fputs("null", stdout);
	}
}

/* A value as text: strings as they are (one field), arrays joined by ','. */
static void text_value(DBusMessageIter *it)
{
	DBusMessageIter sub;
	bool first = true;

	switch (dbus_message_iter_get_arg_type(it)) {
	case DBUS_TYPE_STRING:
	case DBUS_TYPE_OBJECT_PATH:
	case DBUS_TYPE_SIGNATURE: {
		const char *s;

		dbus_message_iter_get_basic(it, &s);
		put_field(s);
		return;
	}
	case DBUS_TYPE_VARIANT:
		dbus_message_iter_recurse(it, &sub);
		text_value(&sub);
		return;
	case DBUS_TYPE_ARRAY:
		dbus_message_iter_recurse(it, &sub);
		for (; dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID;
		     dbus_message_iter_next(&sub)) {
			if (!first)
				putchar(',');
			first = false;
			text_value(&sub);
		}
		return;
	default:
		/* Numbers and booleans print the same either way. */
		json_value(it);
	}
}

/* ---- lines ---- */

/* Starts a line: the account, the folder and the signal. */
static void line_start(struct watch *w, const char *account, const char *folder, const char *signal)
{
	if (w->json) {
		json_key("Account", true);
		json_str(account);
		json_key_str("Folder", folder);
		json_key_str("Signal", signal);
	} else {
		put_field(account);
		putchar('\t');
		put_field(folder);
		putchar('\t');
		put_field(signal);
		putchar('\t');
	}
}

static int line_end(struct watch *w)
{
	puts(w->json ? "}" : "");
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

/* The message ids of an aa{sv} (their Id) or an at, space-separated. */
static void text_ids(DBusMessageIter *arr)
{
	DBusMessageIter it;
	bool first = true;

	for (dbus_message_iter_recurse(arr, &it);
	     dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_INVALID;
	     dbus_message_iter_next(&it)) {
		uint64_t id = 0;

		if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_UINT64)
			dbus_message_iter_get_basic(&it, &id);
		else
			prop_u64(&it, "Id", &id);
		printf("%s%" PRIu64, first ? "" : " ", id);
		first = false;
	}
}

/* The names of an "as" of interfaces, short (Folder1), space-separated. */
static void text_interfaces(DBusMessageIter *arr, bool json)
{
	DBusMessageIter it;
	bool first = true;

	if (json)
		fputs(",\"Interfaces\":[", stdout);
	for (dbus_message_iter_recurse(arr, &it);
	     dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_INVALID;
	     dbus_message_iter_next(&it)) {
		DBusMessageIter key = it;
		const char *name;

		if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_DICT_ENTRY)
			dbus_message_iter_recurse(&it, &key);
		if (dbus_message_iter_get_arg_type(&key) != DBUS_TYPE_STRING)
			continue;
		dbus_message_iter_get_basic(&key, &name);
		/* Only ours: the standard ones every object has say nothing. */
		if (strncmp(name, "org.cpmsync.", 12) != 0)
			continue;
		if (json) {
			if (!first)
				putchar(',');
			json_str(name);
		} else {
			printf("%s%s", first ? "" : " ", name + 12);
		}
		first = false;
	}
	if (json)
		putchar(']');
}

/* Whether an object's signals are shown (the account filter). */
static bool wanted(struct watch *w, const struct watched *o)
{
	return !w->only || (o && str_eq(o->account, w->only));
}

/* ObjectManager.InterfacesAdded/Removed (sent by the root object). */
static int on_interfaces(struct watch *w, DBusMessage *msg, bool added)
{
	DBusMessageIter it, arr, entry, props;
	struct watched *o;
	const char *path, *iface;
	int r = 0;

	if (!dbus_message_has_signature(msg, added ? "oa{sa{sv}}" : "oas"))
		return 0;
	dbus_message_iter_init(msg, &it);
	dbus_message_iter_get_basic(&it, &path);
	dbus_message_iter_next(&it);
	if (added) {
		dbus_message_iter_recurse(&it, &arr);
		for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_DICT_ENTRY;
		     dbus_message_iter_next(&arr)) {
			dbus_message_iter_recurse(&arr, &entry);
			dbus_message_iter_get_basic(&entry, &iface);
			dbus_message_iter_next(&entry);
			props = entry;
			if (str_eq(iface, IFACE_ACCOUNT))
				watched_add(w, path, &props, NULL);
			else if (str_eq(iface, IFACE_FOLDER))
				watched_add(w, path, NULL, &props);
		}
	}
	o = watched_find(w, path);
	if (o && wanted(w, o)) {
		line_start(w, o->account, o->folder ? o->folder : "",
			   added ? "InterfacesAdded" : "InterfacesRemoved");
		text_interfaces(&it, w->json);
		r = line_end(w);
	}
	if (!added && o)
		watched_remove(w, path);
	return r;
}

/* A signal of an account or folder object. */
static int on_object_signal(struct watch *w, DBusMessage *msg, struct watched *o)
{
	const char *member = dbus_message_get_member(msg);
	const char *folder = o->folder ? o->folder : "";
	DBusMessageIter it, sub, entry;
	const char *s;
	bool first = true;

	dbus_message_iter_init(msg, &it);
	if (dbus_message_is_signal(msg, IFACE_PROPERTIES, "PropertiesChanged")) {
		if (!dbus_message_has_signature(msg, "sa{sv}as"))
			return 0;
		dbus_message_iter_next(&it);
		/* A renamed folder: its new name from now on (this line too). */
		if (o->folder) {
			s = prop_str(&it, "Name", NULL);
			if (s) {
				free(o->folder);
				o->folder = xstrdup(s);
				folder = o->folder;
			}
		}
		line_start(w, o->account, folder, member);
		if (w->json) {
			fputs(",\"Properties\":", stdout);
			json_value(&it);
			dbus_message_iter_next(&it);
			fputs(",\"Invalidated\":", stdout);
			json_value(&it);
			return line_end(w);
		}
		dbus_message_iter_recurse(&it, &sub);
		for (; dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_DICT_ENTRY;
		     dbus_message_iter_next(&sub)) {
			dbus_message_iter_recurse(&sub, &entry);
			dbus_message_iter_get_basic(&entry, &s);
			printf("%s%s=", first ? "" : " ", s);
			dbus_message_iter_next(&entry);
			text_value(&entry);
			first = false;
		}
		return line_end(w);
	}
	/* Manager1's own signals (UnsentChangesSaved), on the root object:
	 * its arguments in order, as for one this cpmctl does not know. */
	if (!dbus_message_has_interface(msg, IFACE_ACCOUNT) &&
	    !dbus_message_has_interface(msg, IFACE_FOLDER) &&
	    !dbus_message_has_interface(msg, IFACE_MANAGER))
		return 0;

	line_start(w, o->account, folder, member);
	if (str_eq(member, "MessagesAdded") || str_eq(member, "MessagesChanged") ||
	    str_eq(member, "MessagesRemoved")) {
		bool removed = str_eq(member, "MessagesRemoved");

		if (dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
			return line_end(w);
		if (w->json) {
			fputs(removed ? ",\"Ids\":" : ",\"Messages\":", stdout);
			json_value(&it);
		} else {
			text_ids(&it);
		}
	} else if (str_eq(member, "SyncProgress")) {
		dbus_uint32_t done = 0, total = 0;

		s = "";
		dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_UINT32, &done,
				      DBUS_TYPE_UINT32, &total, DBUS_TYPE_INVALID);
		if (w->json) {
			json_key_str("SyncFolder", s);
			printf(",\"Done\":%" PRIu32 ",\"Total\":%" PRIu32, (uint32_t)done,
			       (uint32_t)total);
		} else {
			put_field(*s ? s : "all");
			printf(" %" PRIu32 "/%" PRIu32, (uint32_t)done, (uint32_t)total);
		}
	} else if (str_eq(member, "OperationFailed")) {
		uint64_t id = 0;
		const char *code;

		if (w->json) {
			fputs(",\"Operation\":", stdout);
			json_value(&it);
		} else if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY) {
			prop_u64(&it, "Id", &id);
			printf("%" PRIu64 " ", id);
			put_field(prop_str(&it, "Operation", "?"));
			putchar(' ');
			put_field(prop_str(&it, "Folder", ""));
			code = prop_str(&it, "Code", "");
			if (*code) {
				fputs(" [", stdout);
				put_field(code);
				putchar(']');
			}
			putchar(' ');
			put_field(prop_str(&it, "Text", ""));
		}
	} else if (str_eq(member, "ConversationChanged")) {
		if (w->json) {
			fputs(",\"Conversation\":", stdout);
			json_value(&it);
		} else if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY) {
			put_field(prop_str(&it, "ConversationId", ""));
		}
	} else if (w->json) {
		/* A signal this cpmctl does not know: its arguments in order. */
		fputs(",\"Args\":[", stdout);
		for (; dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_INVALID;
		     dbus_message_iter_next(&it)) {
			if (!first)
				putchar(',');
			first = false;
			json_value(&it);
		}
		putchar(']');
	} else {
		for (; dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_INVALID;
		     dbus_message_iter_next(&it)) {
			if (!first)
				putchar(' ');
			first = false;
			text_value(&it);
		}
	}
	return line_end(w);
}

/* 0 to go on, 1 to stop (after printing why). */
static int on_message(struct watch *w, DBusMessage *msg)
{
	struct watched *o;
	const char *s, *s2, *s3;

	if (dbus_message_is_signal(msg, DBUS_INTERFACE_LOCAL, "Disconnected")) {
		fprintf(stderr, "cpmctl: lost the connection to the session bus\n");
		return 1;
	}
	if (dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_SIGNAL)
		return 0;
	if (dbus_message_is_signal(msg, IFACE_DBUS, "NameOwnerChanged")) {
		if (!dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_STRING, &s2,
					   DBUS_TYPE_STRING, &s3, DBUS_TYPE_INVALID) ||
		    !str_eq(s, BUS_NAME))
			return 0;
		line_start(w, "", "", *s3 ? "DaemonStarted" : "DaemonStopped");
		if (line_end(w))
			return 1;
		/* A new daemon: its objects, named afresh. */
		if (*s3)
			return watch_snapshot(w);
		watched_clear(w);
		return 0;
	}
	if (dbus_message_is_signal(msg, IFACE_OBJECT_MANAGER, "InterfacesAdded"))
		return on_interfaces(w, msg, true);
	if (dbus_message_is_signal(msg, IFACE_OBJECT_MANAGER, "InterfacesRemoved"))
		return on_interfaces(w, msg, false);
	o = watched_find(w, dbus_message_get_path(msg));
	if (!o || !wanted(w, o))
		return 0;
	return on_object_signal(w, msg, o);
}

int cmd_watch(int argc, char **argv)
{
	static const char *const rules[] = {
		"type='signal',sender='" BUS_NAME "'",
		"type='signal',sender='" IFACE_DBUS "',interface='" IFACE_DBUS
		"',member='NameOwnerChanged',arg0='" BUS_NAME "'",
	};
	struct watch w = { 0 };
	DBusMessage *msg;
	int r;

	r = parse_json_option(argc, argv, watch_usage, &w.json);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 0, 1, "watch", watch_usage))
		return EXIT_USAGE;
	if (optind < argc)
		w.only = argv[optind];
	w.conn = connect_daemon(true);
	if (!w.conn)
		return 1;
	/* Subscribe first: every signal after the snapshot is then seen. */
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
		r = add_match(w.conn, rules[i]);
		if (r)
			goto out;
	}
	r = watch_snapshot(&w);
	/* As busctl monitor does: that it listens now (scripts wait for it). */
	if (!r)
		fprintf(stderr, "cpmctl: watching %s%s%s; interrupt to stop\n",
			w.only ? "account '" : "every account", w.only ? w.only : "",
			w.only ? "'" : "");
	while (!r) {
		while (!r && (msg = dbus_connection_pop_message(w.conn))) {
			r = on_message(&w, msg);
			dbus_message_unref(msg);
		}
		if (!r && !dbus_connection_read_write(w.conn, -1)) {
			/* Messages already read come first (Disconnected among them). */
			while (!r && (msg = dbus_connection_pop_message(w.conn))) {
				r = on_message(&w, msg);
				dbus_message_unref(msg);
			}
			if (!r) {
				fprintf(stderr, "cpmctl: lost the connection to the session bus\n");
				r = 1;
			}
		}
	}
out:
	watched_clear(&w);
	dbus_connection_unref(w.conn);
	return finish_stdout(r);
}
