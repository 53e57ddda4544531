/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "dbus-object.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dbus-util.h"

struct object {
	char *path;
	const struct cpm_interface *iface;
	void *userdata;
	unsigned flags;
};

struct cpm_bus {
	DBusConnection *conn;
	struct cpm_dbus_glue *glue;
	bool registered;	/* the "/" fallback */
	struct object *objects; /* sorted by path (strcmp) */
	size_t n_objects, alloc_objects;
	unsigned n_managers; /* objects with CPM_OBJECT_MANAGER */
	void (*disconnected)(void *userdata);
	void *disconnected_userdata;
	bool filtering;
};

/* ------------------------------------------------------------------------ */
/* Tables and XML */

char *cpm_args_signature(const struct cpm_arg *args)
{
	struct cpm_str b = { 0 };

	for (; args && args->name; args++)
		cpm_str_add(&b, args->type);
	return cpm_str_steal(&b);
}

static void args_xml(struct cpm_str *b, const struct cpm_arg *args, const char *direction)
{
	for (; args && args->name; args++) {
		cpm_str_add(b, "      <arg name=\"");
		cpm_str_add_xml(b, args->name);
		cpm_str_add(b, "\" type=\"");
		cpm_str_add_xml(b, args->type);
		if (direction)
			cpm_str_printf(b, "\" direction=\"%s", direction);
		cpm_str_add(b, "\"/>\n");
	}
}

void cpm_interface_xml(struct cpm_str *b, const struct cpm_interface *iface)
{
	cpm_str_printf(b, "  <interface name=\"%s\">\n", iface->name);
	for (const struct cpm_method *m = iface->methods; m && m->name; m++) {
		if (!(m->in && m->in->name) && !(m->out && m->out->name)) {
			cpm_str_printf(b, "    <method name=\"%s\"/>\n", m->name);
			continue;
		}
		cpm_str_printf(b, "    <method name=\"%s\">\n", m->name);
		args_xml(b, m->in, "in");
		args_xml(b, m->out, "out");
		cpm_str_add(b, "    </method>\n");
	}
	for (const struct cpm_signal *s = iface->signals; s && s->name; s++) {
		if (!(s->args && s->args->name)) {
			cpm_str_printf(b, "    <signal name=\"%s\"/>\n", s->name);
			continue;
		}
		cpm_str_printf(b, "    <signal name=\"%s\">\n", s->name);
		args_xml(b, s->args, NULL);
		cpm_str_add(b, "    </signal>\n");
	}
	for (const struct cpm_property *p = iface->properties; p && p->name; p++)
		cpm_str_printf(b, "    <property name=\"%s\" type=\"%s\" access=\"%s\"/>\n",
			       p->name, p->type, p->set ? "readwrite" : "read");
	cpm_str_add(b, "  </interface>\n");
}

/* The standard interfaces, as tables (for their XML only: the handlers
 * are below). */
static const struct cpm_interface introspectable_iface = {
	.name = CPM_IFACE_INTROSPECTABLE,
	.methods =
		(const struct cpm_method[]){
			{ "Introspect", NULL, CPM_ARGS({ "xml_data", "s" }), NULL },
			{ NULL },
		},
};

static const struct cpm_interface properties_iface = {
	.name = CPM_IFACE_PROPERTIES,
	.methods =
		(const struct cpm_method[]){
			{ "Get", CPM_ARGS({ "interface_name", "s" }, { "property_name", "s" }),
			  CPM_ARGS({ "value", "v" }), NULL },
			{ "GetAll", CPM_ARGS({ "interface_name", "s" }),
			  CPM_ARGS({ "properties", "a{sv}" }), NULL },
			{ "Set",
			  CPM_ARGS({ "interface_name", "s" }, { "property_name", "s" },
				   { "value", "v" }),
			  NULL, NULL },
			{ NULL },
		},
	.signals =
		(const struct cpm_signal[]){
			{ "PropertiesChanged",
			  CPM_ARGS({ "interface_name", "s" }, { "changed_properties", "a{sv}" },
				   { "invalidated_properties", "as" }) },
			{ NULL },
		},
};

static const struct cpm_interface object_manager_iface = {
	.name = CPM_IFACE_OBJECT_MANAGER,
	.methods =
		(const struct cpm_method[]){
			{ "GetManagedObjects", NULL, CPM_ARGS({ "objects", "a{oa{sa{sv}}}" }),
			  NULL },
			{ NULL },
		},
	.signals =
		(const struct cpm_signal[]){
			{ "InterfacesAdded",
			  CPM_ARGS({ "object", "o" }, { "interfaces", "a{sa{sv}}" }) },
			{ "InterfacesRemoved",
			  CPM_ARGS({ "object", "o" }, { "interfaces", "as" }) },
			{ NULL },
		},
};

/* ------------------------------------------------------------------------ */
/* Object table */

static size_t object_index(struct cpm_bus *bus, const char *path, bool *found)
{
	size_t lo = 0, hi = bus->n_objects;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(bus->objects[mid].path, path);

		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct object *object_find(struct cpm_bus *bus, const char *path)
{
	bool found;
	size_t i = object_index(bus, path, &found);

	return found ? &bus->objects[i] : NULL;
}

bool cpm_bus_has_object(struct cpm_bus *bus, const char *path)
{
	return object_find(bus, path) != NULL;
}

/* Whether path is below (not equal to) parent. */
static bool path_below(const char *path, const char *parent)
{
	size_t n = strlen(parent);

	if (!strcmp(parent, "/"))
		return path[0] == '/' && path[1];
	return !strncmp(path, parent, n) && path[n] == '/';
}

static struct object *object_manager_of(struct cpm_bus *bus, const char *path)
{
	struct object *best = NULL;

	for (size_t i = 0; bus->n_managers && i < bus->n_objects; i++) {
		struct object *o = &bus->objects[i];

		if ((o->flags & CPM_OBJECT_MANAGER) && path_below(path, o->path) &&
		    (!best || strlen(o->path) > strlen(best->path)))
			best = o;
	}
	return best;
}

static void append_props(DBusMessageIter *iter, const struct object *o)
{
	DBusMessageIter d, e, v;

	if (!dbus_message_iter_open_container(iter, DBUS_TYPE_ARRAY, "{sv}", &d))
		cpm_oom();
	for (const struct cpm_property *p = o->iface->properties; p && p->name; p++) {
		if (!dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
		    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &p->name) ||
		    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, p->type, &v))
			cpm_oom();
		p->get(&v, o->userdata);
		if (!dbus_message_iter_close_container(&e, &v) ||
		    !dbus_message_iter_close_container(&d, &e))
			cpm_oom();
	}
	if (!dbus_message_iter_close_container(iter, &d))
		cpm_oom();
}

/* a{sa{sv}} of an object's interfaces. */
static void append_interfaces(DBusMessageIter *iter, const struct object *o)
{
	DBusMessageIter a, e;

	if (!dbus_message_iter_open_container(iter, DBUS_TYPE_ARRAY, "{sa{sv}}", &a) ||
	    !dbus_message_iter_open_container(&a, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &o->iface->name))
		cpm_oom();
	append_props(&e, o);
	if (!dbus_message_iter_close_container(&a, &e) ||
	    !dbus_message_iter_close_container(iter, &a))
		cpm_oom();
}

DBusMessage *cpm_bus_new_signal(const char *path, const char *iface, const char *name)
{
	DBusMessage *m = dbus_message_new_signal(path, iface, name);

	if (!m)
		cpm_oom();
	return m;
}

void cpm_bus_send(struct cpm_bus *bus, DBusMessage *msg)
{
	if (!msg)
		return;
	if (bus && bus->conn && !dbus_connection_send(bus->conn, msg, NULL))
		cpm_oom();
	dbus_message_unref(msg);
}

int cpm_bus_add_object(struct cpm_bus *bus, const char *path, const struct cpm_interface *iface,
		       void *userdata, unsigned flags)
{
	struct object *mgr;
	bool found;
	size_t i;

	if (!dbus_validate_path(path, NULL))
		return -EINVAL;
	i = object_index(bus, path, &found);
	if (found)
		return -EEXIST;
	if (bus->n_objects == bus->alloc_objects) {
		bus->alloc_objects = bus->alloc_objects ? 2 * bus->alloc_objects : 16;
		bus->objects =
			cpm_realloc(bus->objects, bus->alloc_objects * sizeof(*bus->objects));
	}
	memmove(&bus->objects[i + 1], &bus->objects[i],
		(bus->n_objects - i) * sizeof(*bus->objects));
	bus->objects[i] = (struct object){
		.path = cpm_strdup(path),
		.iface = iface,
		.userdata = userdata,
		.flags = flags,
	};
	bus->n_objects++;
	if (flags & CPM_OBJECT_MANAGER)
		bus->n_managers++;

	mgr = bus->conn ? object_manager_of(bus, path) : NULL;
	if (mgr) {
		DBusMessage *sig =
			cpm_bus_new_signal(mgr->path, CPM_IFACE_OBJECT_MANAGER, "InterfacesAdded");
		DBusMessageIter it;

		dbus_message_iter_init_append(sig, &it);
		if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_OBJECT_PATH, &path))
			cpm_oom();
		append_interfaces(&it, object_find(bus, path));
		cpm_bus_send(bus, sig);
	}
	return 0;
}

void cpm_bus_remove_object(struct cpm_bus *bus, const char *path)
{
	struct object *mgr;
	struct object o;
	bool found;
	size_t i = object_index(bus, path, &found);

	if (!found)
		return;
	o = bus->objects[i];
	memmove(&bus->objects[i], &bus->objects[i + 1],
		(bus->n_objects - i - 1) * sizeof(*bus->objects));
	bus->n_objects--;
	if (o.flags & CPM_OBJECT_MANAGER)
		bus->n_managers--;

	mgr = bus->conn ? object_manager_of(bus, o.path) : NULL;
	if (mgr) {
		DBusMessage *sig = cpm_bus_new_signal(mgr->path, CPM_IFACE_OBJECT_MANAGER,
						      "InterfacesRemoved");
		DBusMessageIter it, a;

		dbus_message_iter_init_append(sig, &it);
		if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_OBJECT_PATH, &o.path) ||
		    !dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &a) ||
		    !dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &o.iface->name) ||
		    !dbus_message_iter_close_container(&it, &a))
			cpm_oom();
		cpm_bus_send(bus, sig);
	}
	free(o.path);
}

void cpm_bus_properties_changed(struct cpm_bus *bus, const char *path, const char *const *names)
{
	struct object *o = object_find(bus, path);
	DBusMessageIter it, d, e, v, inv;
	const char *iface_name;
	DBusMessage *sig;

	if (!o || !names || !names[0] || !bus->conn)
		return;
	iface_name = o->iface->name;
	sig = cpm_bus_new_signal(path, CPM_IFACE_PROPERTIES, "PropertiesChanged");
	dbus_message_iter_init_append(sig, &it);
	if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface_name) ||
	    !dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d))
		cpm_oom();
	for (; *names; names++) {
		const struct cpm_property *p;

		for (p = o->iface->properties; p && p->name; p++)
			if (!strcmp(p->name, *names))
				break;
		if (!p || !p->name)
			continue;
		if (!dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
		    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &p->name) ||
		    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, p->type, &v))
			cpm_oom();
		p->get(&v, o->userdata);
		if (!dbus_message_iter_close_container(&e, &v) ||
		    !dbus_message_iter_close_container(&d, &e))
			cpm_oom();
	}
	if (!dbus_message_iter_close_container(&it, &d) ||
	    !dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &inv) ||
	    !dbus_message_iter_close_container(&it, &inv))
		cpm_oom();
	cpm_bus_send(bus, sig);
}

/* ------------------------------------------------------------------------ */
/* Introspection */

char *cpm_bus_introspect(struct cpm_bus *bus, const char *path)
{
	struct object *o = object_find(bus, path);
	struct cpm_str b = { 0 };
	size_t plen = strcmp(path, "/") ? strlen(path) + 1 : 1;
	char *last = NULL;

	cpm_str_add(&b, DBUS_INTROSPECT_1_0_XML_DOCTYPE_DECL_NODE "<node>\n");
	cpm_interface_xml(&b, &introspectable_iface);
	if (o) {
		cpm_interface_xml(&b, &properties_iface);
		if (o->flags & CPM_OBJECT_MANAGER)
			cpm_interface_xml(&b, &object_manager_iface);
		cpm_interface_xml(&b, o->iface);
	}
	for (size_t i = 0; i < bus->n_objects; i++) {
		const char *p = bus->objects[i].path, *e;

		if (!path_below(p, path))
			continue;
		p += plen;
		e = strchr(p, '/');
		if (!e)
			e = p + strlen(p);
		if (last && strlen(last) == (size_t)(e - p) && !strncmp(last, p, (size_t)(e - p)))
			continue;
		free(last);
		last = cpm_strndup(p, (size_t)(e - p));
		cpm_str_printf(&b, "  <node name=\"%s\"/>\n", last);
	}
	free(last);
	cpm_str_add(&b, "</node>\n");
	return cpm_str_steal(&b);
}

static bool has_children(struct cpm_bus *bus, const char *path)
{
	for (size_t i = 0; i < bus->n_objects; i++)
		if (path_below(bus->objects[i].path, path))
			return true;
	return false;
}

/* ------------------------------------------------------------------------ */
/* Dispatch */

static DBusMessage *new_reply(DBusMessage *msg)
{
	DBusMessage *r = dbus_message_new_method_return(msg);

	if (!r)
		cpm_oom();
	return r;
}

static DBusMessage *check_signature(DBusMessage *msg, const char *expected)
{
	const char *sig = dbus_message_get_signature(msg);

	if (!strcmp(sig, expected))
		return NULL;
	return cpm_error_invalid_args(msg, "wrong arguments: expected signature '%s', got '%s'",
				      expected, sig);
}

static const struct cpm_property *find_property(const struct object *o, const char *iface,
						const char *name)
{
	if (strcmp(iface, o->iface->name))
		return NULL;
	for (const struct cpm_property *p = o->iface->properties; p && p->name; p++)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

static bool standard_iface(const char *iface)
{
	return !strcmp(iface, CPM_IFACE_PROPERTIES) || !strcmp(iface, CPM_IFACE_INTROSPECTABLE) ||
	       !strcmp(iface, CPM_IFACE_OBJECT_MANAGER) ||
	       !strcmp(iface, "org.freedesktop.DBus.Peer");
}

static DBusMessage *properties_call(struct object *o, DBusMessage *msg, const char *member)
{
	const char *iface = NULL, *name = NULL;
	const struct cpm_property *p;
	DBusMessageIter it, v;
	DBusMessage *reply;

	if (!strcmp(member, "GetAll")) {
		if ((reply = check_signature(msg, "s")))
			return reply;
		dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID);
		reply = new_reply(msg);
		dbus_message_iter_init_append(reply, &it);
		if (!*iface || !strcmp(iface, o->iface->name)) {
			append_props(&it, o);
		} else if (standard_iface(iface)) {
			DBusMessageIter d;

			if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d) ||
			    !dbus_message_iter_close_container(&it, &d))
				cpm_oom();
		} else {
			dbus_message_unref(reply);
			return cpm_error(msg, DBUS_ERROR_UNKNOWN_INTERFACE,
					 "no interface '%s' on this object", iface);
		}
		return reply;
	}
	if (!strcmp(member, "Get")) {
		if ((reply = check_signature(msg, "ss")))
			return reply;
		dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
				      DBUS_TYPE_INVALID);
		p = find_property(o, *iface ? iface : o->iface->name, name);
		if (!p)
			return cpm_error(msg, DBUS_ERROR_UNKNOWN_PROPERTY,
					 "no property '%s' in interface '%s'", name, iface);
		reply = new_reply(msg);
		dbus_message_iter_init_append(reply, &it);
		if (!dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, p->type, &v))
			cpm_oom();
		p->get(&v, o->userdata);
		if (!dbus_message_iter_close_container(&it, &v))
			cpm_oom();
		return reply;
	}
	if (!strcmp(member, "Set")) {
		char *sig;
		bool ok;

		if ((reply = check_signature(msg, "ssv")))
			return reply;
		dbus_message_iter_init(msg, &it);
		dbus_message_iter_get_basic(&it, &iface);
		dbus_message_iter_next(&it);
		dbus_message_iter_get_basic(&it, &name);
		dbus_message_iter_next(&it);
		p = find_property(o, *iface ? iface : o->iface->name, name);
		if (!p)
			return cpm_error(msg, DBUS_ERROR_UNKNOWN_PROPERTY,
					 "no property '%s' in interface '%s'", name, iface);
		if (!p->set)
			return cpm_error(msg, DBUS_ERROR_PROPERTY_READ_ONLY,
					 "property '%s' is read-only", name);
		dbus_message_iter_recurse(&it, &v);
		sig = dbus_message_iter_get_signature(&v);
		if (!sig)
			cpm_oom();
		ok = !strcmp(sig, p->type);
		dbus_free(sig);
		if (!ok)
			return cpm_error_invalid_args(msg, "value: %s is of type %s", name,
						      p->type);
		reply = p->set(msg, &v, o->userdata);
		return reply ? reply : new_reply(msg);
	}
	return cpm_error(msg, DBUS_ERROR_UNKNOWN_METHOD, "no method '%s' in interface '%s'", member,
			 CPM_IFACE_PROPERTIES);
}

static DBusMessage *managed_objects(struct cpm_bus *bus, struct object *mgr, DBusMessage *msg)
{
	DBusMessage *reply;
	DBusMessageIter it, a, e;

	if ((reply = check_signature(msg, "")))
		return reply;
	reply = new_reply(msg);
	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{oa{sa{sv}}}", &a))
		cpm_oom();
	for (size_t i = 0; i < bus->n_objects; i++) {
		struct object *o = &bus->objects[i];

		if (!path_below(o->path, mgr->path) ||
		    (bus->n_managers > 1 && object_manager_of(bus, o->path) != mgr))
			continue;
		if (!dbus_message_iter_open_container(&a, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
		    !dbus_message_iter_append_basic(&e, DBUS_TYPE_OBJECT_PATH, &o->path))
			cpm_oom();
		append_interfaces(&e, o);
		if (!dbus_message_iter_close_container(&a, &e))
			cpm_oom();
	}
	if (!dbus_message_iter_close_container(&it, &a))
		cpm_oom();
	return reply;
}

DBusMessage *cpm_bus_handle(struct cpm_bus *bus, DBusMessage *msg)
{
	const char *path = dbus_message_get_path(msg);
	const char *iface = dbus_message_get_interface(msg);
	const char *member = dbus_message_get_member(msg);
	struct object *o;
	DBusMessage *reply;

	if (!path || !member)
		return NULL;
	o = object_find(bus, path);
	if ((!iface || !strcmp(iface, CPM_IFACE_INTROSPECTABLE)) && !strcmp(member, "Introspect")) {
		char *xml;

		if (!o && !has_children(bus, path))
			return cpm_error(msg, DBUS_ERROR_UNKNOWN_OBJECT, "no object at '%s'", path);
		if ((reply = check_signature(msg, "")))
			return reply;
		xml = cpm_bus_introspect(bus, path);
		reply = new_reply(msg);
		if (!dbus_message_append_args(reply, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID))
			cpm_oom();
		free(xml);
		return reply;
	}
	if (!o)
		return cpm_error(msg, DBUS_ERROR_UNKNOWN_OBJECT, "no object at '%s'", path);
	if (iface && !strcmp(iface, CPM_IFACE_PROPERTIES))
		return properties_call(o, msg, member);
	if (iface && !strcmp(iface, CPM_IFACE_OBJECT_MANAGER)) {
		if ((o->flags & CPM_OBJECT_MANAGER) && !strcmp(member, "GetManagedObjects"))
			return managed_objects(bus, o, msg);
		if (!(o->flags & CPM_OBJECT_MANAGER))
			return cpm_error(msg, DBUS_ERROR_UNKNOWN_INTERFACE,
					 "no interface '%s' on '%s'", iface, path);
		return cpm_error(msg, DBUS_ERROR_UNKNOWN_METHOD, "no method '%s'", member);
	}
	if (iface && strcmp(iface, o->iface->name))
		return cpm_error(msg, DBUS_ERROR_UNKNOWN_INTERFACE, "no interface '%s' on '%s'",
				 iface, path);
	for (const struct cpm_method *m = o->iface->methods; m && m->name; m++) {
		char *sig;

		if (strcmp(m->name, member))
			continue;
		sig = cpm_args_signature(m->in);
		reply = check_signature(msg, sig);
		free(sig);
		if (reply)
			return reply;
		return m->fn(bus, msg, o->userdata);
	}
	return cpm_error(msg, DBUS_ERROR_UNKNOWN_METHOD, "no method '%s' in interface '%s'", member,
			 o->iface->name);
}

static DBusHandlerResult message_cb(DBusConnection *conn, DBusMessage *msg, void *data)
{
	DBusMessage *reply;

	(void)conn;
	if (dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_METHOD_CALL)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	reply = cpm_bus_handle(data, msg);
	if (reply && dbus_message_get_no_reply(msg)) {
		dbus_message_unref(reply);
		reply = NULL;
	}
	cpm_bus_send(data, reply);
	return DBUS_HANDLER_RESULT_HANDLED;
}

static const DBusObjectPathVTable vtable = {
	.message_function = message_cb,
};

/* ------------------------------------------------------------------------ */
/* Connection */

struct cpm_bus *cpm_bus_new_unconnected(void)
{
	return cpm_calloc(1, sizeof(struct cpm_bus));
}

int cpm_bus_new(struct cpmsync_loop *loop, const char *address, struct cpm_bus **ret,
		char **ret_error)
{
	struct cpm_bus *bus = cpm_bus_new_unconnected();
	DBusError e;
	int r;

	dbus_error_init(&e);
	if (address) {
		bus->conn = dbus_connection_open_private(address, &e);
		if (bus->conn && !dbus_bus_register(bus->conn, &e)) {
			dbus_connection_close(bus->conn);
			dbus_connection_unref(bus->conn);
			bus->conn = NULL;
		}
	} else {
		bus->conn = dbus_bus_get_private(DBUS_BUS_SESSION, &e);
	}
	if (!bus->conn) {
		if (ret_error)
			*ret_error = cpm_asprintf("cannot connect to the %s bus: %s",
						  address ? "given" : "session",
						  e.message ? e.message : "unknown error");
		dbus_error_free(&e);
		free(bus);
		return -ECONNREFUSED;
	}
	dbus_connection_set_exit_on_disconnect(bus->conn, FALSE);
	if (!dbus_connection_register_fallback(bus->conn, "/", &vtable, bus))
		cpm_oom();
	bus->registered = true;
	r = cpm_dbus_glue_attach(bus->conn, loop, &bus->glue);
	if (r < 0) {
		if (ret_error)
			*ret_error =
				cpm_asprintf("cannot attach D-Bus to the loop: %s", strerror(-r));
		cpm_bus_free(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

DBusConnection *cpm_bus_connection(struct cpm_bus *bus)
{
	return bus->conn;
}

int cpm_bus_request_name(struct cpm_bus *bus, const char *name, char **ret_error)
{
	DBusError e;
	int r;

	if (!bus->conn) {
		if (ret_error)
			*ret_error = cpm_strdup("not connected to a bus");
		return -ENOTCONN;
	}
	dbus_error_init(&e);
	r = dbus_bus_request_name(bus->conn, name, DBUS_NAME_FLAG_DO_NOT_QUEUE, &e);
	if (r < 0) {
		if (ret_error)
			*ret_error = cpm_asprintf("cannot request the name %s: %s", name,
						  e.message ? e.message : "unknown error");
		dbus_error_free(&e);
		return -EIO;
	}
	if (r != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER &&
	    r != DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER) {
		if (ret_error)
			*ret_error = cpm_asprintf("the name %s is already owned by another process"
						  " (is another cpm-syncd running?)",
						  name);
		return -EEXIST;
	}
	return 0;
}

static DBusHandlerResult disconnect_filter(DBusConnection *conn, DBusMessage *m, void *userdata)
{
	struct cpm_bus *bus = userdata;

	(void)conn;
	if (dbus_message_is_signal(m, DBUS_INTERFACE_LOCAL, "Disconnected") && bus->disconnected)
		bus->disconnected(bus->disconnected_userdata);
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

void cpm_bus_set_disconnected(struct cpm_bus *bus, void (*cb)(void *userdata), void *userdata)
{
	bus->disconnected = cb;
	bus->disconnected_userdata = userdata;
	if (!bus->filtering && bus->conn) {
		if (!dbus_connection_add_filter(bus->conn, disconnect_filter, bus, NULL))
			cpm_oom();
		bus->filtering = true;
	}
}

struct cpm_bus *cpm_bus_free(struct cpm_bus *bus)
{
	if (!bus)
		return NULL;
	if (bus->conn && bus->filtering)
		dbus_connection_remove_filter(bus->conn, disconnect_filter, bus);
	if (bus->conn) {
		if (bus->registered)
			dbus_connection_unregister_object_path(bus->conn, "/");
		if (dbus_connection_get_is_connected(bus->conn))
			dbus_connection_flush(bus->conn);
		bus->glue = cpm_dbus_glue_detach(bus->glue);
		dbus_connection_close(bus->conn);
		dbus_connection_unref(bus->conn);
	}
	for (size_t i = 0; i < bus->n_objects; i++)
		free(bus->objects[i].path);
	free(bus->objects);
	free(bus);
	return NULL;
}
