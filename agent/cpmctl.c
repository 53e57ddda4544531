/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmctl: the command-line client.
 *
 * `dump` (and `pending`, in cpmctl-edit.c) reads the store directly:
 * read-only (it never creates or changes the file), beside a running
 * daemon, in one consistent snapshot.  Every other command talks to the
 * running cpm-syncd over the session bus (org.cpmsync, contract
 * org.cpmsync.xml) with blocking libdbus calls.  This file has main(), the
 * helpers of cpmctl.h and the first commands; cpmctl-edit.c the commands
 * that change folders, messages, metadata and ACLs, search and pending;
 * cpmctl-watch.c `watch`.
 *
 * Exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage.
 * Output goes through stdout with every write checked: a dump cut short
 * by a full disk is an error, never a silent partial list.  A reader that
 * went away (`cpmctl dump | head`) ends cpmctl by SIGPIPE, quietly, as it
 * ends cat or grep: the shell sees 141, and a pipeline's status is head's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>
#include <cpmsync/utf8.h>

#include "config.h"
#include "cpmctl.h"
#include "cpmctl-cpm.h"
#include "util.h"

const char *opt_config_path; /* the global --config, NULL when not given */

static const char dump_usage[] = "Usage: cpmctl dump [--db PATH] [ACCOUNT [FOLDER]]\n";

/* The errno of a write to stdout that failed inside one long fprintf (the
 * help text is longer than stdio's buffer), for finish_stdout(). */
static int stdout_errno;

static void usage(FILE *f)
{
	int r;

	r = fprintf(
		f,
		"Usage: cpmctl [--config FILE] COMMAND [ARGS]\n"
		"\n"
		"  status [--json]                  one line per account:\n"
		"        NAME TAB STATE TAB PUSH TAB PENDING TAB LAST-SYNC TAB ONLINE TAB "
		"LAST-ERROR\n"
		"  sync [--timeout SECONDS] [ACCOUNT]\n"
		"        sync every folder now and wait until done (default timeout 600,\n"
		"        0: none);\n"
		"        a progress line on a terminal, then ACCOUNT: ok per account\n"
		"  folders [--json] ACCOUNT         NAME TAB MESSAGES TAB UNSEEN, sorted by name\n"
		"  list [--json] ACCOUNT FOLDER     ID TAB UID TAB FLAGS TAB DATE TAB FROM TAB "
		"SUBJECT\n"
		"        --json: one JSON object per line, keys as the D-Bus properties\n"
		"  fetch ACCOUNT FOLDER ID [SECTION]  the message (or part) on stdout\n"
		"  store ACCOUNT FOLDER FILE|- [FLAG...]  store a message, print its new id\n"
		"  flag ACCOUNT FOLDER ID +FLAG|-FLAG...  add and remove flags\n"
		"  online ACCOUNT [on|off]          set (or print) the account's Online switch\n"
		"  failed [--json] [ACCOUNT]        operations the server refused for good:\n"
		"        ACCOUNT TAB ID TAB OPERATION TAB FOLDER TAB MESSAGE-IDS TAB CODE TAB "
		"TRIES\n"
		"        TAB TIME TAB TEXT (MESSAGE-IDS comma-separated, TIME UTC)\n"
		"  retry ACCOUNT ID                 queue a failed operation again\n"
		"  discard ACCOUNT ID               drop it; the server's state wins locally\n"
		"  pending [--json] [--db PATH] [ACCOUNT]  changes queued for the server (read\n"
		"        from the store), columns as failed's; CODE TRIES TIME TEXT: the last\n"
		"        refusal of one that waits to be tried again\n"
		"  folder create|delete ACCOUNT NAME, folder rename ACCOUNT NAME NEW-NAME\n"
		"  copy ACCOUNT FOLDER ID... DESTINATION  prints ID TAB NEW-ID a message\n"
		"  move ACCOUNT FOLDER ID... DESTINATION  the same, moved\n"
		"  delete ACCOUNT FOLDER ID...      mark messages \\Deleted\n"
		"  expunge ACCOUNT FOLDER           remove the messages marked \\Deleted\n"
		"  metadata get [--json] ACCOUNT FOLDER ENTRY...  ENTRY TAB VALUE (FOLDER \"\":\n"
		"        the server's); metadata set ACCOUNT FOLDER ENTRY VALUE... (\"\" removes)\n"
		"  annotation get [--json] [--shared] ACCOUNT FOLDER ID ENTRY...  ENTRY TAB\n"
		"        VALUE of a message's annotations (ANNOTATE, RFC 5257; value.priv unless\n"
		"        --shared); annotation set [--shared] ACCOUNT FOLDER ID ENTRY VALUE...\n"
		"        (\"\" removes)\n"
		"  acl get [--json] ACCOUNT FOLDER  IDENTIFIER TAB RIGHTS; acl set ACCOUNT FOLDER\n"
		"        IDENTIFIER RIGHTS; acl delete ACCOUNT FOLDER IDENTIFIER;\n"
		"        acl myrights ACCOUNT FOLDER\n"
		"  search [--json] ACCOUNT FOLDER [KEY:VALUE...]  matches, as list prints them;\n"
		"        keys text from to subject since before (YYYY-MM-DD, @SECONDS) flag\n"
		"        not-flag conversation\n"
		"  watch [--json] [ACCOUNT]         the daemon's signals as they come, a line\n"
		"        each: ACCOUNT TAB FOLDER TAB SIGNAL TAB DETAILS, until interrupted\n"
		"  conversations [--json] ACCOUNT   newest first: CONVERSATION-ID TAB PEER or\n"
		"        group: PARTICIPANTS TAB UNSEEN/MESSAGES TAB TIME TAB LAST MESSAGE\n"
		"  chat [--json] [--limit N] ACCOUNT CONVERSATION-ID\n"
		"        its newest N messages (default 50), oldest first: TIME, direction\n"
		"        (\u2192 sent, \u2190 received), status, text\n"
		"  send ACCOUNT FILE|-              file a CPM object (StoreObject) per the\n"
		"        CPM folder model; prints FOLDER TAB ID\n"
		"  dump [--db PATH] [ACCOUNT [FOLDER]]\n"
		"        every stored message, one line each, sorted by account and folder\n"
		"        (bytewise) and uid:  ACCOUNT TAB FOLDER TAB UID TAB FLAGS TAB MESSAGE-ID\n"
		"        UID is 0 for a message not yet on the server; a TAB, CR or LF inside\n"
		"        a value is shown as a space.  An ACCOUNT or FOLDER not in the store\n"
		"        is an error; one that is there but holds no message prints nothing.\n"
		"        INBOX may be given in any case.\n"
		"\n"
		"  -c, --config FILE   configuration file (default "
		"$XDG_CONFIG_HOME/cpmsync/cpmsync.conf);\n"
		"                      dump and pending read its [general] database unless\n"
		"                      --db is given, or a running cpm-syncd of this file\n"
		"                      uses another (then its store, said on stderr);\n"
		"                      without a configuration file: "
		"$XDG_DATA_HOME/cpmsync/store.db\n"
		"  -h, --help          this text\n"
		"      --version       print the version\n"
		"\n"
		"dump and pending read the store directly (the daemon need not run); the others\n"
		"talk to the running cpm-syncd over the session bus.  status never starts\n"
		"the daemon; the others start it by D-Bus activation when the bus can.\n"
		"Without a daemon, folders and list read the store (and say so on stderr).\n"
		"Exit status: 0 done, 1 failed, 2 bad usage.\n");
	if (r < 0 && f == stdout)
		stdout_errno = errno;
}

/*
 * The reader of stdout is gone: die of SIGPIPE, which we ignore (and
 * libdbus too) so that a D-Bus socket's EPIPE is an error code instead.
 */
_Noreturn void stdout_reader_gone(void)
{
	signal(SIGPIPE, SIG_DFL);
	raise(SIGPIPE);
	_exit(128 + SIGPIPE);
}

/* Whether stdout is a pipe without a reader: POLLERR on its write end. */
static bool stdout_pipe_closed(void)
{
	struct pollfd p = { .fd = STDOUT_FILENO, .events = 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

/*
 * Flushes stdout and reports a write error that happened at any point
 * (stdio keeps the error flag).  Returns the exit status to use.
 */
int finish_stdout(int status)
{
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* errno may be stale when an earlier write set the error flag. */
		int err = errno ? errno : stdout_errno;

		if (err == EPIPE || stdout_pipe_closed())
			stdout_reader_gone();
		fprintf(stderr, "cpmctl: cannot write the output: %s\n",
			err ? strerror(err) : "write error");
		return 1;
	}
	return status;
}

/*
 * The database: the configuration's [general] database.  Without --config
 * a missing default configuration file is no error: the defaults apply
 * (the parser's own, $XDG_DATA_HOME/cpmsync/store.db, so that cpmctl and
 * the daemon cannot disagree).  A configuration file that exists but is
 * invalid is an error: it would be for the daemon too.
 * Returns a string to free(), or NULL after printing why.
 */
char *database_path(const char *config_path)
{
	_cleanup_free_ char *def = NULL;
	struct config *cfg = NULL;
	char *err = NULL, *path;
	int r;

	if (!config_path) {
		def = config_default_path();
		if (def && access(def, F_OK) == 0)
			config_path = def;
	}
	if (config_path)
		r = config_load(config_path, &cfg, &err);
	else
		r = config_parse_buffer("(built-in defaults)", "", 0, &cfg, &err);
	if (r < 0) {
		if (err)
			fprintf(stderr, "cpmctl: %s\n", err);
		else
			fprintf(stderr, "cpmctl: %s: %s\n",
				config_path ? config_path : "configuration", strerror(-r));
		free(err);
		return NULL;
	}
	path = xstrdup(cfg->database);
	config_free(cfg);
	return path;
}

struct dump_out {
	int error; /* errno of a failed write, or 0 */
};

static int write_line(const char *line, size_t len, void *userdata)
{
	struct dump_out *out = userdata;

	errno = 0;
	if (fwrite(line, 1, len, stdout) != len) {
		if (errno == EPIPE)
			stdout_reader_gone();
		out->error = errno ? errno : EIO;
		return -out->error;
	}
	return 0;
}

/* The store's message without a leading "PATH: " (we name the path ourselves). */
static const char *without_path(const char *msg, const char *path)
{
	size_t n = strlen(path);

	if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

/* The store at db, read-only; NULL after printing why. */
struct cpmsync_store *open_store_readonly(const char *db)
{
	struct cpmsync_store *store = NULL;
	char *err = NULL;
	int r;

	/* SQLite's read-only open would only say "unable to open database
	 * file": ask the file system first for a precise reason. */
	if (access(db, R_OK) < 0) {
		fprintf(stderr, "cpmctl: cannot open database '%s': %s\n", db, strerror(errno));
		return NULL;
	}
	r = cpmsync_store_open(db, CPMSYNC_STORE_READONLY, &store, &err);
	if (r < 0) {
		fprintf(stderr, "cpmctl: cannot open database '%s': %s\n", db,
			err ? without_path(err, db) : cpmsync_strerror(r));
		free(err);
		return NULL;
	}
	return store;
}

struct local_accounts {
	const char *want;
	bool found;
	char *names; /* "a, b" */
	size_t n;
};

static int local_account(const char *account, void *userdata)
{
	struct local_accounts *la = userdata;
	char *names =
		xasprintf("%s%s%s", la->names ? la->names : "", la->names ? ", " : "", account);

	free(la->names);
	la->names = names;
	la->n++;
	if (str_eq(account, la->want))
		la->found = true;
	return 0;
}

int store_check_account(struct cpmsync_store *store, const char *db, const char *account)
{
	struct local_accounts la = { .want = account };
	int r;

	r = cpmsync_store_foreach_account(store, local_account, &la);
	if (r < 0)
		fprintf(stderr, "cpmctl: reading '%s': %s\n", db, cpmsync_store_error(store));
	else if (la.found)
		r = 0;
	else if (la.n == 0)
		fprintf(stderr, "cpmctl: unknown account '%s'; the store '%s' holds none\n",
			account, db);
	else
		fprintf(stderr, "cpmctl: unknown account '%s'; the store '%s' holds: %s\n", account,
			db, la.names);
	free(la.names);
	return r < 0 ? -1 : la.found ? 0 : 1;
}

static int cmd_dump(int argc, char **argv, const char *config_path)
{
	enum { OPT_DB = 256 };
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *db = NULL;
	struct cpmsync_store *store = NULL;
	struct dump_out out = { 0 };
	const char *account = NULL, *folder = NULL, *db_opt = NULL;
	int ch, r;

	optind = 0; /* glibc: start afresh on the new argv */
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_DB:
			db_opt = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			fputs(dump_usage, stdout);
			return finish_stdout(0);
		default:
			fputs(dump_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 2) {
		fprintf(stderr, "cpmctl dump: unexpected argument '%s'\n", argv[optind + 2]);
		fputs(dump_usage, stderr);
		return EXIT_USAGE;
	}
	if (optind < argc)
		account = argv[optind];
	if (optind + 1 < argc)
		folder = argv[optind + 1];
	if (db_opt && !*db_opt) {
		fprintf(stderr, "cpmctl dump: --db needs a path\n");
		return EXIT_USAGE;
	}

	db = db_opt ? xstrdup(db_opt) : database_for_reading(config_path, true);
	if (!db)
		return 1;
	store = open_store_readonly(db);
	if (!store)
		return 1;

	r = cpmsync_store_dump(store, account, folder, write_line, &out);
	if (out.error) {
		fprintf(stderr, "cpmctl: cannot write the output: %s\n", strerror(out.error));
		r = 1;
	} else if (r == -CPMSYNC_E_NOT_FOUND) {
		/* Nothing was printed: an unknown account (named with the
		 * store's accounts, as the other commands do), or "account 'x'
		 * has no folder 'y'". */
		_cleanup_free_ char *why = xstrdup(cpmsync_store_error(store));

		if (!account || store_check_account(store, db, account) == 0)
			fprintf(stderr, "cpmctl: %s in '%s'\n", why, db);
		r = 1;
	} else if (r < 0) {
		const char *msg = cpmsync_store_error(store);

		fprintf(stderr, "cpmctl: reading '%s': %s\n", db, *msg ? msg : cpmsync_strerror(r));
		r = 1;
	}
	cpmsync_store_close(store);
	return finish_stdout(r);
}

/*
 * ---------------------------------------------------------------------
 * The D-Bus commands.  Blocking calls on the shared session-bus
 * connection; accounts and folders are found by their Name property in
 * one ObjectManager.GetManagedObjects snapshot, so that the escaping of
 * object paths never matters.
 * ---------------------------------------------------------------------
 */

#define LIST_PAGE	     1000u
#define SYNC_TIMEOUT_DEFAULT 600u
/* How long `sync` gives the connection attempt that its Sync call starts at
 * once when the account is between failed attempts ("connecting" with a
 * LastError): the daemon says nothing when the attempt fails the same way. */
#define SYNC_CONNECT_GRACE_MS 5000u

static const char not_running_msg[] =
	"cpmctl: the cpm-syncd daemon is not running (no owner of " BUS_NAME
	" on the session bus)\n";

static const char status_usage[] = "Usage: cpmctl status [--json]\n";
static const char sync_usage[] = "Usage: cpmctl sync [--timeout SECONDS] [ACCOUNT]\n";
static const char folders_usage[] = "Usage: cpmctl folders [--json] ACCOUNT\n";
static const char list_usage[] = "Usage: cpmctl list [--json] ACCOUNT FOLDER\n";
static const char fetch_usage[] = "Usage: cpmctl fetch ACCOUNT FOLDER ID [SECTION]\n";
static const char store_usage[] = "Usage: cpmctl store ACCOUNT FOLDER FILE|- [FLAG...]\n";
static const char flag_usage[] = "Usage: cpmctl flag ACCOUNT FOLDER ID +FLAG|-FLAG...\n";
static const char online_usage[] = "Usage: cpmctl online ACCOUNT [on|off]\n";

_Noreturn void dbus_oom(void)
{
	fputs("cpmctl: out of memory\n", stderr);
	abort();
}

const char *error_short_name(const char *name)
{
	const char *dot = name ? strrchr(name, '.') : NULL;

	return dot ? dot + 1 : (name ? name : "Failed");
}

/* The daemon went away (or never was there) while we talked to it. */
bool error_is_no_daemon(const DBusError *e)
{
	return dbus_error_has_name(e, DBUS_ERROR_SERVICE_UNKNOWN) ||
	       dbus_error_has_name(e, DBUS_ERROR_NAME_HAS_NO_OWNER);
}

/* Prints "cpmctl: [CONTEXT: ]Name: message" for a failed call and frees e. */
void report_error(DBusError *e, const char *context)
{
	if (error_is_no_daemon(e)) {
		fputs(not_running_msg, stderr);
	} else if (dbus_error_has_name(e, DBUS_ERROR_DISCONNECTED)) {
		fprintf(stderr, "cpmctl: lost the connection to the session bus\n");
	} else {
		fprintf(stderr, "cpmctl: %s%s%s: %s\n", context ? context : "", context ? ": " : "",
			error_short_name(e->name),
			e->message && *e->message ? e->message : "(no message)");
	}
	dbus_error_free(e);
}

DBusMessage *new_call(const char *path, const char *iface, const char *method)
{
	DBusMessage *m = dbus_message_new_method_call(BUS_NAME, path, iface, method);

	if (!m)
		dbus_oom();
	return m;
}

/*
 * Sends m (and unrefs it) and waits for the reply.  Returns the reply,
 * or NULL with *e set.
 */
DBusMessage *call(DBusConnection *conn, DBusMessage *m, int timeout_ms, DBusError *e)
{
	DBusMessage *reply;

	reply = dbus_connection_send_with_reply_and_block(conn, m, timeout_ms, e);
	dbus_message_unref(m);
	return reply;
}

/* Checks a reply's signature, printing why when it is not the expected one. */
bool reply_has_signature(DBusMessage *reply, const char *sig, const char *method)
{
	if (dbus_message_has_signature(reply, sig))
		return true;
	fprintf(stderr, "cpmctl: %s: unexpected reply signature '%s' (expected '%s')\n", method,
		dbus_message_get_signature(reply), sig);
	return false;
}

/*
 * Connects to the session bus and makes sure that the daemon runs.  With
 * activate, a daemon that does not run is started by D-Bus activation
 * when the bus knows how (org.cpmsync.service); without, its absence is
 * an error.  Returns the connection (unref it), or NULL after printing why
 * (quiet: without, for a caller that reads the store instead).
 */
static void say_other_config(void);

DBusConnection *connect_daemon_quiet(bool activate, bool quiet)
{
	DBusConnection *conn;
	DBusError e;
	dbus_uint32_t started;

	dbus_error_init(&e);
	conn = dbus_bus_get(DBUS_BUS_SESSION, &e);
	if (!conn) {
		if (!quiet)
			fprintf(stderr, "cpmctl: cannot connect to the session bus: %s\n",
				e.message && *e.message ? e.message : error_short_name(e.name));
		dbus_error_free(&e);
		return NULL;
	}
	/* A shared connection exits the process when the bus goes away:
	 * we would rather say so. */
	dbus_connection_set_exit_on_disconnect(conn, FALSE);

	if (dbus_bus_name_has_owner(conn, BUS_NAME, &e)) {
		say_other_config();
		return conn;
	}
	if (dbus_error_is_set(&e)) {
		if (!quiet)
			report_error(&e, "NameHasOwner");
		dbus_error_free(&e);
		dbus_connection_unref(conn);
		return NULL;
	}
	if (!activate) {
		if (!quiet)
			fputs(not_running_msg, stderr);
		dbus_connection_unref(conn);
		return NULL;
	}
	if (dbus_bus_start_service_by_name(conn, BUS_NAME, 0, &started, &e)) {
		say_other_config();
		return conn;
	}
	if (quiet)
		dbus_error_free(&e);
	else if (dbus_error_has_name(&e, DBUS_ERROR_SERVICE_UNKNOWN)) {
		fputs(not_running_msg, stderr);
		dbus_error_free(&e);
	} else {
		report_error(&e, "cannot start the cpm-syncd daemon");
	}
	dbus_connection_unref(conn);
	return NULL;
}

DBusConnection *connect_daemon(bool activate)
{
	return connect_daemon_quiet(activate, false);
}

/*
 * Manager1's properties (GetAll): the reply, with *it at its a{sv}, or
 * NULL when the daemon does not answer so (nothing printed).
 */
static DBusMessage *manager_properties(DBusConnection *conn, DBusMessageIter *it)
{
	const char *iface = IFACE_MANAGER;
	DBusMessage *m, *reply;
	DBusError e;

	dbus_error_init(&e);
	m = new_call(ROOT_PATH, IFACE_PROPERTIES, "GetAll");
	if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID))
		dbus_oom();
	reply = call(conn, m, 10 * 1000, &e);
	dbus_error_free(&e);
	if (reply &&
	    (!dbus_message_has_signature(reply, "a{sv}") || !dbus_message_iter_init(reply, it))) {
		dbus_message_unref(reply);
		reply = NULL;
	}
	return reply;
}

/*
 * The running daemon's Manager1.ConfigFile and .Database (free() both),
 * or -1 when no daemon runs, it does not answer, or it has neither
 * (an older cpm-syncd): nothing printed.
 */
static int daemon_files(char **ret_config, char **ret_database)
{
	DBusConnection *conn = connect_daemon_quiet(false, true);
	const char *conf, *db;
	DBusMessageIter it;
	DBusMessage *reply;
	int r = -1;

	if (!conn)
		return -1;
	reply = manager_properties(conn, &it);
	if (reply) {
		conf = prop_str(&it, "ConfigFile", "");
		db = prop_str(&it, "Database", "");
		if (*conf && *db) {
			*ret_config = xstrdup(conf);
			*ret_database = xstrdup(db);
			r = 0;
		}
	}
	if (reply)
		dbus_message_unref(reply);
	dbus_connection_unref(conn);
	return r;
}

/* Whether paths a and b name the same file (as strings when one does
 * not exist). */
static bool same_path(const char *a, const char *b)
{
	_cleanup_free_ char *ra = realpath(a, NULL), *rb = realpath(b, NULL);

	return ra && rb ? str_eq(ra, rb) : str_eq(a, b);
}

/*
 * A D-Bus command goes to the running daemon, whatever --config says
 * (cpmctl(1)): with --config naming another file, the answer would be
 * another configuration's, unsaid.  Said on stderr, once per command.
 */
static void say_other_config(void)
{
	_cleanup_free_ char *daemon_conf = NULL, *daemon_db = NULL;
	static bool asked; /* also stops daemon_files()' own connect */

	if (asked || !opt_config_path)
		return;
	asked = true;
	if (daemon_files(&daemon_conf, &daemon_db) < 0 || same_path(opt_config_path, daemon_conf))
		return;
	fprintf(stderr,
		"cpmctl: the running cpm-syncd reads '%s', not '%s': this command goes to it "
		"(--config is for dump and pending)\n",
		daemon_conf, opt_config_path);
}

char *database_for_reading(const char *config_path, bool say)
{
	_cleanup_free_ char *def = NULL, *daemon_conf = NULL, *daemon_db = NULL;
	const char *conf = config_path;
	struct config *cfg = NULL;
	char *err = NULL;

	if (!conf) {
		def = config_default_path();
		conf = def;
	}
	/* Only a daemon of this very file: another file (--config) may
	 * name another store on purpose. */
	if (!conf || access(conf, F_OK) < 0 || daemon_files(&daemon_conf, &daemon_db) < 0 ||
	    !same_path(conf, daemon_conf))
		return database_path(config_path);
	if (config_load(conf, &cfg, &err) < 0) {
		if (say)
			fprintf(stderr,
				"cpmctl: reading '%s', the store the running cpm-syncd uses (%s)\n",
				daemon_db, err ? err : "the configuration cannot be loaded");
		free(err);
	} else {
		if (say && !same_path(cfg->database, daemon_db))
			fprintf(stderr,
				"cpmctl: reading '%s', the store the running cpm-syncd uses; %s "
				"names"
				" '%s', which it uses after a restart\n",
				daemon_db, conf, cfg->database);
		config_free(cfg);
	}
	return TAKE_PTR(daemon_db);
}

/* ---- properties in a{sv} dicts ---- */

/*
 * Finds name in props (an iterator at an a{sv}) and points *ret at the
 * variant's content when it has the given type.
 */
bool prop_find(const DBusMessageIter *props, const char *name, int type, DBusMessageIter *ret)
{
	DBusMessageIter dict = *props, it, entry;
	const char *key;

	if (dbus_message_iter_get_arg_type(&dict) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(&dict) != DBUS_TYPE_DICT_ENTRY)
		return false;
	dbus_message_iter_recurse(&dict, &it);
	for (; dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&it)) {
		dbus_message_iter_recurse(&it, &entry);
		if (dbus_message_iter_get_arg_type(&entry) != DBUS_TYPE_STRING)
			continue;
		dbus_message_iter_get_basic(&entry, &key);
		if (!str_eq(key, name))
			continue;
		if (!dbus_message_iter_next(&entry) ||
		    dbus_message_iter_get_arg_type(&entry) != DBUS_TYPE_VARIANT)
			return false;
		dbus_message_iter_recurse(&entry, ret);
		return dbus_message_iter_get_arg_type(ret) == type;
	}
	return false;
}

bool prop_has(const DBusMessageIter *props, const char *name)
{
	DBusMessageIter dict = *props, it, entry;
	const char *key;

	if (dbus_message_iter_get_arg_type(&dict) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(&dict) != DBUS_TYPE_DICT_ENTRY)
		return false;
	dbus_message_iter_recurse(&dict, &it);
	for (; dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&it)) {
		dbus_message_iter_recurse(&it, &entry);
		if (dbus_message_iter_get_arg_type(&entry) != DBUS_TYPE_STRING)
			continue;
		dbus_message_iter_get_basic(&entry, &key);
		if (str_eq(key, name))
			return true;
	}
	return false;
}

/* A string (s) or object path (o) property, or def. */
const char *prop_str(const DBusMessageIter *props, const char *name, const char *def)
{
	DBusMessageIter v;
	const char *s;

	if (!prop_find(props, name, DBUS_TYPE_STRING, &v) &&
	    !prop_find(props, name, DBUS_TYPE_OBJECT_PATH, &v))
		return def;
	dbus_message_iter_get_basic(&v, &s);
	return s;
}

bool prop_u32(const DBusMessageIter *props, const char *name, uint32_t *ret)
{
	DBusMessageIter v;
	dbus_uint32_t u;

	if (!prop_find(props, name, DBUS_TYPE_UINT32, &v))
		return false;
	dbus_message_iter_get_basic(&v, &u);
	*ret = u;
	return true;
}

bool prop_u64(const DBusMessageIter *props, const char *name, uint64_t *ret)
{
	DBusMessageIter v;
	dbus_uint64_t u;

	if (!prop_find(props, name, DBUS_TYPE_UINT64, &v))
		return false;
	dbus_message_iter_get_basic(&v, &u);
	*ret = u;
	return true;
}

bool prop_i64(const DBusMessageIter *props, const char *name, int64_t *ret)
{
	DBusMessageIter v;
	dbus_int64_t x;

	if (!prop_find(props, name, DBUS_TYPE_INT64, &v))
		return false;
	dbus_message_iter_get_basic(&v, &x);
	*ret = x;
	return true;
}

bool prop_bool(const DBusMessageIter *props, const char *name, bool *ret)
{
	DBusMessageIter v;
	dbus_bool_t b;

	if (!prop_find(props, name, DBUS_TYPE_BOOLEAN, &v))
		return false;
	dbus_message_iter_get_basic(&v, &b);
	*ret = b;
	return true;
}

/* ---- output helpers ---- */

/* A value as one field: TAB, CR and LF become spaces. */
/*
 * A field of a tab-separated line for a terminal: each character that
 * would act on the terminal or change how the line reads (controls, tab
 * and newline included, and the bidirectional formatting characters, by
 * cpmsync_text_unsafe_cp()'s one rule) printed as a space.  An
 * U+202E in a subject reversed the columns after it.
 */
void put_field(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		uint32_t cp;
		size_t i = cpmsync_text_find_unsafe(s, n, &cp), k;

		fwrite(s, 1, i, stdout);
		if (i == n)
			break;
		/* D-Bus strings are UTF-8: cp is a character, k its length. */
		k = cpmsync_utf8_decode(s + i, n - i, &cp);
		putchar(' ');
		s += i + (k ? k : 1);
		n -= i + (k ? k : 1);
	}
}

/* ---- --json: one JSON object per line, keys as the D-Bus properties ---- */

void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* Starts a member: '{' before the first, ',' before the others. */
void json_key(const char *key, bool first)
{
	printf("%s\"%s\":", first ? "{" : ",", key);
}

void json_key_str(const char *key, const char *value)
{
	json_key(key, false);
	json_str(value);
}

/* "YYYY-MM-DD HH:MM:SS" in local time, or "never" for 0. */
void format_local_time(uint64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || !localtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, size, "%s", t ? "?" : "never");
}

/* "YYYY-MM-DDTHH:MM:SSZ", or "" for 0 (no date). */
void format_utc_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	buf[0] = '\0';
	if (t != 0 && gmtime_r(&tt, &tm))
		strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- the object tree ---- */

void objects_free(struct objects *objs)
{
	if (objs->reply)
		dbus_message_unref(objs->reply);
	free(objs->v);
	*objs = (struct objects){ 0 };
}

static int cmp_object_name(const void *a, const void *b)
{
	const struct object *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* ObjectManager.GetManagedObjects on /org/cpmsync.  Returns 0, or 1 after printing why. */
int get_objects(DBusConnection *conn, struct objects *ret)
{
	struct objects objs = { 0 };
	DBusMessageIter top, it, entry, ifaces, iface;
	const char *path, *name;
	DBusError e;

	dbus_error_init(&e);
	objs.reply = call(conn, new_call(ROOT_PATH, IFACE_OBJECT_MANAGER, "GetManagedObjects"),
			  CALL_TIMEOUT_MS, &e);
	if (!objs.reply) {
		report_error(&e, "GetManagedObjects");
		return 1;
	}
	if (!reply_has_signature(objs.reply, "a{oa{sa{sv}}}", "GetManagedObjects")) {
		objects_free(&objs);
		return 1;
	}
	dbus_message_iter_init(objs.reply, &top);
	dbus_message_iter_recurse(&top, &it);
	for (; dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&it)) {
		struct object o = { 0 };

		dbus_message_iter_recurse(&it, &entry);
		dbus_message_iter_get_basic(&entry, &path);
		o.path = path;
		dbus_message_iter_next(&entry);
		dbus_message_iter_recurse(&entry, &ifaces);
		for (; dbus_message_iter_get_arg_type(&ifaces) == DBUS_TYPE_DICT_ENTRY;
		     dbus_message_iter_next(&ifaces)) {
			dbus_message_iter_recurse(&ifaces, &iface);
			dbus_message_iter_get_basic(&iface, &name);
			dbus_message_iter_next(&iface);
			if (str_eq(name, IFACE_ACCOUNT)) {
				o.is_account = true;
				o.account = iface;
			} else if (str_eq(name, IFACE_FOLDER)) {
				o.is_folder = true;
				o.folder = iface;
			}
		}
		if (!o.is_account && !o.is_folder)
			continue;
		o.name = prop_str(o.is_account ? &o.account : &o.folder, "Name", "");
		objs.v = xreallocarray(objs.v, objs.n + 1, sizeof(*objs.v));
		objs.v[objs.n++] = o;
	}
	*ret = objs;
	return 0;
}

/* The account's path element as the daemon makes it (cpm_path_escape():
 * [A-Za-z0-9] kept, every other byte, '_' included, as _XX). */
char *escape_path_element(const char *name)
{
	static const char hex[] = "0123456789abcdef";
	char *out = xmalloc(strlen(name) * 3 + 1), *p = out;

	for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9')) {
			*p++ = (char)*s;
		} else {
			*p++ = '_';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	}
	*p = '\0';
	return out;
}

/* "unknown account 'x'; the accounts are: a, b" (or that there is none). */
void report_unknown_account(struct objects *objs, const char *name)
{
	_cleanup_free_ struct object **v = NULL;
	size_t n;

	v = sorted_accounts(objs, &n);
	fprintf(stderr, "cpmctl: unknown account '%s'; ", name);
	if (n == 0)
		fputs("no account is configured", stderr);
	else
		fputs(n == 1 ? "the account is: " : "the accounts are: ", stderr);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", v[i]->name);
	fputc('\n', stderr);
}

/* The account object named name (by its Name property; by its path when
 * the daemon gives no Name), or NULL after printing "unknown account". */
struct object *find_account(struct objects *objs, const char *name)
{
	_cleanup_free_ char *esc = escape_path_element(name);
	_cleanup_free_ char *path = xasprintf(ROOT_PATH "/%s", esc);

	for (size_t i = 0; i < objs->n; i++)
		if (objs->v[i].is_account && str_eq(objs->v[i].name, name))
			return &objs->v[i];
	for (size_t i = 0; i < objs->n; i++)
		if (objs->v[i].is_account && !*objs->v[i].name && str_eq(objs->v[i].path, path))
			return &objs->v[i];
	report_unknown_account(objs, name);
	return NULL;
}

/* Account objects sorted bytewise by name; free() the array. */
struct object **sorted_accounts(struct objects *objs, size_t *ret_n)
{
	struct object **v = xcalloc(objs->n + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < objs->n; i++)
		if (objs->v[i].is_account)
			v[n++] = &objs->v[i];
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_object_name);
	*ret_n = n;
	return v;
}

/*
 * Account.FindFolder.  Returns the folder's object path (free()), or NULL
 * after printing why.
 */
char *find_folder(DBusConnection *conn, const struct object *account, const char *account_name,
		  const char *folder)
{
	DBusMessage *m, *reply;
	const char *path;
	char *ret;
	DBusError e;

	dbus_error_init(&e);
	m = new_call(account->path, IFACE_ACCOUNT, "FindFolder");
	if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &folder, DBUS_TYPE_INVALID))
		dbus_oom();
	reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply) {
		if (dbus_error_has_name(&e, "org.cpmsync.Error.NotFound")) {
			fprintf(stderr, "cpmctl: account '%s' has no folder '%s'\n", account_name,
				folder);
			dbus_error_free(&e);
		} else {
			report_error(&e, "FindFolder");
		}
		return NULL;
	}
	if (!dbus_message_get_args(reply, &e, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_INVALID)) {
		report_error(&e, "FindFolder");
		dbus_message_unref(reply);
		return NULL;
	}
	ret = xstrdup(path);
	dbus_message_unref(reply);
	return ret;
}

/*
 * Options of a D-Bus command: only --help (and "--"), and --json where json
 * is not NULL (the listing commands).  Returns -1 to go on (optind at the
 * first argument), else the exit status.
 */
int parse_json_option(int argc, char **argv, const char *cmd_usage, bool *json)
{
	enum { OPT_JSON = 256 };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "+h", json ? longopts : longopts + 1, NULL)) != -1) {
		switch (ch) {
		case OPT_JSON:
			*json = true;
			break;
		case 'h':
			fputs(cmd_usage, stdout);
			return finish_stdout(0);
		default:
			fputs(cmd_usage, stderr);
			return EXIT_USAGE;
		}
	}
	return -1;
}

int parse_no_options(int argc, char **argv, const char *cmd_usage)
{
	return parse_json_option(argc, argv, cmd_usage, NULL);
}

/* Checks the number of arguments after the options. */
bool nargs_ok(int n, int min, int max, const char *cmd, const char *cmd_usage)
{
	if (n < min)
		fprintf(stderr, "cpmctl %s: missing argument\n", cmd);
	else if (max >= 0 && n > max)
		fprintf(stderr, "cpmctl %s: too many arguments\n", cmd);
	else
		return true;
	fputs(cmd_usage, stderr);
	return false;
}

/* A message id: decimal, no sign. */
bool parse_id(const char *s, uint64_t *ret)
{
	return parse_id_of(s, "message id", ret);
}

bool parse_id_of(const char *s, const char *what, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		goto bad;
	*ret = v;
	return true;
bad:
	fprintf(stderr, "cpmctl: invalid %s '%s'\n", what, s);
	return false;
}

/* ---- status ---- */

/*
 * After status's lines, on stderr: why the daemon refused its last
 * configuration reload (Manager1.ConfigError) and the warnings of the file
 * in force (ConfigWarnings: an unknown key is a typo more often than not).
 * Nothing when the daemon has neither, or does not answer.
 */
static void print_config_notes(DBusConnection *conn)
{
	DBusMessageIter it, v, a;
	const char *err, *w;
	DBusMessage *reply = manager_properties(conn, &it);

	if (!reply)
		return;
	err = prop_str(&it, "ConfigError", "");
	if (*err)
		fprintf(stderr, "cpmctl: configuration: %s\n", err);
	if (prop_find(&it, "ConfigWarnings", DBUS_TYPE_ARRAY, &v) &&
	    dbus_message_iter_get_element_type(&v) == DBUS_TYPE_STRING) {
		dbus_message_iter_recurse(&v, &a);
		for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING;
		     dbus_message_iter_next(&a)) {
			dbus_message_iter_get_basic(&a, &w);
			fprintf(stderr, "cpmctl: configuration warning: %s\n", w);
		}
	}
	dbus_message_unref(reply);
}

static int cmd_status(int argc, char **argv)
{
	struct objects objs = { 0 };
	_cleanup_free_ struct object **acc = NULL;
	DBusConnection *conn;
	bool json = false;
	size_t n;
	int r;

	r = parse_json_option(argc, argv, status_usage, &json);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 0, 0, "status", status_usage))
		return EXIT_USAGE;
	conn = connect_daemon(false);
	if (!conn)
		return 1;
	r = get_objects(conn, &objs);
	if (r)
		goto out;
	acc = sorted_accounts(&objs, &n);
	for (size_t i = 0; i < n; i++) {
		const DBusMessageIter *p = &acc[i]->account;
		uint32_t pending = 0;
		uint64_t last_sync = 0;
		bool online = false;
		char when[64];

		prop_u32(p, "PendingOperations", &pending);
		prop_u64(p, "LastSync", &last_sync);
		prop_bool(p, "Online", &online);
		if (json) {
			json_key("Name", true);
			json_str(acc[i]->name);
			json_key_str("State", prop_str(p, "State", "?"));
			json_key_str("PushState", prop_str(p, "PushState", "?"));
			printf(",\"PendingOperations\":%" PRIu32 ",\"LastSync\":%" PRIu64
			       ",\"Online\":%s",
			       pending, last_sync, online ? "true" : "false");
			json_key_str("LastError", prop_str(p, "LastError", ""));
			puts("}");
			continue;
		}
		format_local_time(last_sync, when, sizeof(when));
		put_field(acc[i]->name);
		putchar('\t');
		put_field(prop_str(p, "State", "?"));
		putchar('\t');
		put_field(prop_str(p, "PushState", "?"));
		printf("\t%" PRIu32 "\t%s\t%s\t", pending, when, online ? "on" : "off");
		put_field(prop_str(p, "LastError", ""));
		putchar('\n');
	}
	print_config_notes(conn);
out:
	objects_free(&objs);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- folders ---- */

/* Without a daemon (below, after list). */
static int local_folders(const char *account, bool json);
static int local_list(const char *account, const char *folder, bool json);

static void print_folder_row(const char *name, uint32_t messages, uint32_t unseen, bool json)
{
	if (json) {
		json_key("Name", true);
		json_str(name);
		printf(",\"Messages\":%" PRIu32 ",\"Unseen\":%" PRIu32 "}\n", messages, unseen);
		return;
	}
	put_field(name);
	printf("\t%" PRIu32 "\t%" PRIu32 "\n", messages, unseen);
}

static int cmd_folders(int argc, char **argv)
{
	struct objects objs = { 0 };
	_cleanup_free_ struct object **v = NULL;
	struct object *account;
	DBusConnection *conn;
	bool json = false;
	size_t n = 0, plen;
	int r;

	r = parse_json_option(argc, argv, folders_usage, &json);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 1, 1, "folders", folders_usage))
		return EXIT_USAGE;
	conn = connect_daemon_quiet(true, true);
	if (!conn)
		return local_folders(argv[optind], json);
	r = get_objects(conn, &objs);
	if (r)
		goto out;
	account = find_account(&objs, argv[optind]);
	if (!account) {
		r = 1;
		goto out;
	}
	plen = strlen(account->path);
	v = xcalloc(objs.n + 1, sizeof(*v));
	for (size_t i = 0; i < objs.n; i++) {
		struct object *o = &objs.v[i];
		const char *owner;

		if (!o->is_folder)
			continue;
		owner = prop_str(&o->folder, "Account", NULL);
		if (owner ? str_eq(owner, account->path)
			  : strncmp(o->path, account->path, plen) == 0 && o->path[plen] == '/')
			v[n++] = o;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_object_name);
	for (size_t i = 0; i < n; i++) {
		uint32_t messages = 0, unseen = 0;

		prop_u32(&v[i]->folder, "Messages", &messages);
		prop_u32(&v[i]->folder, "Unseen", &unseen);
		print_folder_row(v[i]->name, messages, unseen, json);
	}
out:
	objects_free(&objs);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/*
 * The folder's object path for ACCOUNT FOLDER (free()), or NULL after
 * printing why.
 */
char *lookup_folder(DBusConnection *conn, const char *account_name, const char *folder)
{
	struct objects objs = { 0 };
	struct object *account;
	char *path = NULL;

	if (get_objects(conn, &objs))
		return NULL;
	account = find_account(&objs, account_name);
	if (account)
		path = find_folder(conn, account, account_name, folder);
	objects_free(&objs);
	return path;
}

/* ---- list ---- */

/* One line of `list` (flags sorted), from the daemon or from the store. */
struct message_row {
	uint64_t id;
	uint32_t uid;
	const char **flags;
	size_t n_flags;
	int64_t date;
	const char *from, *subject, *message_id;
};

static void print_message_row(const struct message_row *m, bool json)
{
	char when[64];

	if (json) {
		printf("{\"Id\":%" PRIu64 ",\"Uid\":%" PRIu32 ",\"Flags\":[", m->id, m->uid);
		for (size_t i = 0; i < m->n_flags; i++) {
			if (i)
				putchar(',');
			json_str(m->flags[i]);
		}
		printf("],\"Date\":%" PRId64, m->date);
		json_key_str("From", m->from);
		json_key_str("Subject", m->subject);
		json_key_str("MessageId", m->message_id);
		puts("}");
		return;
	}
	format_utc_time(m->date, when, sizeof(when));
	printf("%" PRIu64 "\t%" PRIu32 "\t", m->id, m->uid);
	for (size_t i = 0; i < m->n_flags; i++) {
		if (i)
			putchar(' ');
		put_field(m->flags[i]);
	}
	printf("\t%s\t", when);
	put_field(m->from);
	putchar('\t');
	put_field(m->subject);
	putchar('\n');
}

/* One summary line; returns its Id in *ret_id. */
void print_summary(const DBusMessageIter *m, bool json, uint64_t *ret_id)
{
	struct message_row row = {
		.from = prop_str(m, "From", ""),
		.subject = prop_str(m, "Subject", ""),
		.message_id = prop_str(m, "MessageId", ""),
	};
	DBusMessageIter flags, it;

	prop_u64(m, "Id", &row.id);
	prop_u32(m, "Uid", &row.uid);
	prop_i64(m, "Date", &row.date);
	if (prop_find(m, "Flags", DBUS_TYPE_ARRAY, &flags) &&
	    dbus_message_iter_get_element_type(&flags) == DBUS_TYPE_STRING) {
		dbus_message_iter_recurse(&flags, &it);
		for (; dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_STRING;
		     dbus_message_iter_next(&it)) {
			row.flags = xreallocarray(row.flags, row.n_flags + 1, sizeof(*row.flags));
			dbus_message_iter_get_basic(&it, &row.flags[row.n_flags++]);
		}
		if (row.n_flags > 1)
			qsort(row.flags, row.n_flags, sizeof(*row.flags), cmp_str);
	}
	print_message_row(&row, json);
	free(row.flags);
	*ret_id = row.id;
}

int list_pages(DBusConnection *conn, const char *folder, uint64_t after, list_each_fn each,
	       void *userdata)
{
	for (;;) {
		DBusMessageIter top, it;
		DBusMessage *m, *reply;
		dbus_uint64_t after_arg = after;
		dbus_uint32_t limit = LIST_PAGE;
		size_t got = 0;
		bool more = true;
		DBusError e;

		dbus_error_init(&e);
		m = new_call(folder, IFACE_FOLDER, "ListMessages");
		if (!dbus_message_append_args(m, DBUS_TYPE_UINT64, &after_arg, DBUS_TYPE_UINT32,
					      &limit, DBUS_TYPE_INVALID))
			dbus_oom();
		reply = call(conn, m, CALL_TIMEOUT_MS, &e);
		if (!reply) {
			report_error(&e, "ListMessages");
			return 1;
		}
		if (!reply_has_signature(reply, "aa{sv}", "ListMessages")) {
			dbus_message_unref(reply);
			return 1;
		}
		dbus_message_iter_init(reply, &top);
		dbus_message_iter_recurse(&top, &it);
		for (; more && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&it)) {
			uint64_t id = 0;

			prop_u64(&it, "Id", &id);
			if (id > after)
				after = id;
			more = each(&it, id, userdata);
			got++;
		}
		dbus_message_unref(reply);
		/* An empty page ends the list (a short one might only be
		 * the daemon's own cap); an Id that does not advance too. */
		if (!more || got == 0 || after == after_arg || ferror(stdout))
			return 0;
	}
}

static bool print_each(DBusMessageIter *m, uint64_t id, void *userdata)
{
	(void)id;
	print_summary(m, *(bool *)userdata, &id);
	return true;
}

static int cmd_list(int argc, char **argv)
{
	_cleanup_free_ char *folder = NULL;
	DBusConnection *conn;
	bool json = false;
	int r = 0;

	r = parse_json_option(argc, argv, list_usage, &json);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 2, 2, "list", list_usage))
		return EXIT_USAGE;
	conn = connect_daemon_quiet(true, true);
	if (!conn)
		return local_list(argv[optind], argv[optind + 1], json);
	folder = lookup_folder(conn, argv[optind], argv[optind + 1]);
	if (!folder) {
		dbus_connection_unref(conn);
		return 1;
	}
	r = list_pages(conn, folder, 0, print_each, &json);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- folders and list without a daemon: the store, read-only ---- */

/*
 * The configured store when the daemon cannot be reached, with account
 * checked against the accounts it holds; NULL after printing why.  Says on
 * stderr that the answer comes from the store (as of the last sync).
 */
static struct cpmsync_store *local_store(const char *account)
{
	_cleanup_free_ char *db = database_path(opt_config_path);
	struct cpmsync_store *store;

	if (!db)
		return NULL;
	store = open_store_readonly(db);
	if (!store)
		return NULL;
	if (store_check_account(store, db, account) != 0)
		return cpmsync_store_close(store);
	fprintf(stderr, "cpmctl: the cpm-syncd daemon is not running: read from the store '%s'\n",
		db);
	return store;
}

static int local_folder_row(const struct cpmsync_folder_info *f, void *userdata)
{
	const bool *json = userdata;

	print_folder_row(f->name, f->messages, f->unseen, *json);
	return ferror(stdout) ? -EIO : 0;
}

static int local_folders(const char *account, bool json)
{
	struct cpmsync_store *store = local_store(account);
	int r;

	if (!store)
		return 1;
	r = cpmsync_store_foreach_folder(store, account, local_folder_row, &json);
	if (r < 0 && !ferror(stdout))
		fprintf(stderr, "cpmctl: reading the store: %s\n", cpmsync_store_error(store));
	cpmsync_store_close(store);
	return finish_stdout(r < 0);
}

static int local_message_row(const struct cpmsync_message_info *m, void *userdata)
{
	const bool *json = userdata;
	_cleanup_free_ char *flags = xstrdup(m->flags ? m->flags : "");
	struct message_row row = {
		.id = (uint64_t)m->id,
		.uid = m->uid,
		.date = m->date,
		.from = m->from,
		.subject = m->subject,
		.message_id = m->message_id,
	};
	char *save = NULL;

	/* Space-separated and sorted bytewise already; \Recent is never listed. */
	for (char *f = strtok_r(flags, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
		if (strcasecmp(f, "\\Recent") == 0)
			continue;
		row.flags = xreallocarray(row.flags, row.n_flags + 1, sizeof(*row.flags));
		row.flags[row.n_flags++] = f;
	}
	print_message_row(&row, *json);
	free(row.flags);
	return ferror(stdout) ? -EIO : 0;
}

static int local_list(const char *account, const char *folder, bool json)
{
	struct cpmsync_store *store = local_store(account);
	int64_t id;
	int r;

	if (!store)
		return 1;
	r = cpmsync_store_find_folder(store, account, folder, &id);
	if (r == -CPMSYNC_E_NOT_FOUND)
		fprintf(stderr, "cpmctl: account '%s' has no folder '%s'\n", account, folder);
	else if (r < 0)
		fprintf(stderr, "cpmctl: reading the store: %s\n", cpmsync_store_error(store));
	else {
		r = cpmsync_store_foreach_message(store, id, 0, 0, local_message_row, &json);
		if (r < 0 && !ferror(stdout))
			fprintf(stderr, "cpmctl: reading the store: %s\n",
				cpmsync_store_error(store));
	}
	cpmsync_store_close(store);
	return finish_stdout(r < 0);
}

/* ---- fetch ---- */

/* Writes all of buf to stdout (after what stdio holds).  0, or 1 after printing why. */
int write_out(const void *buf, size_t len)
{
	int r;

	if (fflush(stdout) != 0)
		return finish_stdout(1);
	r = cpmsync_write_all(STDOUT_FILENO, buf, len);
	if (r == -EPIPE)
		stdout_reader_gone();
	if (r < 0) {
		fprintf(stderr, "cpmctl: cannot write the output: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

static int copy_fd_to_stdout(int fd)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "cpmctl: reading the message from the daemon: %s\n",
				strerror(errno));
			return 1;
		}
		if (n == 0)
			return 0;
		if (write_out(buf, (size_t)n))
			return 1;
	}
}

static int cmd_fetch(int argc, char **argv)
{
	_cleanup_free_ char *folder = NULL;
	const char *section = "";
	DBusConnection *conn;
	DBusMessage *m, *reply = NULL;
	dbus_uint64_t id;
	uint64_t id64;
	DBusError e;
	int r;

	r = parse_no_options(argc, argv, fetch_usage);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 3, 4, "fetch", fetch_usage))
		return EXIT_USAGE;
	if (!parse_id(argv[optind + 2], &id64)) {
		fputs(fetch_usage, stderr);
		return EXIT_USAGE;
	}
	id = id64;
	if (argc - optind > 3)
		section = argv[optind + 3];
	conn = connect_daemon(true);
	if (!conn)
		return 1;
	folder = lookup_folder(conn, argv[optind], argv[optind + 1]);
	if (!folder) {
		r = 1;
		goto out;
	}

	dbus_error_init(&e);
	if (dbus_connection_can_send_type(conn, DBUS_TYPE_UNIX_FD)) {
		int fd = -1;

		m = new_call(folder, IFACE_FOLDER, "FetchFd");
		if (!dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
					      DBUS_TYPE_INVALID))
			dbus_oom();
		reply = call(conn, m, CALL_TIMEOUT_MS, &e);
		if (reply) {
			if (!dbus_message_get_args(reply, &e, DBUS_TYPE_UNIX_FD, &fd,
						   DBUS_TYPE_INVALID)) {
				report_error(&e, "FetchFd");
				r = 1;
				goto out;
			}
			r = copy_fd_to_stdout(fd);
			close(fd);
			goto out;
		}
		if (!dbus_error_has_name(&e, DBUS_ERROR_UNKNOWN_METHOD)) {
			report_error(&e, "FetchFd");
			r = 1;
			goto out;
		}
		dbus_error_free(&e);
	}

	/* No fd passing on this bus (or no FetchFd): the bytes in the reply. */
	m = new_call(folder, IFACE_FOLDER, "Fetch");
	if (!dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
				      DBUS_TYPE_INVALID))
		dbus_oom();
	reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply) {
		report_error(&e, "Fetch");
		r = 1;
	} else {
		const char *data;
		int len;

		if (!dbus_message_get_args(reply, &e, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &data, &len,
					   DBUS_TYPE_INVALID)) {
			report_error(&e, "Fetch");
			r = 1;
		} else {
			r = write_out(data, (size_t)len);
		}
	}
out:
	if (reply)
		dbus_message_unref(reply);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- store ---- */

/* Copies fd (from its current offset) into a new memfd at offset 0.  -errno. */
static int copy_to_memfd(int fd)
{
	_cleanup_close_ int mfd = memfd_create("cpmctl-store", MFD_CLOEXEC);
	char buf[65536];

	if (mfd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		r = cpmsync_write_all(mfd, buf, (size_t)n);
		if (r < 0)
			return r;
	}
	if (lseek(mfd, 0, SEEK_SET) < 0)
		return -errno;
	return TAKE_FD(mfd);
}

static int cmd_store(int argc, char **argv)
{
	_cleanup_free_ char *folder = NULL;
	_cleanup_close_ int fd = -1;
	const char *file, *name, *method;
	char **flags;
	int nflags, r;
	dbus_int64_t date = 0;
	dbus_uint64_t id;
	DBusConnection *conn;
	DBusMessage *m, *reply;
	struct stat st;
	DBusError e;

	r = parse_no_options(argc, argv, store_usage);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 3, -1, "store", store_usage))
		return EXIT_USAGE;
	file = argv[optind + 2];
	flags = argv + optind + 3;
	nflags = argc - optind - 3;
	for (int i = 0; i < nflags; i++) {
		if (!*flags[i]) {
			fprintf(stderr, "cpmctl store: empty flag\n");
			fputs(store_usage, stderr);
			return EXIT_USAGE;
		}
	}

	/* The file first: a missing file needs no daemon. */
	name = str_eq(file, "-") ? "standard input" : file;
	if (str_eq(file, "-")) {
		fd = copy_to_memfd(STDIN_FILENO);
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fd = -errno;
		} else if (fstat(fd, &st) < 0) {
			int err = errno;

			close(fd);
			fd = -err;
		} else if (S_ISDIR(st.st_mode)) {
			close(fd);
			fd = -EISDIR;
		} else if (!S_ISREG(st.st_mode)) {
			/* A pipe or a device: the daemon wants a file it can
			 * read from the start and measure. */
			int mfd = copy_to_memfd(fd);

			close(fd);
			fd = mfd;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "cpmctl: cannot read '%s': %s\n", name, strerror(-fd));
		fd = -1;
		return 1;
	}

	conn = connect_daemon(true);
	if (!conn)
		return 1;
	folder = lookup_folder(conn, argv[optind], argv[optind + 1]);
	if (!folder) {
		r = 1;
		goto out;
	}
	dbus_error_init(&e);
	method = "StoreFd";
	if (dbus_connection_can_send_type(conn, DBUS_TYPE_UNIX_FD)) {
		m = new_call(folder, IFACE_FOLDER, method);
		if (!dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_ARRAY,
					      DBUS_TYPE_STRING, &flags, nflags, DBUS_TYPE_INT64,
					      &date, DBUS_TYPE_INVALID))
			dbus_oom();
		reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	} else {
		_cleanup_free_ char *data = NULL;
		size_t len = 0;

		r = cpmsync_read_all(fd, SIZE_MAX, &data, &len);
		if (r < 0) {
			fprintf(stderr, "cpmctl: cannot read '%s': %s\n", name, strerror(-r));
			r = 1;
			goto out;
		}
		if (len > INT32_MAX) {
			fprintf(stderr, "cpmctl: '%s' is too large to send without fd passing\n",
				name);
			r = 1;
			goto out;
		}
		method = "Store";
		m = new_call(folder, IFACE_FOLDER, method);
		if (!dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &data, (int)len,
					      DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &flags, nflags,
					      DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID))
			dbus_oom();
		reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	}
	if (!reply) {
		report_error(&e, method);
		r = 1;
		goto out;
	}
	if (!dbus_message_get_args(reply, &e, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID)) {
		report_error(&e, method);
		r = 1;
	} else {
		printf("%" PRIu64 "\n", (uint64_t)id);
		r = 0;
	}
	dbus_message_unref(reply);
out:
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- flag ---- */

/* Which of flags (n) the daemon's reason is about: the one it quotes
 * ('%.64s', as dbus/ does), or \Recent's, or the only one; NULL: none
 * known. */
static const char *flag_in_reason(const char *reason, const char *const *flags, int n)
{
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *quoted = xasprintf("'%.64s'", flags[i]);

		if (strstr(reason, quoted))
			return flags[i];
	}
	if (strstr(reason, "\\Recent cannot be set"))
		for (int i = 0; i < n; i++)
			if (!strcasecmp(flags[i], "\\Recent"))
				return flags[i];
	return n == 1 ? flags[0] : NULL;
}

/*
 * SetFlags' InvalidArgs names its D-Bus argument ("add: ...", "remove:
 * ..."), which the user never typed: the reason is given for the +FLAG or
 * -FLAG argument it is about.  false: not such an error (e untouched).
 */
static bool report_flag_error(DBusError *e, const char *const *add, int nadd,
			      const char *const *del, int ndel)
{
	const char *reason, *flag;
	char sign;

	if (!dbus_error_has_name(e, DBUS_ERROR_INVALID_ARGS) || !e->message)
		return false;
	if (!strncmp(e->message, "add: ", 5)) {
		sign = '+';
		reason = e->message + 5;
		flag = flag_in_reason(reason, add, nadd);
	} else if (!strncmp(e->message, "remove: ", 8)) {
		sign = '-';
		reason = e->message + 8;
		flag = flag_in_reason(reason, del, ndel);
	} else {
		return false;
	}
	if (flag)
		fprintf(stderr, "cpmctl flag: '%c%s': %s\n", sign, flag, reason);
	else
		fprintf(stderr, "cpmctl flag: a %cFLAG argument: %s\n", sign, reason);
	dbus_error_free(e);
	return true;
}

static int cmd_flag(int argc, char **argv)
{
	_cleanup_free_ const char **add = NULL, **del = NULL;
	_cleanup_free_ char *folder = NULL;
	int nadd = 0, ndel = 0, r;
	DBusConnection *conn;
	DBusMessage *m, *reply;
	dbus_uint64_t id;
	const dbus_uint64_t *ids = &id;
	uint64_t id64;
	DBusError e;

	r = parse_no_options(argc, argv, flag_usage);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 4, -1, "flag", flag_usage))
		return EXIT_USAGE;
	if (!parse_id(argv[optind + 2], &id64)) {
		fputs(flag_usage, stderr);
		return EXIT_USAGE;
	}
	id = id64;
	add = xcalloc((size_t)argc, sizeof(*add));
	del = xcalloc((size_t)argc, sizeof(*del));
	for (int i = optind + 3; i < argc; i++) {
		const char *a = argv[i];

		if ((a[0] != '+' && a[0] != '-') || !a[1]) {
			fprintf(stderr, "cpmctl flag: '%s' is neither +FLAG nor -FLAG\n", a);
			fputs(flag_usage, stderr);
			return EXIT_USAGE;
		}
		if (a[0] == '+')
			add[nadd++] = a + 1;
		else
			del[ndel++] = a + 1;
	}

	conn = connect_daemon(true);
	if (!conn)
		return 1;
	folder = lookup_folder(conn, argv[optind], argv[optind + 1]);
	if (!folder) {
		r = 1;
		goto out;
	}
	dbus_error_init(&e);
	m = new_call(folder, IFACE_FOLDER, "SetFlags");
	if (!dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_UINT64, &ids, 1,
				      DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &add, nadd,
				      DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &del, ndel,
				      DBUS_TYPE_INVALID))
		dbus_oom();
	reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply) {
		if (!report_flag_error(&e, add, nadd, del, ndel))
			report_error(&e, "SetFlags");
		r = 1;
	} else {
		dbus_message_unref(reply);
		r = 0;
	}
out:
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- online ---- */

static int cmd_online(int argc, char **argv)
{
	struct objects objs = { 0 };
	DBusMessageIter it, v;
	struct object *account;
	DBusConnection *conn;
	DBusMessage *m, *reply;
	const char *iface = IFACE_ACCOUNT, *prop = "Online";
	dbus_bool_t on = FALSE;
	bool cur = false;
	DBusError e;
	int r;

	r = parse_no_options(argc, argv, online_usage);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 1, 2, "online", online_usage))
		return EXIT_USAGE;
	if (argc - optind == 2) {
		if (str_eq(argv[optind + 1], "on")) {
			on = TRUE;
		} else if (!str_eq(argv[optind + 1], "off")) {
			fprintf(stderr, "cpmctl online: '%s' is neither on nor off\n",
				argv[optind + 1]);
			fputs(online_usage, stderr);
			return EXIT_USAGE;
		}
	}
	conn = connect_daemon(true);
	if (!conn)
		return 1;
	r = get_objects(conn, &objs);
	if (r)
		goto out;
	account = find_account(&objs, argv[optind]);
	if (!account) {
		r = 1;
		goto out;
	}
	if (argc - optind == 1) {
		if (!prop_bool(&account->account, "Online", &cur)) {
			fprintf(stderr, "cpmctl: account '%s' has no Online property\n",
				argv[optind]);
			r = 1;
		} else {
			puts(cur ? "on" : "off");
		}
		goto out;
	}
	dbus_error_init(&e);
	m = new_call(account->path, IFACE_PROPERTIES, "Set");
	dbus_message_iter_init_append(m, &it);
	if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface) ||
	    !dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &prop) ||
	    !dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, "b", &v) ||
	    !dbus_message_iter_append_basic(&v, DBUS_TYPE_BOOLEAN, &on) ||
	    !dbus_message_iter_close_container(&it, &v))
		dbus_oom();
	reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply) {
		report_error(&e, "Set Online");
		r = 1;
	} else {
		dbus_message_unref(reply);
	}
out:
	objects_free(&objs);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- sync ---- */

enum sync_result {
	SYNC_RESULT_PENDING,
	SYNC_RESULT_OK,
	SYNC_RESULT_FAILED,
};

struct sync_account {
	const char *name, *path; /* borrowed from the objects reply */
	char *state, *last_error, *folder;
	uint64_t generation;  /* SyncGeneration: completed syncs */
	uint64_t generation0; /* ... when we asked for ours */
	uint64_t grace_end;   /* now_ms() until which a failed connection may recover */
	bool has_generation;
	bool attempt; /* an attempt started after our Sync: judged by news only */
	uint32_t done, total;
	bool online;
	enum sync_result result;
};

struct sync_run {
	DBusConnection *conn;
	struct cpmsync_store *store; /* read-only, for refusals that wait (sync_waiting()) */
	bool store_tried;
	struct sync_account *v;
	size_t n, pending;
	bool tty;	 /* progress line on stdout */
	bool line_drawn; /* the progress line is on the screen */
	int status;
};

static void set_str(char **p, const char *s)
{
	free(*p);
	*p = xstrdup(s);
}

static void sync_apply(struct sync_account *a, const DBusMessageIter *props)
{
	const char *s;
	uint64_t t;
	bool b;

	s = prop_str(props, "State", NULL);
	if (s)
		set_str(&a->state, s);
	s = prop_str(props, "LastError", NULL);
	if (s)
		set_str(&a->last_error, s);
	if (prop_u64(props, "SyncGeneration", &t)) {
		a->generation = t;
		a->has_generation = true;
	}
	if (prop_bool(props, "Online", &b))
		a->online = b;
}

static void progress_clear(struct sync_run *run)
{
	if (!run->line_drawn)
		return;
	fputs("\r\033[K", stdout);
	fflush(stdout);
	run->line_drawn = false;
}

/* Ends the wait for a: "NAME: ok" on stdout, or the reason on stderr. */
/* Account.ListFailedOperations, quietly: the reply, or NULL. */
static DBusMessage *failed_ops_reply(DBusConnection *conn, const char *path)
{
	DBusMessage *reply;
	DBusError e;

	dbus_error_init(&e);
	reply = call(conn, new_call(path, IFACE_ACCOUNT, "ListFailedOperations"), CALL_TIMEOUT_MS,
		     &e);
	if (!reply) {
		dbus_error_free(&e);
		return NULL;
	}
	if (!dbus_message_has_signature(reply, "aa{sv}")) {
		dbus_message_unref(reply);
		return NULL;
	}
	return reply;
}

/*
 * After a sync that completed: the local changes the server refused for
 * good (failed operations, before or during it) as the reason to report
 * (free()), or NULL when there is none.  They are not on the server, so
 * the account is not in sync, although the sync itself ran (and the daemon
 * does not count them as an error).
 */
static char *sync_refused(struct sync_run *run, struct sync_account *a)
{
	DBusMessage *reply = failed_ops_reply(run->conn, a->path);
	DBusMessageIter it, op;
	char *first = NULL, *why = NULL;
	unsigned n = 0, n_not_sent = 0;
	bool first_not_sent = false;

	if (!reply)
		return NULL;
	dbus_message_iter_init(reply, &it);
	for (dbus_message_iter_recurse(&it, &op);
	     dbus_message_iter_get_arg_type(&op) == DBUS_TYPE_ARRAY; dbus_message_iter_next(&op)) {
		const char *folder, *code, *text = prop_str(&op, "Text", "");
		/* Given up here, never sent: not the server's refusal. */
		bool not_sent = !strncmp(text, CPMSYNC_FAILED_OP_NOT_SENT,
					 strlen(CPMSYNC_FAILED_OP_NOT_SENT));

		n_not_sent += not_sent;
		if (n++)
			continue;
		first_not_sent = not_sent;
		if (not_sent)
			text += strlen(CPMSYNC_FAILED_OP_NOT_SENT);
		folder = prop_str(&op, "Folder", "");
		code = prop_str(&op, "Code", "");
		first = xasprintf("%s%s%s%s: %s%s%s%s", prop_str(&op, "Operation", "?"),
				  *folder ? " in '" : "", folder, *folder ? "'" : "",
				  *code ? "[" : "", code, *code ? "] " : "", text);
	}
	dbus_message_unref(reply);
	if (n == 1)
		why = xasprintf("a change was %s: %s (cpmctl failed %s; retry or discard it)",
				first_not_sent ? "not sent" : "refused by the server", first,
				a->name);
	else if (n > 1 && n_not_sent == 0)
		why = xasprintf("%u changes were refused by the server, the first: %s (cpmctl "
				"failed %s; retry or discard them)",
				n, first, a->name);
	else if (n > 1)
		why = xasprintf("%u changes failed (%u not sent, %u refused by the server), the "
				"first %s: %s (cpmctl failed %s; retry or discard them)",
				n, n_not_sent, n - n_not_sent,
				first_not_sent ? "not sent" : "refused by the server", first,
				a->name);
	free(first);
	return why;
}

/* The first refused change that waits for its next try, and how many. */
struct waiting {
	unsigned n;
	char *first;
};

static int waiting_op(const struct cpmsync_failed_op *op, void *userdata)
{
	struct waiting *w = userdata;
	char when[64];

	if (op->tries == 0) /* not refused (yet): on its way */
		return 0;
	if (w->n++)
		return 0;
	if (op->next_try > time(NULL))
		format_local_time((uint64_t)op->next_try, when, sizeof(when));
	else
		snprintf(when, sizeof(when), "at the next sync");
	w->first = xasprintf("%s%s%s%s: %s%s%s%s (tried %" PRIu32 " time%s, next try %s)",
			     op->operation, *op->folder ? " in '" : "", op->folder,
			     *op->folder ? "'" : "", *op->code ? "[" : "", op->code,
			     *op->code ? "] " : "", op->text, op->tries, op->tries == 1 ? "" : "s",
			     when);
	return 0;
}

/*
 * After a sync that completed: the local changes the server refused with a
 * refusal that may pass (queued again with back-off, contract "Failed
 * operations": [OVERQUOTA], [INUSE], a NO without a code ...), as the
 * reason to report (free()), or NULL when there is none.  They are not on
 * the server either; the daemon tries them again by itself, and they
 * become failed operations after 5 tries.  Read from the store as
 * `pending` does (the daemon has no D-Bus list of queued operations); a
 * store that cannot be read is said once and does not fail the sync.
 */
static char *sync_waiting(struct sync_run *run, struct sync_account *a)
{
	struct waiting w = { 0 };
	char *why = NULL;
	int r;

	if (!run->store_tried) {
		_cleanup_free_ char *db = database_for_reading(opt_config_path, false);

		run->store_tried = true;
		run->store = db ? open_store_readonly(db) : NULL;
	}
	if (!run->store)
		return NULL;
	r = cpmsync_store_foreach_pending(run->store, a->name, waiting_op, &w);
	if (r < 0 && r != -CPMSYNC_E_NOT_FOUND)
		fprintf(stderr, "cpmctl: %s: reading the queued changes: %s\n", a->name,
			cpmsync_store_error(run->store));
	if (w.n == 1)
		why = xasprintf("a change was refused by the server for now and waits: %s "
				"(cpmctl pending %s)",
				w.first, a->name);
	else if (w.n > 1)
		why = xasprintf("%u changes were refused by the server for now and wait, the "
				"first: %s (cpmctl pending %s)",
				w.n, w.first, a->name);
	free(w.first);
	return why;
}

static void sync_finish(struct sync_run *run, struct sync_account *a, const char *why)
{
	_cleanup_free_ char *refused = NULL, *waiting = NULL;

	if (a->result != SYNC_RESULT_PENDING)
		return;
	/* Done: but a change the server refused, for good or for now, is
	 * not on the server: no success. */
	if (!why) {
		why = refused = sync_refused(run, a);
		waiting = sync_waiting(run, a);
	}
	progress_clear(run);
	if (!why && !waiting) {
		a->result = SYNC_RESULT_OK;
		printf("%s: ok\n", a->name);
		fflush(stdout);
	} else {
		a->result = SYNC_RESULT_FAILED;
		fflush(stdout);
		if (why)
			fprintf(stderr, "cpmctl: %s: %s\n", a->name, why);
		if (waiting)
			fprintf(stderr, "cpmctl: %s: %s\n", a->name, waiting);
		run->status = 1;
	}
	run->pending--;
}

static void sync_finish_all(struct sync_run *run, const char *why)
{
	for (size_t i = 0; i < run->n; i++)
		sync_finish(run, &run->v[i], why);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Not connected, and the last attempt failed: "connecting" with a
 * LastError (between attempts), or "error" with one (a stop the daemon
 * keeps until the settings change: a refused login, a store holding
 * another mailbox's changes).  Our Sync retries either at once, and the
 * daemon says nothing when the retry fails the same way before it starts
 * connecting (the store check), so the grace judges that.
 */
static bool sync_cannot_connect(const struct sync_account *a)
{
	return (str_eq(a->state, "connecting") || str_eq(a->state, "error")) && *a->last_error;
}

/*
 * Done when State is back at "idle" and SyncGeneration has moved since we
 * asked (a sync completed after the request: ours, or one already running
 * that took our changes too).  Failed when the news is State "error", or
 * the account cannot connect: news of a failed attempt, or still between
 * failed attempts when the grace for the attempt our Sync started is over
 * (the daemon keeps retrying; we say why instead of waiting for it).  Only
 * news that arrives after Sync is judged (an "error" left from before says
 * nothing about this sync).
 */
static void sync_check(struct sync_run *run, struct sync_account *a, bool state_news)
{
	if (a->result != SYNC_RESULT_PENDING)
		return;
	if (!a->online)
		sync_finish(run, a, "the account was set offline (Online is off)");
	else if (state_news && str_eq(a->state, "error"))
		sync_finish(run, a,
			    *a->last_error ? a->last_error : "sync failed (no reason given)");
	else if (sync_cannot_connect(a) &&
		 (state_news || (!a->attempt && now_ms() >= a->grace_end)))
		sync_finish(run, a, a->last_error);
	else if (str_eq(a->state, "idle") && a->generation > a->generation0)
		sync_finish(run, a, NULL);
}

/* The next grace end among the accounts that wait on one, or 0. */
static uint64_t sync_next_grace(const struct sync_run *run)
{
	uint64_t next = 0;

	for (size_t i = 0; i < run->n; i++) {
		const struct sync_account *a = &run->v[i];

		if (a->result == SYNC_RESULT_PENDING && sync_cannot_connect(a) && !a->attempt &&
		    (!next || a->grace_end < next))
			next = a->grace_end;
	}
	return next;
}

static struct sync_account *sync_find(struct sync_run *run, const char *path)
{
	for (size_t i = 0; path && i < run->n; i++)
		if (run->v[i].result == SYNC_RESULT_PENDING && str_eq(run->v[i].path, path))
			return &run->v[i];
	return NULL;
}

/* Properties.GetAll of Account1 after an invalidation. */
static void sync_refresh(struct sync_run *run, struct sync_account *a)
{
	const char *iface = IFACE_ACCOUNT;
	DBusMessageIter it;
	DBusMessage *m, *reply;
	DBusError e;

	dbus_error_init(&e);
	m = dbus_message_new_method_call(BUS_NAME, a->path, IFACE_PROPERTIES, "GetAll");
	if (!m || !dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_INVALID))
		dbus_oom();
	reply = call(run->conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply) {
		dbus_error_free(&e);
		return;
	}
	if (dbus_message_has_signature(reply, "a{sv}")) {
		dbus_message_iter_init(reply, &it);
		sync_apply(a, &it);
	}
	dbus_message_unref(reply);
}

static void sync_handle(struct sync_run *run, DBusMessage *msg)
{
	struct sync_account *a;
	DBusMessageIter it, sub;
	const char *s, *s2, *s3;

	if (dbus_message_is_signal(msg, DBUS_INTERFACE_LOCAL, "Disconnected")) {
		sync_finish_all(run, "lost the connection to the session bus");
		return;
	}
	if (dbus_message_is_signal(msg, IFACE_DBUS, "NameOwnerChanged")) {
		if (dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_STRING, &s2,
					  DBUS_TYPE_STRING, &s3, DBUS_TYPE_INVALID) &&
		    str_eq(s, BUS_NAME) && !*s3)
			sync_finish_all(run, "the cpm-syncd daemon exited during the sync");
		return;
	}
	if (dbus_message_is_signal(msg, IFACE_OBJECT_MANAGER, "InterfacesRemoved")) {
		if (!dbus_message_has_signature(msg, "oas"))
			return;
		dbus_message_iter_init(msg, &it);
		dbus_message_iter_get_basic(&it, &s);
		a = sync_find(run, s);
		if (!a)
			return;
		dbus_message_iter_next(&it);
		dbus_message_iter_recurse(&it, &sub);
		for (; dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_STRING;
		     dbus_message_iter_next(&sub)) {
			dbus_message_iter_get_basic(&sub, &s2);
			if (str_eq(s2, IFACE_ACCOUNT))
				sync_finish(run, a, "the account was removed during the sync");
		}
		return;
	}

	a = sync_find(run, dbus_message_get_path(msg));
	if (!a)
		return;
	if (dbus_message_is_signal(msg, IFACE_ACCOUNT, "SyncProgress")) {
		dbus_uint32_t done, total;

		if (dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &s, DBUS_TYPE_UINT32, &done,
					  DBUS_TYPE_UINT32, &total, DBUS_TYPE_INVALID)) {
			set_str(&a->folder, s);
			a->done = done;
			a->total = total;
		}
	} else if (dbus_message_is_signal(msg, IFACE_PROPERTIES, "PropertiesChanged")) {
		_cleanup_free_ char *was = xstrdup(a->state);
		bool news = false, refresh = false, last_error_news;
		uint64_t activity;

		if (!dbus_message_has_signature(msg, "sa{sv}as"))
			return;
		dbus_message_iter_init(msg, &it);
		dbus_message_iter_get_basic(&it, &s);
		if (!str_eq(s, IFACE_ACCOUNT))
			return;
		dbus_message_iter_next(&it);
		sync_apply(a, &it);
		last_error_news = prop_has(&it, "LastError");
		news = prop_has(&it, "State") || last_error_news;
		/* The server answers: the connection attempt is getting on. */
		if (prop_u64(&it, "LastServerActivity", &activity) && activity)
			a->grace_end = now_ms() + SYNC_CONNECT_GRACE_MS;
		dbus_message_iter_next(&it);
		dbus_message_iter_recurse(&it, &sub);
		for (; dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_STRING;
		     dbus_message_iter_next(&sub)) {
			dbus_message_iter_get_basic(&sub, &s2);
			if (str_eq(s2, "State") || str_eq(s2, "LastError") ||
			    str_eq(s2, "SyncGeneration") || str_eq(s2, "Online"))
				refresh = true;
		}
		if (refresh) {
			sync_refresh(run, a);
			news = true;
		}
		/*
		 * An attempt starts (State moves to "connecting" from another
		 * state, LastError unchanged, e.g. the retry our Sync starts
		 * after a refused login): no news of its outcome yet, and it
		 * is judged by its outcome (State, LastError) only, not by the
		 * grace: a login may take seconds (Dovecot delays logins after
		 * failed ones); --timeout bounds the wait.  Back from
		 * "syncing" it is that outcome: the run failed, with the same
		 * LastError as the attempt before (so no LastError news), and
		 * the daemon retries later; taken for a start, that failure
		 * was waited on until --timeout.
		 */
		if (news && !last_error_news && str_eq(a->state, "connecting") &&
		    !str_eq(was, "connecting") && !str_eq(was, "syncing")) {
			news = false;
			a->attempt = true;
		}
		sync_check(run, a, news);
	}
}

/* Appends to line (NUL-terminated, size bytes), silently cut at the end. */
AGENT_ATTR_FORMAT(3, 4)
static void append(char *line, size_t size, const char *fmt, ...)
{
	size_t len = strlen(line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + len, size - len, fmt, ap);
	va_end(ap);
}

/* On a terminal: one line, rewritten, with every account still running. */
static void progress_draw(struct sync_run *run)
{
	char line[1024] = "";
	struct winsize ws;
	size_t cols = 80, len;

	if (!run->tty || run->pending == 0)
		return;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		cols = ws.ws_col;
	for (size_t i = 0; i < run->n; i++) {
		struct sync_account *a = &run->v[i];

		if (a->result != SYNC_RESULT_PENDING)
			continue;
		append(line, sizeof(line), "%s%s: %s", *line ? "   " : "", a->name, a->state);
		if (a->total) {
			unsigned pct = a->done >= a->total
					       ? 100
					       : (unsigned)((uint64_t)a->done * 100 / a->total);
			char bar[21];

			for (unsigned k = 0; k < 20; k++)
				bar[k] = k < pct / 5 ? '#' : '-';
			bar[20] = '\0';
			append(line, sizeof(line), " [%s] %3u%% %s %" PRIu32 "/%" PRIu32, bar, pct,
			       a->folder && *a->folder ? a->folder : "all", a->done, a->total);
		}
	}
	/* Cut to the width, not inside a UTF-8 sequence. */
	len = strlen(line);
	if (len > cols - 1) {
		len = cols - 1;
		while (len > 0 && ((unsigned char)line[len] & 0xc0) == 0x80)
			len--;
		line[len] = '\0';
	}
	fputs("\r\033[K", stdout);
	fputs(line, stdout);
	fflush(stdout);
	run->line_drawn = true;
}

int add_match(DBusConnection *conn, const char *rule)
{
	DBusError e;

	dbus_error_init(&e);
	dbus_bus_add_match(conn, rule, &e);
	if (dbus_error_is_set(&e)) {
		report_error(&e, "AddMatch");
		return 1;
	}
	return 0;
}

/*
 * Account1.SyncAll (a full pass: Sync under NOTIFY may be answered by a
 * NOOP, and Dovecot 2.3's NOTIFY misses some changes), or Sync from a
 * daemon without it; NULL, or the reason it failed (free()).
 */
static char *sync_start(DBusConnection *conn, const struct sync_account *a)
{
	DBusMessage *reply;
	DBusError e;
	char *why;

	dbus_error_init(&e);
	reply = call(conn, new_call(a->path, IFACE_ACCOUNT, "SyncAll"), CALL_TIMEOUT_MS, &e);
	if (!reply && dbus_error_has_name(&e, DBUS_ERROR_UNKNOWN_METHOD)) {
		dbus_error_free(&e);
		reply = call(conn, new_call(a->path, IFACE_ACCOUNT, "Sync"), CALL_TIMEOUT_MS, &e);
	}
	if (reply) {
		dbus_message_unref(reply);
		return NULL;
	}
	if (error_is_no_daemon(&e))
		why = xstrdup("the cpm-syncd daemon is not running");
	else if (dbus_error_has_name(&e, "org.cpmsync.Error.Offline"))
		/* Its Online switch is off (the daemon's "account 'a' is
		 * offline (Online is false)"), said as cpmctl's commands go. */
		why = xstrdup("the account is offline (Online is off; see cpmctl online)");
	else
		why = xasprintf("%s: %s", error_short_name(e.name),
				e.message && *e.message ? e.message : "(no message)");
	dbus_error_free(&e);
	return why;
}

static int cmd_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const rules[] = {
		"type='signal',sender='" BUS_NAME "',interface='" IFACE_ACCOUNT
		"',member='SyncProgress'",
		"type='signal',sender='" BUS_NAME "',interface='" IFACE_PROPERTIES
		"',member='PropertiesChanged',arg0='" IFACE_ACCOUNT "'",
		"type='signal',sender='" BUS_NAME "',interface='" IFACE_OBJECT_MANAGER
		"',member='InterfacesRemoved'",
		"type='signal',sender='" IFACE_DBUS "',interface='" IFACE_DBUS
		"',member='NameOwnerChanged',arg0='" BUS_NAME "'",
	};
	struct sync_run run = { .status = 0 };
	struct objects objs = { 0 };
	_cleanup_free_ struct object **acc = NULL;
	unsigned long timeout = SYNC_TIMEOUT_DEFAULT;
	uint64_t deadline = 0;
	DBusConnection *conn;
	DBusMessage *msg;
	size_t n;
	char *end;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			errno = 0;
			timeout = strtoul(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno ||
			    timeout > 365ul * 24 * 3600) {
				fprintf(stderr, "cpmctl sync: invalid --timeout '%s'\n", optarg);
				fputs(sync_usage, stderr);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(sync_usage, stdout);
			return finish_stdout(0);
		default:
			fputs(sync_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!nargs_ok(argc - optind, 0, 1, "sync", sync_usage))
		return EXIT_USAGE;

	conn = connect_daemon(true);
	if (!conn)
		return 1;
	/* Subscribe first: every change after the snapshot is then seen. */
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
		r = add_match(conn, rules[i]);
		if (r)
			goto out;
	}
	r = get_objects(conn, &objs);
	if (r)
		goto out;
	if (optind < argc) {
		struct object *o = find_account(&objs, argv[optind]);

		if (!o) {
			r = 1;
			goto out;
		}
		acc = xcalloc(1, sizeof(*acc));
		acc[0] = o;
		n = 1;
	} else {
		acc = sorted_accounts(&objs, &n);
		if (n == 0) {
			fprintf(stderr, "cpmctl: no account is configured\n");
			r = 1;
			goto out;
		}
	}

	run.conn = conn;
	run.tty = isatty(STDOUT_FILENO);
	run.n = run.pending = n;
	run.v = xcalloc(n, sizeof(*run.v));
	for (size_t i = 0; i < n; i++) {
		struct sync_account *a = &run.v[i];

		a->name = acc[i]->name;
		a->path = acc[i]->path;
		a->state = xstrdup("?");
		a->last_error = xstrdup("");
		a->online = true;
		sync_apply(a, &acc[i]->account);
		a->generation0 = a->generation;
	}

	for (size_t i = 0; i < n; i++) {
		struct sync_account *a = &run.v[i];
		_cleanup_free_ char *why = NULL;

		/* An account whose Online is off: the daemon's Sync says so
		 * (Offline), sync_start() tells it. */
		if (!a->has_generation) {
			sync_finish(&run, a,
				    "the daemon does not report SyncGeneration "
				    "(older than this cpmctl)");
			continue;
		}
		a->grace_end = now_ms() + SYNC_CONNECT_GRACE_MS;
		why = sync_start(conn, a);
		if (why)
			sync_finish(&run, a, why);
	}

	if (timeout)
		deadline = now_ms() + (uint64_t)timeout * 1000;
	while (run.pending) {
		uint64_t grace;
		int wait = -1;

		while (run.pending && (msg = dbus_connection_pop_message(conn))) {
			sync_handle(&run, msg);
			dbus_message_unref(msg);
		}
		for (size_t i = 0; i < n; i++)
			sync_check(&run, &run.v[i], false);
		if (!run.pending)
			break;
		progress_draw(&run);
		grace = sync_next_grace(&run);
		if (timeout) {
			uint64_t now = now_ms();

			if (now >= deadline) {
				for (size_t i = 0; i < n; i++) {
					struct sync_account *a = &run.v[i];
					_cleanup_free_ char *why = NULL;

					if (a->result != SYNC_RESULT_PENDING)
						continue;
					why = xasprintf("not done after %lu seconds (state %s%s%s)",
							timeout, a->state,
							*a->last_error ? ": " : "", a->last_error);
					sync_finish(&run, a, why);
				}
				break;
			}
			wait = deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
		}
		if (grace) {
			uint64_t now = now_ms();
			int g = grace > now ? (int)(grace - now) : 0;

			if (wait < 0 || g < wait)
				wait = g;
		}
		if (!dbus_connection_read_write(conn, wait)) {
			/* Messages already read come first (Disconnected among them). */
			while (run.pending && (msg = dbus_connection_pop_message(conn))) {
				sync_handle(&run, msg);
				dbus_message_unref(msg);
			}
			sync_finish_all(&run, "lost the connection to the session bus");
		}
	}
	progress_clear(&run);
	r = run.status;
out:
	cpmsync_store_close(run.store);
	for (size_t i = 0; i < run.n; i++) {
		free(run.v[i].state);
		free(run.v[i].last_error);
		free(run.v[i].folder);
	}
	free(run.v);
	objects_free(&objs);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- failed operations: failed, retry, discard ---- */

static const char failed_usage[] = "Usage: cpmctl failed [--json] [ACCOUNT]\n";
static const char retry_usage[] = "Usage: cpmctl retry ACCOUNT ID\n";
static const char discard_usage[] = "Usage: cpmctl discard ACCOUNT ID\n";

/* One failed operation (an a{sv} at op) as a line. */
static void print_failed_op(const char *account, const DBusMessageIter *op, bool json)
{
	uint64_t id = 0;
	uint32_t tries = 0;
	int64_t t = 0;
	DBusMessageIter v, ids;
	char when[64];
	bool first = true;

	prop_u64(op, "Id", &id);
	prop_u32(op, "Tries", &tries);
	prop_i64(op, "Time", &t);
	if (json) {
		/* The dict's members, in the contract's order, after the account. */
		json_key("Account", true);
		json_str(account);
		printf(",\"Id\":%" PRIu64, id);
		json_key_str("Operation", prop_str(op, "Operation", ""));
		json_key_str("Folder", prop_str(op, "Folder", ""));
		fputs(",\"MessageIds\":[", stdout);
		if (prop_find(op, "MessageIds", DBUS_TYPE_ARRAY, &v)) {
			for (dbus_message_iter_recurse(&v, &ids);
			     dbus_message_iter_get_arg_type(&ids) == DBUS_TYPE_UINT64;
			     dbus_message_iter_next(&ids)) {
				dbus_uint64_t m;

				dbus_message_iter_get_basic(&ids, &m);
				printf("%s%" PRIu64, first ? "" : ",", (uint64_t)m);
				first = false;
			}
		}
		putchar(']');
		json_key_str("Code", prop_str(op, "Code", ""));
		printf(",\"Tries\":%" PRIu32 ",\"Time\":%" PRId64, tries, t);
		json_key_str("Text", prop_str(op, "Text", ""));
		puts("}");
		return;
	}
	format_utc_time(t, when, sizeof(when));
	put_field(account);
	printf("\t%" PRIu64 "\t", id);
	put_field(prop_str(op, "Operation", "?"));
	putchar('\t');
	put_field(prop_str(op, "Folder", ""));
	putchar('\t');
	if (prop_find(op, "MessageIds", DBUS_TYPE_ARRAY, &v)) {
		for (dbus_message_iter_recurse(&v, &ids);
		     dbus_message_iter_get_arg_type(&ids) == DBUS_TYPE_UINT64;
		     dbus_message_iter_next(&ids)) {
			dbus_uint64_t m;

			dbus_message_iter_get_basic(&ids, &m);
			printf("%s%" PRIu64, first ? "" : ",", (uint64_t)m);
			first = false;
		}
	}
	putchar('\t');
	put_field(prop_str(op, "Code", ""));
	printf("\t%" PRIu32 "\t%s\t", tries, when);
	put_field(prop_str(op, "Text", ""));
	putchar('\n');
}

/* Account.ListFailedOperations of one account, printed; 0 or 1. */
static int list_failed_of(DBusConnection *conn, const struct object *account, bool json)
{
	DBusMessageIter it, ops;
	DBusMessage *reply;
	DBusError e;

	dbus_error_init(&e);
	reply = call(conn, new_call(account->path, IFACE_ACCOUNT, "ListFailedOperations"),
		     CALL_TIMEOUT_MS, &e);
	if (!reply) {
		report_error(&e, "ListFailedOperations");
		return 1;
	}
	if (!reply_has_signature(reply, "aa{sv}", "ListFailedOperations")) {
		dbus_message_unref(reply);
		return 1;
	}
	dbus_message_iter_init(reply, &it);
	for (dbus_message_iter_recurse(&it, &ops);
	     dbus_message_iter_get_arg_type(&ops) == DBUS_TYPE_ARRAY; dbus_message_iter_next(&ops))
		print_failed_op(account->name, &ops, json);
	dbus_message_unref(reply);
	return 0;
}

static int cmd_failed(int argc, char **argv)
{
	struct objects objs = { 0 };
	_cleanup_free_ struct object **acc = NULL;
	DBusConnection *conn;
	bool json = false;
	size_t n;
	int r;

	r = parse_json_option(argc, argv, failed_usage, &json);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 0, 1, "failed", failed_usage))
		return EXIT_USAGE;
	conn = connect_daemon(true);
	if (!conn)
		return 1;
	r = get_objects(conn, &objs);
	if (r)
		goto out;
	if (argc - optind == 1) {
		struct object *account = find_account(&objs, argv[optind]);

		r = account ? list_failed_of(conn, account, json) : 1;
		goto out;
	}
	acc = sorted_accounts(&objs, &n);
	for (size_t i = 0; i < n && r == 0; i++)
		r = list_failed_of(conn, acc[i], json);
out:
	objects_free(&objs);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* Account.RetryOperation / DiscardOperation ACCOUNT ID. */
static int failed_op_call(int argc, char **argv, const char *cmd, const char *method,
			  const char *cmd_usage)
{
	struct objects objs = { 0 };
	struct object *account;
	DBusConnection *conn;
	DBusMessage *m, *reply;
	dbus_uint64_t id;
	uint64_t id64;
	DBusError e;
	int r;

	r = parse_no_options(argc, argv, cmd_usage);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 2, 2, cmd, cmd_usage))
		return EXIT_USAGE;
	if (!parse_id_of(argv[optind + 1], "operation id", &id64)) {
		fputs(cmd_usage, stderr);
		return EXIT_USAGE;
	}
	id = id64;
	conn = connect_daemon(true);
	if (!conn)
		return 1;
	r = get_objects(conn, &objs);
	if (r)
		goto out;
	account = find_account(&objs, argv[optind]);
	if (!account) {
		r = 1;
		goto out;
	}
	dbus_error_init(&e);
	m = new_call(account->path, IFACE_ACCOUNT, method);
	if (!dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID))
		dbus_oom();
	reply = call(conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply) {
		report_error(&e, method);
		r = 1;
	} else {
		dbus_message_unref(reply);
	}
out:
	objects_free(&objs);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

static int cmd_retry(int argc, char **argv)
{
	return failed_op_call(argc, argv, "retry", "RetryOperation", retry_usage);
}

static int cmd_discard(int argc, char **argv)
{
	return failed_op_call(argc, argv, "discard", "DiscardOperation", discard_usage);
}

/*
 * D-Bus strings are UTF-8, and libdbus aborts the process when asked to
 * send anything else: every argument that goes to the daemon must be UTF-8
 * (a user on a Latin-1 terminal, a script passing raw file names).  A FILE
 * is a path and is only opened here: store's third positional argument,
 * send's second.  dump reads the store itself.
 */
static bool args_are_utf8(int argc, char **argv)
{
	const char *cmd = argv[0];
	int file_at = str_eq(cmd, "store") ? 3 : str_eq(cmd, "send") ? 2 : 0;
	bool options = true;
	int pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options && str_eq(a, "--")) {
			options = false;
			continue;
		}
		if (!options || a[0] != '-' || !a[1]) {
			/* positional (an option is checked as the others) */
			options = false;
			if (++pos == file_at)
				continue;
		}
		if (cpmsync_utf8_valid(a, strlen(a)))
			continue;
		fprintf(stderr, "cpmctl %s: argument '", cmd);
		for (const unsigned char *c = (const unsigned char *)a; *c; c++)
			if (*c >= 0x20 && *c < 0x7f && *c != '\\')
				putc(*c, stderr);
			else
				fprintf(stderr, "\\x%02x", *c);
		fprintf(stderr,
			"' is not UTF-8 (names, flags and text go to the daemon as UTF-8)\n");
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	enum { OPT_VERSION = 256 };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{ "status", cmd_status },
		{ "sync", cmd_sync },
		{ "folders", cmd_folders },
		{ "list", cmd_list },
		{ "fetch", cmd_fetch },
		{ "store", cmd_store },
		{ "flag", cmd_flag },
		{ "online", cmd_online },
		{ "failed", cmd_failed },
		{ "retry", cmd_retry },
		{ "discard", cmd_discard },
		{ "pending", cmd_pending },
		{ "folder", cmd_folder },
		{ "copy", cmd_copy },
		{ "move", cmd_move },
		{ "delete", cmd_delete },
		{ "expunge", cmd_expunge },
		{ "metadata", cmd_metadata },
		{ "annotation", cmd_annotation },
		{ "acl", cmd_acl },
		{ "search", cmd_search },
		{ "watch", cmd_watch },
	};
	const char *config_path = NULL, *cmd;
	int ch;

	/* EPIPE instead of a signal: a D-Bus socket's is an error code, and
	 * stdout's ends us by SIGPIPE after all (stdout_reader_gone()). */
	signal(SIGPIPE, SIG_IGN);
	/* getopt's own messages start with argv[0]: "cpmctl: option
	 * '--config' requires an argument", as every other message, not the
	 * path it was run by; in a command "cpmctl CMD: ..." (below). */
	argv[0] = (char *)"cpmctl";

	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = opt_config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return finish_stdout(0);
		case OPT_VERSION:
			printf("cpmctl %s\n", cpmsync_version());
			return finish_stdout(0);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "cpmctl: no command given\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if (str_eq(cmd, "dump")) {
		argv[optind] = (char *)"cpmctl dump"; /* for getopt, as above */
		return cmd_dump(argc - optind, argv + optind, config_path);
	}
	if (!args_are_utf8(argc - optind, argv + optind))
		return EXIT_USAGE;
	argv[optind] = xasprintf("cpmctl %s", cmd); /* for getopt, as above */
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (str_eq(cmd, commands[i].name))
			return commands[i].run(argc - optind, argv + optind);
	/* conversations, chat, send: agent/cpmctl-cpm.c */
	{
		int r = cpmctl_cpm_command(cmd, argc - optind, argv + optind);

		if (r >= 0)
			return r;
	}
	fprintf(stderr, "cpmctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
