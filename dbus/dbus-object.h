/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A small object framework on libdbus (the design of BlueZ gdbus, our
 * code): interfaces are static tables of methods, signals and properties;
 * the bus object dispatches calls to them after checking the incoming
 * signature, generates the Introspect XML, implements
 * org.freedesktop.DBus.Properties (Get, GetAll, Set, PropertiesChanged),
 * org.freedesktop.DBus.Introspectable and, on objects flagged so,
 * org.freedesktop.DBus.ObjectManager (GetManagedObjects,
 * InterfacesAdded/Removed for every object below).
 *
 * One fallback handler on "/" serves every path from our own table, so
 * intermediate nodes ("/", "/org") introspect with their children.
 */

#include <dbus/dbus.h>
#include <stdbool.h>

#include <cpmsync/loop.h>

struct cpm_bus;

struct cpm_arg {
	const char *name;
	const char *type;
};

/*
 * A method handler.  Returns the reply (the framework sends it and drops
 * its reference), or NULL when it replies later: it then keeps its own
 * reference on msg (dbus_message_ref) and sends the reply with
 * cpm_bus_send().  The arguments match the method's in-signature.
 */
typedef DBusMessage *(*cpm_method_fn)(struct cpm_bus *bus, DBusMessage *msg, void *userdata);

struct cpm_method {
	const char *name;
	const struct cpm_arg *in;  /* {NULL}-terminated, or NULL */
	const struct cpm_arg *out; /* {NULL}-terminated, or NULL */
	cpm_method_fn fn;
};

struct cpm_signal {
	const char *name;
	const struct cpm_arg *args;
};

/* Appends the property's value (of its type, no variant) to iter. */
typedef void (*cpm_prop_get_fn)(DBusMessageIter *iter, void *userdata);
/* value is at the variant's content, of the property's type (checked).
 * Returns NULL on success or an error reply to msg. */
typedef DBusMessage *(*cpm_prop_set_fn)(DBusMessage *msg, DBusMessageIter *value, void *userdata);

struct cpm_property {
	const char *name;
	const char *type;
	cpm_prop_get_fn get;
	cpm_prop_set_fn set; /* NULL: read-only */
};

struct cpm_interface {
	const char *name;
	const struct cpm_method *methods;      /* {NULL}-terminated */
	const struct cpm_signal *signals;      /* {NULL}-terminated */
	const struct cpm_property *properties; /* {NULL}-terminated */
};

#define CPM_ARGS(...) ((const struct cpm_arg[]){ __VA_ARGS__, { NULL, NULL } })

#define CPM_IFACE_PROPERTIES	 "org.freedesktop.DBus.Properties"
#define CPM_IFACE_INTROSPECTABLE "org.freedesktop.DBus.Introspectable"
#define CPM_IFACE_OBJECT_MANAGER "org.freedesktop.DBus.ObjectManager"

/* The signature of a method's in (or out) arguments; malloc()ed. */
char *cpm_args_signature(const struct cpm_arg *args);

/* The <interface> element of iface (indented by two spaces) into b. */
struct cpm_str;
void cpm_interface_xml(struct cpm_str *b, const struct cpm_interface *iface);

/*
 * Connects (address NULL: the session bus) with a private connection,
 * registers with the bus, attaches to loop.  On failure *ret_error is a
 * malloc()ed reason.
 */
int cpm_bus_new(struct cpmsync_loop *loop, const char *address, struct cpm_bus **ret,
		char **ret_error);
/* Unexports everything, detaches and closes.  Accepts NULL; returns NULL. */
/* cb runs when the connection to the bus is lost (the bus went away). */
void cpm_bus_set_disconnected(struct cpm_bus *bus, void (*cb)(void *userdata), void *userdata);
struct cpm_bus *cpm_bus_free(struct cpm_bus *bus);
/* A bus with no connection: objects and dispatch only (for tests). */
struct cpm_bus *cpm_bus_new_unconnected(void);

DBusConnection *cpm_bus_connection(struct cpm_bus *bus);
/* Requests name with DBUS_NAME_FLAG_DO_NOT_QUEUE (blocking, at start-up). */
int cpm_bus_request_name(struct cpm_bus *bus, const char *name, char **ret_error);

/* Sends and drops msg (ignored without a connection).  Accepts NULL. */
void cpm_bus_send(struct cpm_bus *bus, DBusMessage *msg);

enum {
	CPM_OBJECT_MANAGER = 1u << 0, /* also serves ObjectManager for the tree below */
};

/*
 * Exports path with iface (not copied: static tables) and userdata.  The
 * ObjectManager above it announces it with InterfacesAdded.  -EEXIST if
 * the path is taken.
 */
int cpm_bus_add_object(struct cpm_bus *bus, const char *path, const struct cpm_interface *iface,
		       void *userdata, unsigned flags);
/* Unexports path (InterfacesRemoved); no-op when absent. */
void cpm_bus_remove_object(struct cpm_bus *bus, const char *path);
bool cpm_bus_has_object(struct cpm_bus *bus, const char *path);

/* Emits PropertiesChanged on path for the named properties of its
 * interface (current values, from the getters).  names: NULL-terminated;
 * nothing is sent when it is empty. */
void cpm_bus_properties_changed(struct cpm_bus *bus, const char *path, const char *const *names);

/* A new signal message of path's interface (OOM aborts). */
DBusMessage *cpm_bus_new_signal(const char *path, const char *iface, const char *name);

/*
 * Handles a method call as the connection would and returns the reply
 * (NULL if the handler replies later or msg needs none).  For tests.
 */
DBusMessage *cpm_bus_handle(struct cpm_bus *bus, DBusMessage *msg);

/* Introspection XML of path (malloc()ed). */
char *cpm_bus_introspect(struct cpm_bus *bus, const char *path);

/* dbus-loop.c: libdbus watches/timeouts/dispatch on a cpmsync loop. */
struct cpm_dbus_glue;
int cpm_dbus_glue_attach(DBusConnection *conn, struct cpmsync_loop *loop,
			 struct cpm_dbus_glue **ret);
/* Detaches (removes every loop source).  Accepts NULL; returns NULL. */
struct cpm_dbus_glue *cpm_dbus_glue_detach(struct cpm_dbus_glue *glue);
