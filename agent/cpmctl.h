/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the files of cpmctl share: cpmctl.c has main(), the output and
 * D-Bus helpers and the first commands; cpmctl-edit.c the commands that
 * change folders, messages, metadata and ACLs, search and pending;
 * cpmctl-watch.c the signal monitor.  Exit status: 0 done, 1 failed (the
 * reason on stderr), EXIT_USAGE bad usage.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <dbus/dbus.h>

#include "util.h"

struct cpmsync_store;

enum {
	EXIT_USAGE = 2,
};

#define BUS_NAME	     "org.cpmsync"
#define ROOT_PATH	     "/org/cpmsync"
#define IFACE_MANAGER	     "org.cpmsync.Manager1"
#define IFACE_ACCOUNT	     "org.cpmsync.Account1"
#define IFACE_FOLDER	     "org.cpmsync.Folder1"
#define IFACE_PROPERTIES     "org.freedesktop.DBus.Properties"
#define IFACE_OBJECT_MANAGER "org.freedesktop.DBus.ObjectManager"
#define IFACE_DBUS	     "org.freedesktop.DBus"

/* Every method call but the wait of `sync`; a body fetched from the
 * server may take a while. */
#define CALL_TIMEOUT_MS (120 * 1000)

/* The global --config, NULL when not given. */
extern const char *opt_config_path;

/* ---- output ---- */

/* The reader of stdout is gone: die of SIGPIPE, quietly. */
_Noreturn void stdout_reader_gone(void);
/* Flushes stdout; a write error at any point makes it 1 (said on stderr). */
int finish_stdout(int status);
/* Writes all of buf to stdout (after what stdio holds).  0, or 1 after printing why. */
int write_out(const void *buf, size_t len);
/* A value as one field: TAB, CR and LF become spaces. */
void put_field(const char *s);
/* A JSON string; json_key starts a member ('{' before the first, ',' else). */
void json_str(const char *s);
void json_key(const char *key, bool first);
void json_key_str(const char *key, const char *value);
/* "YYYY-MM-DD HH:MM:SS" local ("never" for 0); "YYYY-MM-DDTHH:MM:SSZ" ("" for 0). */
void format_local_time(uint64_t t, char *buf, size_t size);
void format_utc_time(int64_t t, char *buf, size_t size);
int cmp_str(const void *a, const void *b);

/* ---- the store (read-only) ---- */

/* The configured database path (free()), or NULL after printing why. */
char *database_path(const char *config_path);
/*
 * The store to read (free()), or NULL after printing why: the one the
 * running cpm-syncd uses (Manager1.Database) when it runs for the same
 * configuration file (Manager1.ConfigFile), else database_path()'s.
 * With say, when the file names another store (used after a restart of
 * the daemon) or cannot be loaded, one line on stderr says which one is
 * read.  Never starts the daemon.
 */
char *database_for_reading(const char *config_path, bool say);
/* The store at db, read-only; NULL after printing why. */
struct cpmsync_store *open_store_readonly(const char *db);
/* Whether the store at db holds account: 0; 1 after "unknown account 'x';
 * the store 'db' holds: a, b"; -1 after a read error. */
int store_check_account(struct cpmsync_store *store, const char *db, const char *account);

/* ---- D-Bus ---- */

_Noreturn void dbus_oom(void);
const char *error_short_name(const char *name);
bool error_is_no_daemon(const DBusError *e);
/* Prints "cpmctl: [CONTEXT: ]Name: message" for a failed call and frees e. */
void report_error(DBusError *e, const char *context);
DBusMessage *new_call(const char *path, const char *iface, const char *method);
/* Sends m (and unrefs it) and waits: the reply, or NULL with *e set. */
DBusMessage *call(DBusConnection *conn, DBusMessage *m, int timeout_ms, DBusError *e);
bool reply_has_signature(DBusMessage *reply, const char *sig, const char *method);
/* The session bus with the daemon on it (activated when activate), or
 * NULL after printing why (nothing printed when quiet). */
DBusConnection *connect_daemon_quiet(bool activate, bool quiet);
DBusConnection *connect_daemon(bool activate);
int add_match(DBusConnection *conn, const char *rule);

/* Properties in an a{sv} at props. */
bool prop_find(const DBusMessageIter *props, const char *name, int type, DBusMessageIter *ret);
bool prop_has(const DBusMessageIter *props, const char *name);
const char *prop_str(const DBusMessageIter *props, const char *name, const char *def);
bool prop_u32(const DBusMessageIter *props, const char *name, uint32_t *ret);
bool prop_u64(const DBusMessageIter *props, const char *name, uint64_t *ret);
bool prop_i64(const DBusMessageIter *props, const char *name, int64_t *ret);
bool prop_bool(const DBusMessageIter *props, const char *name, bool *ret);

/* The object tree from one GetManagedObjects. */
struct object {
	const char *path;
	bool is_account, is_folder;
	DBusMessageIter account; /* a{sv} of Account1 */
	DBusMessageIter folder;	 /* a{sv} of Folder1 */
	const char *name;	 /* the Name property of either, or "" */
};

struct objects {
	DBusMessage *reply; /* owns every string and iterator below */
	struct object *v;
	size_t n;
};

void objects_free(struct objects *objs);
/* Returns 0, or 1 after printing why. */
int get_objects(DBusConnection *conn, struct objects *ret);
/* An account name as an object path element, escaped as the daemon
 * escapes it (cpm_path_escape(): [A-Za-z0-9] kept, every other byte, '_'
 * included, as _XX). Free with free(). */
char *escape_path_element(const char *name);
/* "unknown account 'x'; the accounts are: a, b". */
void report_unknown_account(struct objects *objs, const char *name);
/* The account named name, or NULL after report_unknown_account(). */
struct object *find_account(struct objects *objs, const char *name);
/* Account objects sorted bytewise by name; free() the array. */
struct object **sorted_accounts(struct objects *objs, size_t *ret_n);
/* Account.FindFolder: the folder's path (free()), or NULL after printing why. */
char *find_folder(DBusConnection *conn, const struct object *account, const char *account_name,
		  const char *folder);
/* ACCOUNT FOLDER to the folder's path (free()), or NULL after printing why. */
char *lookup_folder(DBusConnection *conn, const char *account_name, const char *folder);

/* One message summary (a{sv}) as `list` prints it; its Id in *ret_id. */
void print_summary(const DBusMessageIter *m, bool json, uint64_t *ret_id);
/*
 * Folder1.ListMessages of folder, page after page from after: each
 * summary (and its Id) to each, which returns false to stop.  0, or 1
 * with the error reported.
 */
typedef bool (*list_each_fn)(DBusMessageIter *m, uint64_t id, void *userdata);
int list_pages(DBusConnection *conn, const char *folder, uint64_t after, list_each_fn each,
	       void *userdata);

/* ---- arguments ---- */

/* --help (and --json where json is not NULL): -1 to go on (optind at the
 * first argument), else the exit status. */
int parse_json_option(int argc, char **argv, const char *cmd_usage, bool *json);
int parse_no_options(int argc, char **argv, const char *cmd_usage);
/* The number of arguments after the options, or "missing/too many" and the usage. */
bool nargs_ok(int n, int min, int max, const char *cmd, const char *cmd_usage);
/* A message id: decimal, no sign; "invalid message id" otherwise. */
bool parse_id(const char *s, uint64_t *ret);
/* The same for another kind of id: "invalid WHAT" (e.g. "operation id"). */
bool parse_id_of(const char *s, const char *what, uint64_t *ret);

/* ---- the commands of the other files ---- */

int cmd_folder(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_move(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_expunge(int argc, char **argv);
int cmd_metadata(int argc, char **argv);
int cmd_annotation(int argc, char **argv);
int cmd_acl(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_pending(int argc, char **argv);
int cmd_watch(int argc, char **argv);
