/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmctl's CPM commands (contract "cpmctl"; issue 11), over D-Bus:
 *
 *   cpmctl conversations [--json] ACCOUNT
 *   cpmctl chat [--json] [--limit N] ACCOUNT CONVERSATION-ID
 *   cpmctl send ACCOUNT FILE|-
 *
 * Kept apart from cpmctl.c, which calls cpmctl_cpm_command(); connecting,
 * errors, calls and the output helpers are cpmctl.h's.
 * Output conventions are cpmctl's: exit 0 done, 1 failed (reason on
 * stderr), 2 usage; --json prints one JSON object per line, keys as in
 * the D-Bus dicts.
 */
#include "cpmctl-cpm.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include <cpmsync/io.h>

#include "cpmctl.h"

/* Messages `chat` shows by default: the newest, oldest first. */
#define CHAT_DEFAULT_LIMIT 50u
#define CHAT_MAX_LIMIT	   10000u

static const char conversations_usage[] = "Usage: cpmctl conversations [--json] ACCOUNT\n";
static const char chat_usage[] =
	"Usage: cpmctl chat [--json] [--limit N] ACCOUNT CONVERSATION-ID\n";
static const char send_usage[] = "Usage: cpmctl send ACCOUNT FILE|-\n";

/* ---- D-Bus -------------------------------------------------------------- */

/* /org/cpmsync/<account> (the element escaped as the daemon does). */
static char *account_path(const char *name)
{
	_cleanup_free_ char *elem = escape_path_element(name);
	char *out = xmalloc(strlen("/org/cpmsync/") + strlen(elem) + 1);

	sprintf(out, "/org/cpmsync/%s", elem);
	return out;
}

/* Sends m (unref'ed) and waits; NULL after reporting the error. */
static DBusMessage *call_account(DBusConnection *conn, DBusMessage *m, const char *account,
				 const char *context)
{
	DBusMessage *reply;
	DBusError e;

	dbus_error_init(&e);
	reply = dbus_connection_send_with_reply_and_block(conn, m, CALL_TIMEOUT_MS, &e);
	dbus_message_unref(m);
	if (reply)
		return reply;
	if (dbus_error_has_name(&e, DBUS_ERROR_UNKNOWN_OBJECT) ||
	    dbus_error_has_name(&e, DBUS_ERROR_UNKNOWN_METHOD)) {
		struct objects objs = { 0 };

		dbus_error_free(&e);
		/* With the accounts there are, as sync, folders and list say. */
		if (get_objects(conn, &objs) == 0)
			report_unknown_account(&objs, account);
		else
			fprintf(stderr, "cpmctl: unknown account '%s'\n", account);
		objects_free(&objs);
		return NULL;
	}
	report_error(&e, context);
	return NULL;
}

/* ---- reading dicts -------------------------------------------------------- */

/* The value (inside its variant) of key in the a{sv} at dict. */
static bool dict_find(const DBusMessageIter *dict, const char *key, DBusMessageIter *ret)
{
	DBusMessageIter d = *dict, e;

	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d)) {
		const char *k;

		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &k);
		if (strcmp(k, key))
			continue;
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, ret);
		return true;
	}
	return false;
}

static const char *dict_str(const DBusMessageIter *dict, const char *key)
{
	DBusMessageIter v;
	const char *s;

	if (!dict_find(dict, key, &v) ||
	    (dbus_message_iter_get_arg_type(&v) != DBUS_TYPE_STRING &&
	     dbus_message_iter_get_arg_type(&v) != DBUS_TYPE_OBJECT_PATH))
		return "";
	dbus_message_iter_get_basic(&v, &s);
	return s;
}

/* Integers and booleans, widened. */
static int64_t dict_num(const DBusMessageIter *dict, const char *key)
{
	DBusMessageIter v;
	DBusBasicValue b;

	if (!dict_find(dict, key, &v))
		return 0;
	switch (dbus_message_iter_get_arg_type(&v)) {
	case DBUS_TYPE_UINT32:
		dbus_message_iter_get_basic(&v, &b);
		return b.u32;
	case DBUS_TYPE_INT64:
		dbus_message_iter_get_basic(&v, &b);
		return b.i64;
	case DBUS_TYPE_UINT64:
		dbus_message_iter_get_basic(&v, &b);
		return (int64_t)b.u64;
	case DBUS_TYPE_BOOLEAN:
		dbus_message_iter_get_basic(&v, &b);
		return b.bool_val;
	default:
		return 0;
	}
}

/* ---- output --------------------------------------------------------------- */

/* The a{sv} at dict as a JSON object: strings, numbers, booleans, string
 * arrays and nested dicts (object paths as strings). */
static void json_dict(const DBusMessageIter *dict)
{
	DBusMessageIter d = *dict, e, v, a;
	bool first = true;

	putchar('{');
	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d)) {
		const char *k, *s;
		DBusBasicValue b;

		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &k);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &v);
		printf("%s", first ? "" : ",");
		first = false;
		json_str(k);
		putchar(':');
		switch (dbus_message_iter_get_arg_type(&v)) {
		case DBUS_TYPE_STRING:
		case DBUS_TYPE_OBJECT_PATH:
			dbus_message_iter_get_basic(&v, &s);
			json_str(s);
			break;
		case DBUS_TYPE_BOOLEAN:
			dbus_message_iter_get_basic(&v, &b);
			fputs(b.bool_val ? "true" : "false", stdout);
			break;
		case DBUS_TYPE_UINT32:
			dbus_message_iter_get_basic(&v, &b);
			printf("%" PRIu32, b.u32);
			break;
		case DBUS_TYPE_UINT64:
			dbus_message_iter_get_basic(&v, &b);
			printf("%" PRIu64, b.u64);
			break;
		case DBUS_TYPE_INT64:
			dbus_message_iter_get_basic(&v, &b);
			printf("%" PRId64, b.i64);
			break;
		case DBUS_TYPE_ARRAY:
			dbus_message_iter_recurse(&v, &a);
			if (dbus_message_iter_get_element_type(&v) == DBUS_TYPE_DICT_ENTRY) {
				json_dict(&a);
				break;
			}
			putchar('[');
			for (bool f = true; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING;
			     dbus_message_iter_next(&a), f = false) {
				dbus_message_iter_get_basic(&a, &s);
				printf("%s", f ? "" : ",");
				json_str(s);
			}
			putchar(']');
			break;
		default:
			fputs("null", stdout);
		}
	}
	putchar('}');
}

/* "YYYY-MM-DD HH:MM" local time, "-" for 0. */
static void put_time(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[32];

	if (t == 0 || !localtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm))
		snprintf(buf, sizeof(buf), "-");
	fputs(buf, stdout);
}

static const char *arrow(const char *direction)
{
	if (!strcmp(direction, "sent"))
		return "\u2192"; /* → */
	if (!strcmp(direction, "received"))
		return "\u2190"; /* ← */
	return "\u00b7";	 /* · the object does not say */
}

/* What a message says: its text, else "[Type]". */
static void put_text(const DBusMessageIter *m)
{
	const char *snippet = dict_str(m, "Snippet");

	if (*snippet)
		put_field(snippet);
	else
		printf("[%s]", dict_str(m, "Type"));
}

/* ---- options ---------------------------------------------------------------- */

/* --json, --limit N (when limit is not NULL), --help. -1 to go on. */
static int parse_options(int argc, char **argv, const char *usage, bool *json, unsigned *limit)
{
	enum { OPT_JSON = 256, OPT_LIMIT };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		char *end;
		unsigned long n;

		switch (ch) {
		case 'h':
			fputs(usage, stdout);
			return finish_stdout(0);
		case OPT_JSON:
			if (!json)
				goto bad;
			*json = true;
			break;
		case OPT_LIMIT:
			if (!limit)
				goto bad;
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || n == 0 ||
			    n > CHAT_MAX_LIMIT) {
				fprintf(stderr,
					"cpmctl: --limit: a number from 1 to %u, not '%s'\n",
					CHAT_MAX_LIMIT, optarg);
				return EXIT_USAGE;
			}
			*limit = (unsigned)n;
			break;
		default:
			goto bad;
		}
	}
	return -1;
bad:
	fputs(usage, stderr);
	return EXIT_USAGE;
}

static bool nargs(int argc, int n, const char *cmd, const char *usage)
{
	if (argc - optind == n)
		return true;
	fprintf(stderr, "cpmctl %s: %s arguments\n", cmd,
		argc - optind < n ? "missing" : "too many");
	fputs(usage, stderr);
	return false;
}

/* ---- conversations ---------------------------------------------------------- */

/* ID TAB WHO TAB UNSEEN/MESSAGES TAB TIME TAB LAST, WHO the peer or
 * "group: " and the participants (or the subject when none are known). */
static void print_conversation(const DBusMessageIter *c)
{
	DBusMessageIter p, last, a;
	const char *s;
	bool first = true;

	put_field(dict_str(c, "ConversationId"));
	putchar('\t');
	if (!dict_num(c, "IsGroup")) {
		put_field(dict_str(c, "Peer"));
	} else {
		fputs("group:", stdout);
		if (dict_find(c, "Participants", &p)) {
			for (dbus_message_iter_recurse(&p, &a);
			     dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING;
			     dbus_message_iter_next(&a), first = false) {
				dbus_message_iter_get_basic(&a, &s);
				printf("%s", first ? " " : ", ");
				put_field(s);
			}
		}
		if (first && *dict_str(c, "Subject")) {
			putchar(' ');
			put_field(dict_str(c, "Subject"));
		}
	}
	printf("\t%" PRId64 "/%" PRId64 "\t", dict_num(c, "Unseen"), dict_num(c, "Messages"));
	put_time(dict_num(c, "LastActivity"));
	putchar('\t');
	if (dict_find(c, "LastMessage", &last)) {
		dbus_message_iter_recurse(&last, &a);
		if (dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY) {
			printf("%s ", arrow(dict_str(&a, "Direction")));
			put_text(&a);
		}
	}
	putchar('\n');
}

static int cmd_conversations(int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	DBusMessageIter it, list, c;
	DBusConnection *conn;
	DBusMessage *reply;
	bool json = false;
	int r;

	r = parse_options(argc, argv, conversations_usage, &json, NULL);
	if (r >= 0)
		return r;
	if (!nargs(argc, 1, "conversations", conversations_usage))
		return EXIT_USAGE;
	conn = connect_daemon(true);
	if (!conn)
		return 1;
	path = account_path(argv[optind]);
	reply = call_account(conn, new_call(path, IFACE_ACCOUNT, "ListConversations"), argv[optind],
			     "ListConversations");
	if (!reply) {
		dbus_connection_unref(conn);
		return 1;
	}
	dbus_message_iter_init(reply, &it);
	for (dbus_message_iter_recurse(&it, &list);
	     dbus_message_iter_get_arg_type(&list) == DBUS_TYPE_ARRAY;
	     dbus_message_iter_next(&list)) {
		dbus_message_iter_recurse(&list, &c);
		if (json) {
			json_dict(&c);
			putchar('\n');
		} else {
			print_conversation(&c);
		}
	}
	dbus_message_unref(reply);
	dbus_connection_unref(conn);
	return finish_stdout(0);
}

/* ---- chat ------------------------------------------------------------------- */

/* TIME DIRECTION STATUS TEXT, the sender before the text of a received
 * message in a group. */
static void print_chat_line(const DBusMessageIter *m, bool group)
{
	const char *status = dict_str(m, "Status"), *dir = dict_str(m, "Direction");

	put_time(dict_num(m, "Date"));
	printf(" %s %-9s ", arrow(dir), *status ? status : "-");
	if (group && strcmp(dir, "sent")) {
		put_field(dict_str(m, "From"));
		fputs(": ", stdout);
	}
	put_text(m);
	putchar('\n');
}

static int cmd_chat(int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ DBusMessage **pages = NULL;
	const char *conv;
	DBusMessageIter it, list, m;
	DBusConnection *conn;
	DBusMessage *reply;
	unsigned limit = CHAT_DEFAULT_LIMIT, n_pages = 0, got = 0;
	dbus_uint64_t before = 0;
	bool json = false, group = false;
	int r;

	r = parse_options(argc, argv, chat_usage, &json, &limit);
	if (r >= 0)
		return r;
	if (!nargs(argc, 2, "chat", chat_usage))
		return EXIT_USAGE;
	conv = argv[optind + 1];
	conn = connect_daemon(true);
	if (!conn)
		return 1;
	path = account_path(argv[optind]);
	/* Is it a group (the sender is shown)?  From its conversation dict. */
	reply = call_account(conn, new_call(path, IFACE_ACCOUNT, "ListConversations"), argv[optind],
			     "ListConversations");
	if (!reply) {
		dbus_connection_unref(conn);
		return 1;
	}
	dbus_message_iter_init(reply, &it);
	for (dbus_message_iter_recurse(&it, &list);
	     dbus_message_iter_get_arg_type(&list) == DBUS_TYPE_ARRAY;
	     dbus_message_iter_next(&list)) {
		dbus_message_iter_recurse(&list, &m);
		if (!strcmp(dict_str(&m, "ConversationId"), conv))
			group = dict_num(&m, "IsGroup");
	}
	dbus_message_unref(reply);
	/* The newest `limit` messages, newest first, in pages. */
	pages = xmalloc(sizeof(*pages) * ((limit + 999) / 1000 + 1));
	while (got < limit) {
		dbus_uint32_t want = limit - got > 1000 ? 1000 : limit - got, n = 0;
		DBusMessage *q = new_call(path, IFACE_ACCOUNT, "ListConversationMessages");

		if (!dbus_message_append_args(q, DBUS_TYPE_STRING, &conv, DBUS_TYPE_UINT64, &before,
					      DBUS_TYPE_UINT32, &want, DBUS_TYPE_INVALID))
			dbus_oom();
		reply = call_account(conn, q, argv[optind], "ListConversationMessages");
		if (!reply) {
			r = 1;
			goto out;
		}
		pages[n_pages++] = reply;
		dbus_message_iter_init(reply, &it);
		for (dbus_message_iter_recurse(&it, &list);
		     dbus_message_iter_get_arg_type(&list) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&list), n++) {
			dbus_message_iter_recurse(&list, &m);
			before = (dbus_uint64_t)dict_num(&m, "Id");
		}
		got += n;
		if (n < want)
			break;
	}
	/* Oldest first, as a chat view reads. */
	for (unsigned p = n_pages; p-- > 0;) {
		DBusMessageIter *v;
		unsigned n = 0, k;

		dbus_message_iter_init(pages[p], &it);
		dbus_message_iter_recurse(&it, &list);
		for (DBusMessageIter l = list;
		     dbus_message_iter_get_arg_type(&l) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&l))
			n++;
		v = xmalloc(sizeof(*v) * (n ? n : 1));
		for (k = 0; dbus_message_iter_get_arg_type(&list) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&list), k++)
			dbus_message_iter_recurse(&list, &v[k]);
		while (k-- > 0) {
			if (json) {
				json_dict(&v[k]);
				putchar('\n');
			} else {
				print_chat_line(&v[k], group);
			}
		}
		free(v);
	}
	r = 0;
out:
	for (unsigned p = 0; p < n_pages; p++)
		dbus_message_unref(pages[p]);
	dbus_connection_unref(conn);
	return finish_stdout(r);
}

/* ---- send ------------------------------------------------------------------- */

/* A memfd holding what fd reads to its end, or -errno. */
static int copy_to_memfd(int fd)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int mfd, r;

	r = cpmsync_read_all(fd, (size_t)64 << 20, &data, &len);
	if (r < 0)
		return r;
	mfd = memfd_create("cpmctl-send", MFD_CLOEXEC);
	if (mfd < 0)
		return -errno;
	r = cpmsync_write_all(mfd, data, len);
	if (r < 0 || lseek(mfd, 0, SEEK_SET) < 0) {
		close(mfd);
		return r < 0 ? r : -errno;
	}
	return mfd;
}

static int cmd_send(int argc, char **argv)
{
	_cleanup_free_ char *path = NULL;
	const char *file, *name, *folder_path, *folder = NULL;
	const char **flags = NULL;
	dbus_int64_t date = 0;
	dbus_uint64_t id;
	DBusConnection *conn;
	DBusMessage *m, *reply, *props;
	DBusMessageIter it, v;
	DBusError e;
	struct stat st;
	int fd, r;

	r = parse_options(argc, argv, send_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (!nargs(argc, 2, "send", send_usage))
		return EXIT_USAGE;
	file = argv[optind + 1];
	name = strcmp(file, "-") ? file : "standard input";
	/* The file first: a missing file needs no daemon. */
	fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "cpmctl: cannot read '%s': %s\n", name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cpmctl: cannot read '%s': %s\n", name, strerror(EISDIR));
		close(fd);
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		int mfd = copy_to_memfd(fd);

		close(fd);
		if (mfd < 0) {
			fprintf(stderr, "cpmctl: cannot read '%s': %s\n", name, strerror(-mfd));
			return 1;
		}
		fd = mfd;
	}
	conn = connect_daemon(true);
	if (!conn) {
		close(fd);
		return 1;
	}
	if (!dbus_connection_can_send_type(conn, DBUS_TYPE_UNIX_FD)) {
		fputs("cpmctl: send: this bus connection cannot pass file descriptors\n", stderr);
		close(fd);
		dbus_connection_unref(conn);
		return 1;
	}
	path = account_path(argv[optind]);
	m = new_call(path, IFACE_ACCOUNT, "StoreObject");
	if (!dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				      &flags, 0, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID))
		dbus_oom();
	close(fd);
	reply = call_account(conn, m, argv[optind], "StoreObject");
	if (!reply) {
		dbus_connection_unref(conn);
		return 1;
	}
	dbus_error_init(&e);
	if (!dbus_message_get_args(reply, &e, DBUS_TYPE_OBJECT_PATH, &folder_path, DBUS_TYPE_UINT64,
				   &id, DBUS_TYPE_INVALID)) {
		report_error(&e, "StoreObject");
		dbus_message_unref(reply);
		dbus_connection_unref(conn);
		return 1;
	}
	/* The folder's name, for people. */
	m = new_call(folder_path, IFACE_PROPERTIES, "Get");
	{
		const char *iface = IFACE_FOLDER, *prop = "Name";

		if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &prop,
					      DBUS_TYPE_INVALID))
			dbus_oom();
	}
	props = call_account(conn, m, argv[optind], "Get Name");
	if (props) {
		dbus_message_iter_init(props, &it);
		if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_VARIANT) {
			dbus_message_iter_recurse(&it, &v);
			if (dbus_message_iter_get_arg_type(&v) == DBUS_TYPE_STRING)
				dbus_message_iter_get_basic(&v, &folder);
		}
	}
	/* FOLDER TAB ID */
	put_field(folder ? folder : folder_path);
	printf("\t%" PRIu64 "\n", (uint64_t)id);
	if (props)
		dbus_message_unref(props);
	dbus_message_unref(reply);
	dbus_connection_unref(conn);
	return finish_stdout(0);
}

int cpmctl_cpm_command(const char *cmd, int argc, char **argv)
{
	if (!strcmp(cmd, "conversations"))
		return cmd_conversations(argc, argv);
	if (!strcmp(cmd, "chat"))
		return cmd_chat(argc, argv);
	if (!strcmp(cmd, "send"))
		return cmd_send(argc, argv);
	return -1;
}
