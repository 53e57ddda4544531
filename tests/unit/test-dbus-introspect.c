/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dbus/: the interface tables against the installed description
 * (dbus/org.cpmsync.xml) and that against the contract (tests/data/
 * org.cpmsync.xml, a copy of shared/contract/org.cpmsync.xml) -- every
 * method, argument, signal and property with its type, direction and
 * access -- so code, description and contract cannot drift; plus the pure
 * helpers: argument checks, path escaping, settings and criteria parsing,
 * summary dicts, error mapping, and dispatch (signature checks,
 * Properties, Introspect, ObjectManager) on an unconnected bus.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include <cpmsync/error.h>

#include "dbus-object.h"
#include "dbus-util.h"
#include "folder.h"
#include "manager.h"
#include "service-private.h"
#include "testlib.h"

/* A method call as it arrives (with a serial, so that replies can be made). */
static DBusMessage *new_call(const char *dest, const char *path, const char *iface,
			     const char *member)
{
	DBusMessage *m = dbus_message_new_method_call(dest, path, iface, member);

	ck_assert_ptr_nonnull(m);
	dbus_message_set_serial(m, 1);
	return m;
}

/* ------------------------------------------------------------------------ */
/* A tiny XML reader: enough for introspection data. */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* The file REL ("tests/data/org.cpmsync.xml") of the source tree, found
 * upwards from the current directory or from the test binary. */
static char *tree_file(const char *rel)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	char *xml;
	ssize_t n;

	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			if (!getcwd(dir, sizeof(dir)))
				continue;
		} else {
			n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
			if (n <= 0)
				continue;
			dir[n] = '\0';
		}
		for (;;) {
			char *slash;

			snprintf(path, sizeof(path), "%s/%s", dir, rel);
			if ((xml = read_file(path)))
				return xml;
			slash = strrchr(dir, '/');
			if (!slash || slash == dir)
				break;
			*slash = '\0';
		}
	}
	return NULL;
}

/* The contract copy: $CPMSYNC_TEST_DATA, else tests/data in the tree. */
static char *contract_xml(void)
{
	const char *env = getenv("CPMSYNC_TEST_DATA");
	char path[PATH_MAX];

	if (env) {
		snprintf(path, sizeof(path), "%s/org.cpmsync.xml", env);
		return read_file(path);
	}
	return tree_file("tests/data/org.cpmsync.xml");
}

static char *attr(const char *tag, const char *name)
{
	char key[64];
	const char *p, *e;

	snprintf(key, sizeof(key), " %s=\"", name);
	p = strstr(tag, key);
	if (!p) {
		snprintf(key, sizeof(key), "\t%s=\"", name);
		p = strstr(tag, key);
	}
	if (!p) {
		snprintf(key, sizeof(key), "\n%s=\"", name);
		p = strstr(tag, key);
	}
	if (!p)
		return strdup("");
	p += strlen(key);
	e = strchr(p, '"');
	ck_assert_ptr_nonnull(e);
	return strndup(p, (size_t)(e - p));
}

/*
 * One line per element of the org.cpmsync.* interfaces, in order:
 * "interface N", "method N", "arg N T D", "signal N", "property N T A".
 * Comments and the DOCTYPE are skipped.
 */
static char *flatten(const char *xml)
{
	struct cpm_str out = { 0 };
	bool in_ours = false;
	const char *p = xml;

	while ((p = strchr(p, '<'))) {
		const char *e;
		char *tag, *name;
		char elem[32];

		if (!strncmp(p, "<!--", 4)) {
			e = strstr(p, "-->");
			ck_assert_ptr_nonnull(e);
			p = e + 3;
			continue;
		}
		if (!strncmp(p, "<!", 2) || !strncmp(p, "<?", 2)) {
			p = strchr(p, '>');
			ck_assert_ptr_nonnull(p);
			continue;
		}
		e = strchr(p, '>');
		ck_assert_ptr_nonnull(e);
		tag = strndup(p + 1, (size_t)(e - p - 1));
		p = e + 1;
		if (tag[0] == '/') {
			if (!strncmp(tag, "/interface", 10))
				in_ours = false;
			free(tag);
			continue;
		}
		sscanf(tag, "%31[a-z]", elem);
		name = attr(tag, "name");
		if (!strcmp(elem, "interface")) {
			in_ours = !strncmp(name, "org.cpmsync.", 12);
			if (in_ours)
				cpm_str_printf(&out, "interface %s\n", name);
		} else if (in_ours && (!strcmp(elem, "method") || !strcmp(elem, "signal"))) {
			cpm_str_printf(&out, "%s %s\n", elem, name);
		} else if (in_ours && !strcmp(elem, "arg")) {
			char *type = attr(tag, "type"), *dir = attr(tag, "direction");

			cpm_str_printf(&out, "arg %s %s %s\n", name, type, dir);
			free(type);
			free(dir);
		} else if (in_ours && !strcmp(elem, "property")) {
			char *type = attr(tag, "type"), *access = attr(tag, "access");

			cpm_str_printf(&out, "property %s %s %s\n", name, type, access);
			free(type);
			free(access);
		} else if (in_ours && strcmp(elem, "annotation")) {
			ck_abort_msg("unexpected element <%s>", elem);
		}
		free(name);
		free(tag);
	}
	return cpm_str_steal(&out);
}

static char *generated_xml(void)
{
	struct cpm_str b = { 0 };

	cpm_str_add(&b, "<node>\n");
	cpm_interface_xml(&b, &cpm_manager_interface);
	cpm_interface_xml(&b, &cpm_account_interface);
	cpm_interface_xml(&b, &cpm_folder_interface);
	cpm_str_add(&b, "</node>\n");
	return cpm_str_steal(&b);
}

/*
 * A member of a flattened description: its interface and its block (its
 * line and those of its args), both without the final newline.
 */
struct member {
	char *iface, *line;
};

static void members_free(struct member *list, size_t n);

/* The members of flat, in order (*n of them). */
static struct member *members_of(const char *flat, size_t *n)
{
	struct member *list = NULL;
	const char *iface = NULL, *p = flat;
	size_t iface_len = 0;

	*n = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		const char *end = nl ? nl : p + strlen(p);

		if (!strncmp(p, "interface ", 10)) {
			iface = p + 10;
			iface_len = (size_t)(end - iface);
		} else if (!strncmp(p, "arg ", 4)) {
			/* the member's block grows by this line */
			char *line = list[*n - 1].line;

			ck_assert_uint_gt(*n, 0);
			ck_assert_int_ge(
				asprintf(&list[*n - 1].line, "%s\n%.*s", line, (int)(end - p), p),
				0);
			free(line);
		} else {
			ck_assert_ptr_nonnull(iface);
			list = realloc(list, (*n + 1) * sizeof(*list));
			ck_assert_ptr_nonnull(list);
			list[*n].iface = strndup(iface, iface_len);
			list[*n].line = strndup(p, (size_t)(end - p));
			(*n)++;
		}
		p = nl ? nl + 1 : end;
	}
	return list;
}

static int member_cmp(const void *x, const void *y)
{
	const struct member *a = x, *b = y;
	int c = strcmp(a->iface, b->iface);

	return c ? c : strcmp(a->line, b->line);
}

/* The same members in both, whatever their order (which carries no
 * meaning in introspection data); the first difference named. */
static void assert_same_members(const char *flat_a, const char *what_a, const char *flat_b,
				const char *what_b)
{
	size_t na, nb, i;
	struct member *a = members_of(flat_a, &na), *b = members_of(flat_b, &nb);

	qsort(a, na, sizeof(*a), member_cmp);
	qsort(b, nb, sizeof(*b), member_cmp);
	for (i = 0; i < na && i < nb; i++)
		if (member_cmp(&a[i], &b[i]))
			break;
	ck_assert_msg(i == na && i == nb, "%s has %s: \"%s\", %s has %s: \"%s\"", what_a,
		      i < na ? a[i].iface : "no more", i < na ? a[i].line : "", what_b,
		      i < nb ? b[i].iface : "no more", i < nb ? b[i].line : "");
	members_free(a, na);
	members_free(b, nb);
}

static void members_free(struct member *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].iface);
		free(list[i].line);
	}
	free(list);
}

/* flat without the members of list (whole blocks); fails unless each is
 * there exactly once. */
static char *drop_members(const char *flat, const struct member *list, size_t n_list)
{
	unsigned *seen = calloc(n_list + 1, sizeof(*seen));
	struct cpm_str out = { 0 };
	const char *iface = "", *p = flat;

	ck_assert_ptr_nonnull(seen);

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (!strncmp(p, "interface ", 10))
			iface = p + 10; /* up to the newline */
		for (size_t i = 0; i < n_list; i++) {
			size_t n = strlen(list[i].line);

			/* the whole block: no arg line more after it */
			if (!strncmp(p, list[i].line, n) &&
			    (!p[n] || (p[n] == '\n' && strncmp(p + n + 1, "arg ", 4))) &&
			    !strncmp(iface, list[i].iface, strlen(list[i].iface)) &&
			    iface[strlen(list[i].iface)] == '\n') {
				seen[i]++;
				len = n; /* the block, not only its first line */
				nl = p[n] ? p + n : NULL;
				goto next;
			}
		}
		cpm_str_addn(&out, p, len);
		cpm_str_add(&out, "\n");
	next:
		p += len + (nl ? 1 : 0);
	}
	for (size_t i = 0; i < n_list; i++)
		ck_assert_msg(seen[i] == 1, "%s: \"%s\" %u times", list[i].iface, list[i].line,
			      seen[i]);
	free(seen);
	return cpm_str_steal(&out);
}

/*
 * The daemon's tables are dbus/org.cpmsync.xml (the description `make
 * install` installs), member for member; that file has every member of
 * the contract (tests/data/org.cpmsync.xml) unchanged, under the same
 * interface (the contract allows additions, never renames or removals),
 * and each member it adds has a comment saying so.  A member added to a
 * table needs only its entry, so marked, in dbus/org.cpmsync.xml.
 */
START_TEST(test_tables_match_description)
{
	static const char mark[] = "<!-- Added by cpmsync, beyond the contract:";
	char *contract = contract_xml(), *ours = tree_file("dbus/org.cpmsync.xml");
	char *gen = generated_xml();
	char *a, *o, *b, *rest;
	struct member *list, *added;
	size_t n, n_added, n_marks = 0;

	ck_assert_msg(contract != NULL, "tests/data/org.cpmsync.xml not found");
	ck_assert_msg(ours != NULL, "dbus/org.cpmsync.xml not found");
	a = flatten(contract);
	o = flatten(ours);
	b = flatten(gen);
	ck_assert_ptr_nonnull(strstr(a, "interface org.cpmsync.Folder1\n"));
	assert_same_members(b, "the tables", o, "dbus/org.cpmsync.xml");

	list = members_of(a, &n);
	ck_assert_uint_gt(n, 40);
	rest = drop_members(o, list, n);
	added = members_of(rest, &n_added);
	for (const char *p = ours; (p = strstr(p, mark)); p += sizeof(mark) - 1)
		n_marks++;
	ck_assert_msg(n_added == n_marks, "%zu members beyond the contract, %zu marked:\n%s",
		      n_added, n_marks, rest);

	members_free(added, n_added);
	members_free(list, n);
	free(rest);
	free(a);
	free(o);
	free(b);
	free(contract);
	free(ours);
	free(gen);
}
END_TEST

/* Every object's Introspect has the standard interfaces and its own. */
START_TEST(test_introspect_objects)
{
	struct cpm_bus *bus = cpm_bus_new_unconnected();
	DBusMessage *m, *r;
	const char *xml;
	char *flat;
	int dummy;

	ck_assert_int_eq(cpm_bus_add_object(bus, "/org/cpmsync", &cpm_manager_interface, &dummy,
					    CPM_OBJECT_MANAGER),
			 0);
	ck_assert_int_eq(
		cpm_bus_add_object(bus, "/org/cpmsync/a_2db", &cpm_account_interface, &dummy, 0),
		0);
	ck_assert_int_eq(
		cpm_bus_add_object(bus, "/org/cpmsync/a_2db", &cpm_account_interface, &dummy, 0),
		-EEXIST);
	ck_assert_int_eq(cpm_bus_add_object(bus, "/org/cpmsync/a_2db/folder7",
					    &cpm_folder_interface, &dummy, 0),
			 0);

	m = new_call("org.cpmsync", "/org/cpmsync", CPM_IFACE_INTROSPECTABLE, "Introspect");
	r = cpm_bus_handle(bus, m);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID));
	ck_assert_ptr_nonnull(strstr(xml, "<interface name=\"org.freedesktop.DBus.Properties\">"));
	ck_assert_ptr_nonnull(
		strstr(xml, "<interface name=\"org.freedesktop.DBus.ObjectManager\">"));
	ck_assert_ptr_nonnull(strstr(xml, "<interface name=\"org.cpmsync.Manager1\">"));
	ck_assert_ptr_nonnull(strstr(xml, "<node name=\"a_2db\"/>"));
	ck_assert_ptr_null(strstr(xml, "folder7"));
	flat = flatten(xml);
	ck_assert_str_eq(flat, "interface org.cpmsync.Manager1\n"
			       "method AddAccount\n"
			       "arg name s in\n"
			       "arg settings a{sv} in\n"
			       "arg account o out\n"
			       "method RemoveAccount\n"
			       "arg account o in\n"
			       "signal UnsentChangesSaved\n"
			       "arg account o \n"
			       "arg directory s \n"
			       "arg messages u \n"
			       "arg changes u \n"
			       "property Version s read\n"
			       "property ConfigError s read\n"
			       "property ConfigFile s read\n"
			       "property Database s read\n"
			       "property ConfigWarnings as read\n");
	free(flat);
	dbus_message_unref(m);
	dbus_message_unref(r);

	/* An intermediate node lists its child. */
	m = new_call("org.cpmsync", "/org", CPM_IFACE_INTROSPECTABLE, "Introspect");
	r = cpm_bus_handle(bus, m);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID));
	ck_assert_ptr_nonnull(strstr(xml, "<node name=\"cpmsync\"/>"));
	ck_assert_ptr_null(strstr(xml, "org.cpmsync.Manager1"));
	dbus_message_unref(m);
	dbus_message_unref(r);

	/* A folder object: ObjectManager only on the root. */
	m = new_call("org.cpmsync", "/org/cpmsync/a_2db/folder7", CPM_IFACE_INTROSPECTABLE,
		     "Introspect");
	r = cpm_bus_handle(bus, m);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID));
	ck_assert_ptr_nonnull(strstr(xml, "org.cpmsync.Folder1"));
	ck_assert_ptr_null(strstr(xml, "ObjectManager"));
	dbus_message_unref(m);
	dbus_message_unref(r);

	/* Unknown object. */
	m = new_call("org.cpmsync", "/nowhere", CPM_IFACE_INTROSPECTABLE, "Introspect");
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), DBUS_ERROR_UNKNOWN_OBJECT);
	dbus_message_unref(m);
	dbus_message_unref(r);

	cpm_bus_remove_object(bus, "/org/cpmsync/a_2db/folder7");
	ck_assert(!cpm_bus_has_object(bus, "/org/cpmsync/a_2db/folder7"));
	cpm_bus_free(bus);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Dispatch on a test interface */

static int handler_calls;
static char prop_value[64] = "hello";

static DBusMessage *echo(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	(void)userdata;
	handler_calls++;
	return cpm_reply(msg);
}

static void get_p(DBusMessageIter *iter, void *userdata)
{
	(void)userdata;
	cpm_append_string(iter, prop_value);
}

static DBusMessage *set_p(DBusMessage *msg, DBusMessageIter *value, void *userdata)
{
	const char *s;

	(void)userdata;
	dbus_message_iter_get_basic(value, &s);
	if (!*s)
		return cpm_error_invalid_args(msg, "value: empty");
	snprintf(prop_value, sizeof(prop_value), "%s", s);
	return NULL;
}

static void get_q(DBusMessageIter *iter, void *userdata)
{
	dbus_uint32_t v = 42;

	(void)userdata;
	dbus_message_iter_append_basic(iter, DBUS_TYPE_UINT32, &v);
}

static const struct cpm_interface test_iface = {
	.name = "org.example.Test",
	.methods =
		(const struct cpm_method[]){
			{ "Echo", CPM_ARGS({ "a", "s" }, { "b", "at" }), NULL, echo },
			{ NULL },
		},
	.properties =
		(const struct cpm_property[]){
			{ "P", "s", get_p, set_p },
			{ "Q", "u", get_q, NULL },
			{ NULL },
		},
};

static DBusMessage *call(const char *iface, const char *member)
{
	return new_call("org.cpmsync", "/t", iface, member);
}

START_TEST(test_dispatch)
{
	struct cpm_bus *bus = cpm_bus_new_unconnected();
	const char *s = "x", *iface = "org.example.Test", *name;
	DBusMessageIter it, v;
	DBusMessage *m, *r;
	dbus_uint32_t u = 1;

	handler_calls = 0;
	ck_assert_int_eq(cpm_bus_add_object(bus, "/t", &test_iface, NULL, 0), 0);

	/* Wrong signature: InvalidArgs naming the expected one; no call. */
	m = call(iface, "Echo");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &s, DBUS_TYPE_UINT32, &u, DBUS_TYPE_INVALID);
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), CPM_ERROR_INVALID_ARGS);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID));
	ck_assert_ptr_nonnull(strstr(name, "'sat'"));
	ck_assert_int_eq(handler_calls, 0);
	dbus_message_unref(m);
	dbus_message_unref(r);

	/* Right signature, with or without the interface. */
	for (int i = 0; i < 2; i++) {
		DBusMessageIter a;

		m = call(i ? NULL : iface, "Echo");
		dbus_message_iter_init_append(m, &it);
		dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &s);
		dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "t", &a);
		dbus_message_iter_close_container(&it, &a);
		r = cpm_bus_handle(bus, m);
		ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
		dbus_message_unref(m);
		dbus_message_unref(r);
	}
	ck_assert_int_eq(handler_calls, 2);

	m = call(iface, "Nope");
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), DBUS_ERROR_UNKNOWN_METHOD);
	dbus_message_unref(m);
	dbus_message_unref(r);

	m = call("org.example.Other", "Echo");
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), DBUS_ERROR_UNKNOWN_INTERFACE);
	dbus_message_unref(m);
	dbus_message_unref(r);

	/* Properties.Get / Set / GetAll */
	name = "Q";
	m = call(CPM_IFACE_PROPERTIES, "Get");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
				 DBUS_TYPE_INVALID);
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_signature(r), "v");
	dbus_message_iter_init(r, &it);
	dbus_message_iter_recurse(&it, &v);
	dbus_message_iter_get_basic(&v, &u);
	ck_assert_uint_eq(u, 42);
	dbus_message_unref(m);
	dbus_message_unref(r);

	m = call(CPM_IFACE_PROPERTIES, "Set");
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &name);
	dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, "u", &v);
	dbus_message_iter_append_basic(&v, DBUS_TYPE_UINT32, &u);
	dbus_message_iter_close_container(&it, &v);
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), DBUS_ERROR_PROPERTY_READ_ONLY);
	dbus_message_unref(m);
	dbus_message_unref(r);

	name = "P";
	m = call(CPM_IFACE_PROPERTIES, "Set");
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &name);
	dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, "u", &v);
	dbus_message_iter_append_basic(&v, DBUS_TYPE_UINT32, &u);
	dbus_message_iter_close_container(&it, &v);
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), CPM_ERROR_INVALID_ARGS);
	dbus_message_unref(m);
	dbus_message_unref(r);

	s = "world";
	m = call(CPM_IFACE_PROPERTIES, "Set");
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &name);
	dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, "s", &v);
	dbus_message_iter_append_basic(&v, DBUS_TYPE_STRING, &s);
	dbus_message_iter_close_container(&it, &v);
	r = cpm_bus_handle(bus, m);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	ck_assert_str_eq(prop_value, "world");
	dbus_message_unref(m);
	dbus_message_unref(r);

	m = call(CPM_IFACE_PROPERTIES, "GetAll");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID);
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_signature(r), "a{sv}");
	dbus_message_unref(m);
	dbus_message_unref(r);

	name = "Nope";
	m = call(CPM_IFACE_PROPERTIES, "Get");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
				 DBUS_TYPE_INVALID);
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), DBUS_ERROR_UNKNOWN_PROPERTY);
	dbus_message_unref(m);
	dbus_message_unref(r);

	/* No ObjectManager on a plain object. */
	m = call(CPM_IFACE_OBJECT_MANAGER, "GetManagedObjects");
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_error_name(r), DBUS_ERROR_UNKNOWN_INTERFACE);
	dbus_message_unref(m);
	dbus_message_unref(r);
	cpm_bus_free(bus);
}
END_TEST

START_TEST(test_managed_objects)
{
	struct cpm_bus *bus = cpm_bus_new_unconnected();
	DBusMessageIter it, a, e;
	DBusMessage *m, *r;
	const char *path;
	int n = 0;

	ck_assert_int_eq(cpm_bus_add_object(bus, "/r", &test_iface, NULL, CPM_OBJECT_MANAGER), 0);
	ck_assert_int_eq(cpm_bus_add_object(bus, "/r/b", &test_iface, NULL, 0), 0);
	ck_assert_int_eq(cpm_bus_add_object(bus, "/r/a/x", &test_iface, NULL, 0), 0);
	ck_assert_int_eq(cpm_bus_add_object(bus, "/rr", &test_iface, NULL, 0), 0);
	m = new_call("org.cpmsync", "/r", CPM_IFACE_OBJECT_MANAGER, "GetManagedObjects");
	r = cpm_bus_handle(bus, m);
	ck_assert_str_eq(dbus_message_get_signature(r), "a{oa{sa{sv}}}");
	dbus_message_iter_init(r, &it);
	dbus_message_iter_recurse(&it, &a);
	while (dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY) {
		dbus_message_iter_recurse(&a, &e);
		dbus_message_iter_get_basic(&e, &path);
		ck_assert_str_eq(path, n == 0 ? "/r/a/x" : "/r/b");
		n++;
		dbus_message_iter_next(&a);
	}
	ck_assert_int_eq(n, 2);
	dbus_message_unref(m);
	dbus_message_unref(r);
	cpm_bus_free(bus);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Helpers */

START_TEST(test_path_escape)
{
	static const struct {
		const char *name, *elem;
	} cases[] = {
		{ "work", "work" },	  { "my-mail", "my_2dmail" }, { "a_b", "a_5fb" },
		{ "A.b c", "A_2eb_20c" }, { "\xc3\xa9", "_c3_a9" },   { "", "_" },
		{ "a-", "a_2d" },	  { "a_2d", "a_5f2d" },	      { "_", "_5f" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = cpm_path_escape(cases[i].name), *u, *path;

		ck_assert_str_eq(e, cases[i].elem);
		path = cpm_asprintf("/org/cpmsync/%s", e);
		ck_assert(dbus_validate_path(path, NULL));
		u = cpm_path_unescape(e);
		ck_assert_ptr_nonnull(u);
		ck_assert_str_eq(u, cases[i].name);
		free(u);
		free(path);
		free(e);
	}
	ck_assert_ptr_null(cpm_path_unescape(""));
	ck_assert_ptr_null(cpm_path_unescape("a-b"));
	ck_assert_ptr_null(cpm_path_unescape("_00"));
	/* Only the spelling cpm_path_escape() makes: no upper-case hex, no
	 * escaped letter or digit, no bare '_' inside an element. */
	ck_assert_ptr_null(cpm_path_unescape("a_2D"));
	ck_assert_ptr_null(cpm_path_unescape("_61"));
	ck_assert_ptr_null(cpm_path_unescape("a_b"));
}
END_TEST

/* Two account names never share an object path element (the old escape
 * kept '_', so "a-" and "a_2d" were both /org/cpmsync/a_2d). */
START_TEST(test_path_escape_injective)
{
	static const char *const names[] = { "a-", "a_2d", "a_", "a_5f", "_", "", "a__", "a_-" };
	char *e[sizeof(names) / sizeof(names[0])];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		e[i] = cpm_path_escape(names[i]);
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(strcmp(e[i], e[j]) != 0, "'%s' and '%s' both give %s",
				      names[i], names[j], e[i]);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		free(e[i]);
}
END_TEST

START_TEST(test_checks)
{
	static const char *good_flags[] = { "\\Seen",	"\\Deleted", "$Label1", "Junk",
					    "$MDNSent", "a.b-c_d",   "\\seen",	"\\Recent" };
	static const char *bad_flags[] = { "",	 "\\",	     "\\\\Seen", "a b",	    "(x",
					   "x)", "a*",	     "a%",	 "a\"",	    "a]",
					   "a{", "\xc3\xa9", "a\x01",	 "\\Seen\\" };
	char big[300];
	char *err;

	for (size_t i = 0; i < sizeof(good_flags) / sizeof(good_flags[0]); i++) {
		err = cpm_check_flag("add", good_flags[i]);
		ck_assert_msg(!err, "%s: %s", good_flags[i], err);
	}
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		err = cpm_check_flag("add", bad_flags[i]);
		ck_assert_msg(err != NULL, "flag '%s' accepted", bad_flags[i]);
		ck_assert_msg(!strncmp(err, "add: ", 5), "%s", err);
		free(err);
	}
	memset(big, 'a', 257);
	big[257] = '\0';
	err = cpm_check_flag("add", big);
	ck_assert_ptr_nonnull(err);
	free(err);
	big[256] = '\0';
	ck_assert_ptr_null(cpm_check_flag("add", big));
	/* A '\' flag that RFC 3501 does not define. */
	err = cpm_check_flag("add", "\\Bogus");
	ck_assert_str_eq(err, "add: flag '\\Bogus' is not a system flag (\\Answered, \\Deleted, "
			      "\\Draft, \\Flagged, \\Seen)");
	free(err);
	/* \Recent may be asked for, not set. */
	ck_assert_ptr_null(cpm_check_no_recent("flags", (const char *[]){ "\\Seen", NULL }));
	err = cpm_check_no_recent("flags", (const char *[]){ "\\Seen", "\\recent", NULL });
	ck_assert_str_eq(err, "flags: flag \\Recent cannot be set (the server sets it)");
	free(err);

	/* sections */
	ck_assert_ptr_null(cpm_check_section("section", ""));
	ck_assert_ptr_null(cpm_check_section("section", "HEADER"));
	ck_assert_ptr_null(cpm_check_section("section", "text"));
	ck_assert_ptr_null(cpm_check_section("section", "1"));
	ck_assert_ptr_null(cpm_check_section("section", "1.2.3"));
	ck_assert_ptr_null(cpm_check_section("section", "2.MIME"));
	ck_assert_ptr_null(cpm_check_section("section", "3.HEADER"));
	ck_assert_ptr_null(cpm_check_section("section", "3.TEXT"));
	static const char *bad_sections[] = { "MIME", "0",    "01",    "1.",
					      ".1",   "1..2", "1.FOO", "HEADER.FIELDS (To)",
					      "1 ",   "x" };
	for (size_t i = 0; i < sizeof(bad_sections) / sizeof(bad_sections[0]); i++) {
		err = cpm_check_section("section", bad_sections[i]);
		ck_assert_msg(err != NULL, "section '%s' accepted", bad_sections[i]);
		ck_assert(!strncmp(err, "section: ", 9));
		free(err);
	}
	memset(big, '1', sizeof(big));
	big[129] = '\0';
	err = cpm_check_section("section", big);
	ck_assert_ptr_nonnull(err);
	free(err);

	/* body parts (Preview): a part number or "", not HEADER/TEXT/MIME */
	ck_assert_ptr_null(cpm_check_part("section", ""));
	ck_assert_ptr_null(cpm_check_part("section", "1"));
	ck_assert_ptr_null(cpm_check_part("section", "10.2.33"));
	static const char *bad_parts[] = { "HEADER", "TEXT", "2.MIME", "3.HEADER", "0", "01",
					   "1.",     ".1",   "1..2",   "1.0",	   "x", "1 " };
	for (size_t i = 0; i < sizeof(bad_parts) / sizeof(bad_parts[0]); i++) {
		char want[200];

		snprintf(want, sizeof(want),
			 "section: '%s' is not a body part: \"\" (the message's own body) or a "
			 "part number (\"1\", \"1.2\")",
			 bad_parts[i]);
		err = cpm_check_part("section", bad_parts[i]);
		ck_assert_msg(err != NULL, "part '%s' accepted", bad_parts[i]);
		ck_assert_str_eq(err, want);
		free(err);
	}
	err = cpm_check_part("section", big);
	ck_assert_str_eq(err, "section: longer than 128 bytes");
	free(err);

	/* names */
	ck_assert_ptr_null(cpm_check_name("name", "INBOX/Sub", false));
	err = cpm_check_name("name", "", false);
	ck_assert_str_eq(err, "name: must not be empty");
	free(err);
	ck_assert_ptr_null(cpm_check_name("folder", "", true));
	/* Control and bidi characters: the IMAP side's rule (cpmsync_text_unsafe_cp). */
	ck_assert_ptr_null(cpm_check_name("name", "Entw\xc3\xbcrfe \xd7\xa9\xd7\x9c", false));
	err = cpm_check_name("name", "Bad\x1b[31m", false);
	ck_assert_str_eq(err,
			 "name: contains the control character U+001B at byte 3; names may not "
			 "contain control characters (C0, DEL, C1) or bidirectional formatting "
			 "characters");
	free(err);
	err = cpm_check_name("destination", "a\tb", false);
	ck_assert_str_eq(err, "destination: contains the control character U+0009 at byte 1; names "
			      "may not contain control characters (C0, DEL, C1) or bidirectional "
			      "formatting characters");
	free(err);
	err = cpm_check_name("name", "x\x7f", false);
	ck_assert_str_eq(err,
			 "name: contains the control character U+007F at byte 1; names may not "
			 "contain control characters (C0, DEL, C1) or bidirectional formatting "
			 "characters");
	free(err);
	err = cpm_check_name("name", "c1 \xc2\x9b", false);
	ck_assert_str_eq(err, "name: contains the C1 control character U+009B at byte 3; names may "
			      "not contain control characters (C0, DEL, C1) or bidirectional "
			      "formatting characters");
	free(err);
	err = cpm_check_name("settings: Folders", "gpj\xe2\x80\xae.exe", false);
	ck_assert_str_eq(err,
			 "settings: Folders: contains the bidirectional formatting character "
			 "U+202E at byte 3; names may not contain control characters (C0, DEL, "
			 "C1) or bidirectional formatting characters");
	free(err);
	{
		char *longname = malloc(1026);

		memset(longname, 'x', 1025);
		longname[1025] = '\0';
		err = cpm_check_name("name", longname, false);
		ck_assert_ptr_nonnull(err);
		free(err);
		longname[1024] = '\0';
		ck_assert_ptr_null(cpm_check_name("name", longname, false));
		free(longname);
	}

	/* rights, entries, account names */
	ck_assert_ptr_null(cpm_check_rights("rights", "lrswipkxtea"));
	ck_assert_ptr_null(cpm_check_rights("rights", ""));
	ck_assert_ptr_null(cpm_check_rights("rights", "+w"));
	err = cpm_check_rights("rights", "LR");
	ck_assert_ptr_nonnull(err);
	free(err);
	ck_assert_ptr_null(cpm_check_metadata_entry("entries", "/private/comment"));
	ck_assert_ptr_null(cpm_check_metadata_entry("entries", "/shared/vendor/x"));
	/* The store's rule (printable ASCII, no space), named and quoted. */
	err = cpm_check_metadata_entry("values", "/private/a b");
	ck_assert_str_eq(err, "values: entry name \"/private/a b\" contains a space or a "
			      "character that is not printable ASCII");
	free(err);
	err = cpm_check_metadata_entry("entries", "/private/\xc3\xa9");
	ck_assert_str_eq(err, "entries: entry name \"/private/\xc3\xa9\" contains a space or a "
			      "character that is not printable ASCII");
	free(err);
	static const char *bad_entries[] = { "comment",	 "/private/",	"/private//x",
					     "/other/x", "/private/a*", "" };
	for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]); i++) {
		err = cpm_check_metadata_entry("entries", bad_entries[i]);
		ck_assert_msg(err != NULL, "entry '%s' accepted", bad_entries[i]);
		free(err);
	}
	ck_assert_ptr_null(cpm_check_account_name("name", "work-mail_2"));
	err = cpm_check_account_name("name", "a b");
	ck_assert_ptr_nonnull(err);
	free(err);
	err = cpm_check_account_name("name", "");
	ck_assert_ptr_nonnull(err);
	free(err);

	/* The limits are the store's and the configuration's (cpmsync/limits.h):
	 * D-Bus used to take 255-byte account names and 1024-byte identifiers
	 * that the configuration (64) and the store (256) then refused. */
	{
		char lim[CPMSYNC_FOLDER_NAME_MAX + 2];

		memset(lim, 'a', sizeof(lim));
		lim[CPMSYNC_ACCOUNT_NAME_MAX] = '\0';
		ck_assert_ptr_null(cpm_check_account_name("name", lim));
		lim[CPMSYNC_ACCOUNT_NAME_MAX] = 'a';
		lim[CPMSYNC_ACCOUNT_NAME_MAX + 1] = '\0';
		err = cpm_check_account_name("name", lim);
		ck_assert_str_eq(err, "name: longer than 64 bytes");
		free(err);
		lim[CPMSYNC_ACCOUNT_NAME_MAX + 1] = 'a';

		lim[CPMSYNC_ACL_IDENTIFIER_MAX] = '\0';
		ck_assert_ptr_null(cpm_check_acl_identifier("identifier", lim));
		lim[CPMSYNC_ACL_IDENTIFIER_MAX] = 'a';
		lim[CPMSYNC_ACL_IDENTIFIER_MAX + 1] = '\0';
		err = cpm_check_acl_identifier("identifier", lim);
		ck_assert_str_eq(err, "identifier: longer than 256 bytes");
		free(err);
		err = cpm_check_acl_identifier("identifier", "");
		ck_assert_str_eq(err, "identifier: must not be empty");
		free(err);
	}
}
END_TEST

START_TEST(test_utf8)
{
	char *tmp;
	const char *s;

	s = cpm_utf8("plain \xc3\xa9", &tmp);
	ck_assert_ptr_null(tmp);
	ck_assert_str_eq(s, "plain \xc3\xa9");
	s = cpm_utf8("a\xff"
		     "b\xc3",
		     &tmp);
	ck_assert_ptr_nonnull(tmp);
	ck_assert_str_eq(s, "a\xef\xbf\xbd"
			    "b\xef\xbf\xbd");
	ck_assert(dbus_validate_utf8(s, NULL));
	free(tmp);
	s = cpm_utf8("\xed\xa0\x80", &tmp); /* a surrogate */
	ck_assert(dbus_validate_utf8(s, NULL));
	free(tmp);
	s = cpm_utf8(NULL, &tmp);
	ck_assert_str_eq(s, "");
}
END_TEST

START_TEST(test_error_mapping)
{
	static const struct {
		int r;
		const char *name;
	} cases[] = {
		{ -EINVAL, CPM_ERROR_INVALID_ARGS },
		{ -CPMSYNC_E_NOT_FOUND, CPM_ERROR_NOT_FOUND },
		{ -CPMSYNC_E_OFFLINE, CPM_ERROR_OFFLINE },
		{ -CPMSYNC_E_NOT_SUPPORTED, CPM_ERROR_NOT_SUPPORTED },
		{ -CPMSYNC_E_SERVER, CPM_ERROR_SERVER },
		{ -CPMSYNC_E_AUTH, CPM_ERROR_FAILED },
		{ -ENOMEM, CPM_ERROR_FAILED },
		{ -EIO, CPM_ERROR_FAILED },
	};
	DBusMessage *m = new_call("org.cpmsync", "/", "x.y", "Z");
	DBusMessage *r;
	const char *text;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(cpm_error_name(cases[i].r), cases[i].name);
	r = cpm_error_from_code(m, -CPMSYNC_E_NOT_SUPPORTED, "METADATA");
	ck_assert_str_eq(dbus_message_get_error_name(r), CPM_ERROR_NOT_SUPPORTED);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
	ck_assert_str_eq(text, "METADATA");
	dbus_message_unref(r);
	r = cpm_error_from_code(m, -CPMSYNC_E_SERVER, "NO [NOPERM] \xff bad");
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
	ck_assert_str_eq(text, "NO [NOPERM] \xef\xbf\xbd bad");
	dbus_message_unref(r);
	r = cpm_error_from_code(m, -CPMSYNC_E_OFFLINE, NULL);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID));
	ck_assert(strlen(text) > 0);
	dbus_message_unref(r);
	dbus_message_unref(m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Settings (AddAccount) and criteria (Search) */

static void dict_s(DBusMessageIter *d, const char *k, const char *v)
{
	cpm_dict_append(d, k, DBUS_TYPE_STRING, &v);
}

/* Builds a message whose single argument is a{sv} from a spec string of
 * "Key=type:value" items separated by ';' (types s, q, x, u, as with
 * comma-separated values). */
static DBusMessage *dict_message(const char *spec)
{
	DBusMessage *m = new_call("org.cpmsync", "/", "x.y", "Z");
	DBusMessageIter it, d;
	char *copy = strdup(spec), *save = NULL, *item;

	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d);
	for (item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(item, '='), *colon;

		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		colon = strchr(eq + 1, ':');
		ck_assert_ptr_nonnull(colon);
		*colon = '\0';
		if (!strcmp(eq + 1, "s")) {
			dict_s(&d, item, colon + 1);
		} else if (!strcmp(eq + 1, "q")) {
			dbus_uint16_t q = (dbus_uint16_t)atoi(colon + 1);

			cpm_dict_append(&d, item, DBUS_TYPE_UINT16, &q);
		} else if (!strcmp(eq + 1, "u")) {
			dbus_uint32_t u = (dbus_uint32_t)atoi(colon + 1);

			cpm_dict_append(&d, item, DBUS_TYPE_UINT32, &u);
		} else if (!strcmp(eq + 1, "x")) {
			dbus_int64_t x = atoll(colon + 1);

			cpm_dict_append(&d, item, DBUS_TYPE_INT64, &x);
		} else if (!strcmp(eq + 1, "as")) {
			cpm_dict_append_split(&d, item, colon + 1, ',');
		} else if (!strcmp(eq + 1, "ay")) {
			/* The text as bytes; '|' stands for a newline. */
			DBusMessageIter e, v, a;
			const char *key = item, *p = colon + 1;

			for (char *q = colon + 1; *q; q++)
				if (*q == '|')
					*q = '\n';
			dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e);
			dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key);
			dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "ay", &v);
			dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "y", &a);
			dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_BYTE, &p,
							     (int)strlen(p));
			dbus_message_iter_close_container(&v, &a);
			dbus_message_iter_close_container(&e, &v);
			dbus_message_iter_close_container(&d, &e);
		} else {
			ck_abort_msg("bad spec type %s", eq + 1);
		}
	}
	dbus_message_iter_close_container(&it, &d);
	free(copy);
	return m;
}

static char *parse_settings(const char *spec, struct cpmsync_account_settings *s)
{
	DBusMessage *m = dict_message(spec);
	DBusMessageIter it;
	char *err;

	dbus_message_iter_init(m, &it);
	memset(s, 0, sizeof(*s));
	err = cpm_parse_account_settings(&it, s, NULL);
	/* strings are borrowed from m: tests read them before unref */
	if (!err) {
		static char host[64], sec[16];

		snprintf(host, sizeof(host), "%s", s->host);
		snprintf(sec, sizeof(sec), "%s", s->security);
		s->host = host;
		s->security = sec;
		s->user = s->password = s->password_file = s->ca_file = s->sync_bodies = NULL;
	}
	dbus_message_unref(m);
	return err;
}

#define CERT "-----BEGIN CERTIFICATE-----|MIIB|-----END CERTIFICATE-----|"
#define KEY  "-----BEGIN PRIVATE KEY-----|MIIE|-----END PRIVATE KEY-----|"

START_TEST(test_settings)
{
	static const struct {
		const char *spec;
		const char *error; /* prefix, NULL: accepted */
	} cases[] = {
		{ "Host=s:imap.example.org;User=s:alice;Password=s:x", NULL },
		{ "Host=s:h;Port=q:993;Security=s:starttls;User=s:u;Password=s:x;"
		  "CaCertificate=ay:" CERT ";Folders=as:INBOX,Archive/*;SyncBodies=s:256",
		  NULL },
		{ "Host=s:h;User=s:u;Password=s:x;ClientCertificate=ay:" CERT KEY, NULL },
		/* Paths and commands: refused, naming the key (issue 13). */
		{ "Host=s:h;User=s:u;PasswordFile=s:/p",
		  "settings: PasswordFile is not accepted: paths and commands belong in the "
		  "configuration file only (give Password)" },
		{ "Host=s:h;User=s:u;PasswordCommand=s:cat /p",
		  "settings: PasswordCommand is not accepted: paths and commands belong in the "
		  "configuration file only (give Password)" },
		{ "Host=s:h;User=s:u;Password=s:x;CaFile=s:/ca.pem",
		  "settings: CaFile is not accepted: paths and commands belong in the "
		  "configuration file only (give Password and CaCertificate)" },
		{ "Host=s:h;User=s:u;Password=s:x;CaFile=s:/ca.pem;PasswordFile=s:/p",
		  "settings: CaFile is not accepted" },
		{ "Host=s:h;User=s:u;Password=s:x;CaCertificate=s:/ca.pem",
		  "settings: CaCertificate must be of type ay" },
		{ "Host=s:h;User=s:u;Password=s:x;CaCertificate=ay:",
		  "settings: CaCertificate is empty" },
		{ "Host=s:h;User=s:u;Password=s:x;CaCertificate=ay:/etc/ssl/ca.pem",
		  "settings: CaCertificate must be PEM: no -----BEGIN CERTIFICATE----- block" },
		{ "Host=s:h;User=s:u;Password=s:x;ClientCertificate=ay:" CERT,
		  "settings: ClientCertificate must hold the certificate and its private key "
		  "(PEM): no PRIVATE KEY block" },
		{ "Host=s:h;User=s:u;Password=s:x;SyncBodies=s:all", NULL },
		{ "Host=s:h;User=s:u;Password=s:x;Bogus=s:1", "settings: unknown key 'Bogus'" },
		{ "Host=s:h;User=s:u;Password=s:x;Port=u:993", "settings: Port must be of type q" },
		{ "Host=s:h;User=s:u;Password=s:x;Folders=s:INBOX",
		  "settings: Folders must be of type as" },
		{ "User=s:u;Password=s:x", "settings: Host is required" },
		{ "Host=s:h;Password=s:x", "settings: User is required" },
		{ "Host=s:h;User=s:u", "settings: Password is required" },
		{ "Host=s:h;User=s:u;Password=s:x;Security=s:ssl", "settings: Security must be" },
		{ "Host=s:h;User=s:u;Password=s:x;SyncBodies=s:lots",
		  "settings: SyncBodies must be" },
		{ "Host=s:h;Host=s:i;User=s:u;Password=s:x", "settings: Host given twice" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cpmsync_account_settings s;
		char *err = parse_settings(cases[i].spec, &s);

		if (!cases[i].error) {
			ck_assert_msg(!err, "%s: %s", cases[i].spec, err);
			cpm_account_settings_clear(&s);
		} else {
			ck_assert_msg(err && !strncmp(err, cases[i].error, strlen(cases[i].error)),
				      "%s: got '%s'", cases[i].spec, err ? err : "(accepted)");
			free(err);
		}
	}
}
END_TEST

START_TEST(test_settings_values)
{
	DBusMessage *m = dict_message("Host=s:h;Port=q:1143;User=s:u;Password=s:pw;"
				      "Folders=as:INBOX,Sent;CaCertificate=ay:" CERT
				      ";ClientCertificate=ay:" KEY CERT);
	struct cpmsync_account_settings s = { 0 };
	struct cpm_account_pems pems = { 0 };
	DBusMessageIter it;

	dbus_message_iter_init(m, &it);
	ck_assert_ptr_null(cpm_parse_account_settings(&it, &s, &pems));
	ck_assert_str_eq(s.host, "h");
	ck_assert_uint_eq(s.port, 1143);
	ck_assert_str_eq(s.security, "tls");
	ck_assert_str_eq(s.password, "pw");
	ck_assert_ptr_null(s.password_file);
	ck_assert_ptr_null(s.password_command);
	ck_assert_ptr_null(s.ca_file);
	ck_assert_uint_eq(pems.ca_len, strlen(CERT));
	ck_assert(!memcmp(pems.ca, "-----BEGIN CERTIFICATE-----\nMIIB\n", 33));
	ck_assert_uint_eq(pems.client_len, strlen(KEY CERT));
	ck_assert(!memcmp(pems.client, "-----BEGIN PRIVATE KEY-----\n", 28));
	ck_assert_str_eq(s.folders[0], "INBOX");
	ck_assert_str_eq(s.folders[1], "Sent");
	ck_assert_ptr_null(s.folders[2]);
	cpm_account_settings_clear(&s);
	dbus_message_unref(m);
}
END_TEST

START_TEST(test_criteria)
{
	static const struct {
		const char *spec;
		const char *error;
	} cases[] = {
		{ "", NULL },
		{ "Text=s:hello;From=s:a@b;To=s:c;Subject=s:s;Since=x:100;Before=x:200;"
		  "Flags=as:\\Seen,$x;NotFlags=as:\\Deleted;ConversationId=s:abc",
		  NULL },
		{ "Nope=s:x", "criteria: unknown key 'Nope'" },
		{ "Since=u:5", "criteria: Since must be of type x" },
		{ "Flags=as:a b", "criteria: Flags: flag" },
		{ "Text=s:a;Text=s:b", "criteria: Text given twice" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		DBusMessage *m = dict_message(cases[i].spec);
		struct search_state *s = calloc(1, sizeof(*s));
		DBusMessageIter it;
		char *err;

		dbus_message_iter_init(m, &it);
		err = cpm_parse_search_criteria(&it, s);
		if (!cases[i].error) {
			ck_assert_msg(!err, "%s: %s", cases[i].spec, err);
			if (i == 1) {
				ck_assert_str_eq(s->c.text, "hello");
				ck_assert_int_eq(s->c.since, 100);
				ck_assert_int_eq(s->c.before, 200);
				ck_assert_str_eq(s->c.flags[1], "$x");
				ck_assert_ptr_null(s->c.flags[2]);
				ck_assert_str_eq(s->c.not_flags[0], "\\Deleted");
				ck_assert_str_eq(s->c.conversation_id, "abc");
			}
		} else {
			ck_assert_msg(err && !strncmp(err, cases[i].error, strlen(cases[i].error)),
				      "%s: got '%s'", cases[i].spec, err ? err : "(accepted)");
			free(err);
		}
		search_state_free(s);
		dbus_message_unref(m);
	}
}
END_TEST

START_TEST(test_ids_and_strv_limits)
{
	DBusMessage *m = new_call("org.cpmsync", "/", "x.y", "Z");
	uint64_t *ids = calloc(CPM_MAX_IDS + 1, sizeof(*ids));
	const dbus_uint64_t *p = ids;
	const uint64_t *got;
	const char **strv;
	DBusMessageIter it, a;
	char *err;
	int n;

	for (unsigned i = 0; i <= CPM_MAX_IDS; i++)
		ids[i] = i + 1;
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "t", &a);
	dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_UINT64, &p, (int)CPM_MAX_IDS + 1);
	dbus_message_iter_close_container(&it, &a);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "t", &a);
	dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_UINT64, &p, (int)CPM_MAX_IDS);
	dbus_message_iter_close_container(&it, &a);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &a);
	for (unsigned i = 0; i <= CPM_MAX_FLAGS; i++) {
		const char *f = "\\Seen";

		dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &f);
	}
	dbus_message_iter_close_container(&it, &a);

	dbus_message_iter_init(m, &it);
	err = cpm_read_ids(&it, "ids", CPM_MAX_IDS, &got, &n);
	ck_assert_str_eq(err, "ids: at most 10000 entries");
	free(err);
	dbus_message_iter_next(&it);
	ck_assert_ptr_null(cpm_read_ids(&it, "ids", CPM_MAX_IDS, &got, &n));
	ck_assert_int_eq(n, (int)CPM_MAX_IDS);
	ck_assert_uint_eq(got[9999], 10000);
	dbus_message_iter_next(&it);
	err = cpm_read_strv(&it, "add", CPM_MAX_FLAGS, true, &strv);
	ck_assert_str_eq(err, "add: at most 256 entries");
	free(err);
	free(ids);
	dbus_message_unref(m);
}
END_TEST

START_TEST(test_summary_dict)
{
	struct cpmsync_message_info mi = {
		.id = 7,
		.folder_id = 1,
		.uid = 42,
		.flags = "$Label \\Seen",
		.internaldate = 1700000000,
		.size = 1234,
		.from = "Alice <a@example.org>",
		.to = "b@example.org\nc@example.org\n",
		.subject = "Hi \xff",
		.date = 1699999999,
		.message_id = "<x@y>",
		.conversation_id = "conv",
		.contribution_id = "contrib",
		.type = "file-transfer",
		.has_body = true,
		.direction = "sent",
		.status = "delivered",
	};
	static const char *keys[] = { "Id",
				      "Uid",
				      "Flags",
				      "InternalDate",
				      "Size",
				      "From",
				      "To",
				      "Subject",
				      "Date",
				      "MessageId",
				      "ConversationId",
				      "ContributionId",
				      "InReplyToContributionId",
				      "ImdnMessageId",
				      "Direction",
				      "Context",
				      "Type",
				      "Status",
				      "Snippet",
				      "HasBody" };
	static const char *types[] = { "t", "u", "as", "x", "u", "s", "as", "s", "x", "s",
				       "s", "s", "s",  "s", "s", "s", "s",  "s", "s", "b" };
	DBusMessage *m = new_call("org.cpmsync", "/", "x.y", "Z");
	DBusMessageIter it, a, d, e, v, arr;
	unsigned n = 0;

	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "a{sv}", &a);
	cpm_append_summary(&a, &mi);
	cpm_append_change(&a, &mi, CPMSYNC_CHANGED_FLAGS | CPMSYNC_CHANGED_HAS_BODY);
	cpm_append_change(&a, &mi, ~0u);
	cpm_append_change(&a, &mi, CPMSYNC_CHANGED_ANNOTATIONS);
	dbus_message_iter_close_container(&it, &a);
	ck_assert_str_eq(dbus_message_get_signature(m), "aa{sv}");

	dbus_message_iter_init(m, &it);
	dbus_message_iter_recurse(&it, &a);
	dbus_message_iter_recurse(&a, &d);
	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d), n++) {
		const char *key;
		char *sig;

		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &key);
		ck_assert_str_eq(key, keys[n]);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &v);
		sig = dbus_message_iter_get_signature(&v);
		ck_assert_str_eq(sig, types[n]);
		dbus_free(sig);
		if (!strcmp(key, "To")) {
			const char *s;
			int k = 0;

			dbus_message_iter_recurse(&v, &arr);
			for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_STRING;
			     dbus_message_iter_next(&arr), k++) {
				dbus_message_iter_get_basic(&arr, &s);
				ck_assert_str_eq(s, k ? "c@example.org" : "b@example.org");
			}
			ck_assert_int_eq(k, 2);
		}
		if (!strcmp(key, "Subject")) {
			const char *s;

			dbus_message_iter_get_basic(&v, &s);
			ck_assert_str_eq(s, "Hi \xef\xbf\xbd");
		}
	}
	ck_assert_uint_eq(n, sizeof(keys) / sizeof(keys[0]));

	/* The change dicts: Id and the keys of what changed, nothing else
	 * (flags and body; everything; annotations alone). */
	for (unsigned k = 0; k < 3; k++) {
		static const char *const ckeys[][13] = {
			{ "Id", "Flags", "HasBody" },
			{ "Id", "Flags", "Uid", "HasBody", "Status", "Type", "Direction", "Context",
			  "InReplyToContributionId", "Snippet", "InternalDate", "Date" },
			{ "Id" },
		};

		dbus_message_iter_next(&a);
		dbus_message_iter_recurse(&a, &d);
		n = 0;
		for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
		     dbus_message_iter_next(&d), n++) {
			const char *key;

			dbus_message_iter_recurse(&d, &e);
			dbus_message_iter_get_basic(&e, &key);
			ck_assert_ptr_nonnull(ckeys[k][n]);
			ck_assert_str_eq(key, ckeys[k][n]);
		}
		ck_assert_ptr_null(ckeys[k][n]);
	}
	dbus_message_unref(m);
}
END_TEST

static Suite *dbus_introspect_suite(void)
{
	Suite *s = suite_create("dbus-introspect");
	TCase *tc = tcase_create("contract");

	tcase_add_test(tc, test_tables_match_description);
	tcase_add_test(tc, test_introspect_objects);
	tcase_add_test(tc, test_dispatch);
	tcase_add_test(tc, test_managed_objects);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_path_escape);
	tcase_add_test(tc, test_path_escape_injective);
	tcase_add_test(tc, test_checks);
	tcase_add_test(tc, test_utf8);
	tcase_add_test(tc, test_error_mapping);
	tcase_add_test(tc, test_settings);
	tcase_add_test(tc, test_settings_values);
	tcase_add_test(tc, test_criteria);
	tcase_add_test(tc, test_ids_and_strv_limits);
	tcase_add_test(tc, test_summary_dict);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(dbus_introspect_suite)
