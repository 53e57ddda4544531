/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dbus-floor: the floor of a D-Bus reply for the benchmarks (tests/bench/
 * bench-cpm.sh).  A trivial service on the session bus that owns NAME and
 * answers every ListConversations call, on any object path, with one
 * pre-built reply read once from FILE: a whole message as
 * dbus_message_marshal() writes it (push-latency convs --save-reply saves
 * cpm-syncd's own).  Each answer is what cpm-syncd does with its kept
 * reply (dbus/conversation.c): a copy of the message, its reply serial
 * and destination set, queued on the connection.  No store, no event
 * loop of ours, no object tree: what is left is libdbus and the bus, so
 * timing calls to it the same way as to cpm-syncd, on the same bus, shows
 * the part of the figure no change to cpm-syncd can remove.
 *
 * Usage: dbus-floor --name NAME --reply FILE
 *
 * It prints "ready BYTES" on stdout once NAME is owned (BYTES: the size of
 * the message read) and runs until the bus goes or a signal ends it.  Any
 * other method call gets org.freedesktop.DBus.Error.UnknownMethod.
 * Exit status 1 on a bad FILE or bus error, 2 on bad usage.
 */
#include <dbus/dbus.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "dbus-floor"

static DBusMessage *kept;

static void fatal(const char *what, const char *why)
{
	fprintf(stderr, PROG ": %s: %s\n", what, why);
	exit(1);
}

/* FILE's bytes (at most 128 MiB, the D-Bus limit of a message); *len. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 20, n = 0, got;
	char *buf = malloc(cap);

	if (!f)
		fatal(path, strerror(errno));
	if (!buf)
		fatal(path, "out of memory");
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *nb;

			if (cap >= (size_t)128 << 20)
				fatal(path, "larger than a D-Bus message may be");
			nb = realloc(buf, cap * 2);
			if (!nb)
				fatal(path, "out of memory");
			buf = nb;
			cap *= 2;
		}
	}
	if (ferror(f))
		fatal(path, "read error");
	fclose(f);
	*len = n;
	return buf;
}

static DBusHandlerResult on_message(DBusConnection *conn, DBusMessage *msg, void *userdata)
{
	DBusMessage *reply;

	(void)userdata;
	if (dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_METHOD_CALL)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	if (dbus_message_has_member(msg, "ListConversations")) {
		/* As cpm-syncd's reply_from_kept(). */
		reply = dbus_message_copy(kept);
		if (!reply || !dbus_message_set_reply_serial(reply, dbus_message_get_serial(msg)) ||
		    !dbus_message_set_destination(reply, dbus_message_get_sender(msg)))
			fatal("reply", "out of memory");
	} else {
		reply = dbus_message_new_error(msg, DBUS_ERROR_UNKNOWN_METHOD,
					       "only ListConversations is answered");
		if (!reply)
			fatal("reply", "out of memory");
	}
	if (!dbus_message_get_no_reply(msg) && !dbus_connection_send(conn, reply, NULL))
		fatal("reply", "out of memory");
	dbus_message_unref(reply);
	return DBUS_HANDLER_RESULT_HANDLED;
}

int main(int argc, char **argv)
{
	const char *name = NULL, *file = NULL;
	DBusConnection *conn;
	DBusError err;
	size_t len;
	char *buf;
	int r;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--name") == 0)
			name = argv[i + 1];
		else if (strcmp(argv[i], "--reply") == 0)
			file = argv[i + 1];
		else
			break;
	}
	if (!name || !file || argc != 5) {
		fputs("Usage: " PROG " --name NAME --reply FILE\n", stderr);
		return 2;
	}
	dbus_error_init(&err);
	buf = read_file(file, &len);
	if (len > INT32_MAX)
		fatal(file, "too large");
	kept = dbus_message_demarshal(buf, (int)len, &err);
	free(buf);
	if (!kept)
		fatal(file, err.message);
	if (dbus_message_get_type(kept) != DBUS_MESSAGE_TYPE_METHOD_RETURN)
		fatal(file, "not a method reply");

	conn = dbus_bus_get(DBUS_BUS_SESSION, &err);
	if (!conn)
		fatal("session bus", err.message);
	dbus_connection_set_exit_on_disconnect(conn, FALSE);
	if (!dbus_connection_add_filter(conn, on_message, NULL, NULL))
		fatal("filter", "out of memory");
	r = dbus_bus_request_name(conn, name, DBUS_NAME_FLAG_DO_NOT_QUEUE, &err);
	if (r != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER)
		fatal(name, dbus_error_is_set(&err) ? err.message : "owned by another");
	printf("ready %zu\n", len);
	fflush(stdout);
	while (dbus_connection_read_write_dispatch(conn, -1))
		;
	dbus_message_unref(kept);
	return 0;
}
