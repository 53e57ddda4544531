/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dbus/: the service over a private dbus-daemon (skipped when there is
 * none), with a real store and an offline session: objects, reads from
 * the store, a local change with its MessagesAdded signal, offline
 * errors, argument limits and the well-known name.  Client and service
 * share one cpmsync loop (the client through the same libdbus glue).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "dbus-object.h"
#include "dbus-util.h"
#include "folder.h"
#include "service-private.h"
#include "service.h"
#include "store/store-sync.h"
#include "store/store.h"
#include "testlib.h"
#include "util/msg-summary.h"

static const char message[] = "Message-ID: <m1@example.org>\r\n"
			      "From: Alice <a@example.org>\r\n"
			      "To: b@example.org, c@example.org\r\n"
			      "Subject: hello\r\n"
			      "\r\n"
			      "body text\r\n";

static char tmpdir[64];
static pid_t daemon_pid;
static char address[512];
static struct cpmsync_loop *loop;
static struct cpmsync_store *store;
static struct cpmsync_session *session;
static struct cpm_service *svc;
static DBusConnection *client;
static struct cpm_dbus_glue *client_glue;
static int64_t inbox_id, msg_id;
static char inbox_path[128];
static int added_signals;
/* The ConversationRemoved signals seen, "CONVERSATION-ID\n" each. */
static char removed_signals[512];
/* The last ConversationChanged seen (NULL: none since setup or the last
 * forget_conv_changed()). */
static DBusMessage *conv_changed_last;
static char failed_signal[512]; /* the last OperationFailed, as flat_dict() */
/* The Account1 properties of the last InterfacesAdded that had them, as flat_dict(). */
static char account_added[1024];
static int failed_signals;
/* What hooks.call_failed was given: "ACCOUNT|WHAT|REASON" lines. */
static char store_failures[4096];

static void record_call_failed(void *userdata, const char *account, const char *what,
			       const char *reason)
{
	size_t n = strlen(store_failures);

	(void)userdata;
	snprintf(store_failures + n, sizeof(store_failures) - n, "%s|%s|%s\n",
		 account ? account : "-", what, reason);
}

static const struct cpm_service_hooks test_hooks = {
	.call_failed = record_call_failed,
};

static int password_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup("x");
	return 0;
}

static bool start_daemon(void)
{
	int p[2];
	ssize_t n;
	size_t len = 0;

	if (access("/usr/bin/dbus-daemon", X_OK) < 0 || pipe(p) < 0)
		return false;
	daemon_pid = fork();
	if (daemon_pid == 0) {
		char addr[128];

		snprintf(addr, sizeof(addr), "--address=unix:dir=%s", tmpdir);
		int null = open("/dev/null", O_WRONLY);

		dup2(p[1], 1);
		dup2(null, 2);
		close(p[0]);
		execl("/usr/bin/dbus-daemon", "dbus-daemon", "--session", "--nofork",
		      "--print-address=1", addr, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(address) - 1 && (n = read(p[0], address + len, 1)) == 1) {
		if (address[len] == '\n')
			break;
		len++;
	}
	address[len] = '\0';
	close(p[0]);
	return len > 0;
}

/* An a{sv} at it as "Key=value;..." (s, t, u, x, at values). */
static void flat_dict(DBusMessageIter *it, char *out, size_t size)
{
	DBusMessageIter d, e, v, a;
	size_t len = 0;

	out[0] = '\0';
	ck_assert_int_eq(dbus_message_iter_get_arg_type(it), DBUS_TYPE_ARRAY);
	for (dbus_message_iter_recurse(it, &d);
	     dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d)) {
		const char *key, *sv;
		dbus_uint64_t t;
		dbus_uint32_t u;
		dbus_int64_t x;
		dbus_bool_t b;

		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &v);
		len += (size_t)snprintf(out + len, size - len, "%s=", key);
		switch (dbus_message_iter_get_arg_type(&v)) {
		case DBUS_TYPE_STRING:
		case DBUS_TYPE_OBJECT_PATH:
			dbus_message_iter_get_basic(&v, &sv);
			len += (size_t)snprintf(out + len, size - len, "%s;", sv);
			break;
		case DBUS_TYPE_UINT64:
			dbus_message_iter_get_basic(&v, &t);
			len += (size_t)snprintf(out + len, size - len, "%llu;",
						(unsigned long long)t);
			break;
		case DBUS_TYPE_UINT32:
			dbus_message_iter_get_basic(&v, &u);
			len += (size_t)snprintf(out + len, size - len, "%u;", u);
			break;
		case DBUS_TYPE_INT64:
			dbus_message_iter_get_basic(&v, &x);
			len += (size_t)snprintf(out + len, size - len, "%lld;", (long long)x);
			break;
		case DBUS_TYPE_BOOLEAN:
			dbus_message_iter_get_basic(&v, &b);
			len += (size_t)snprintf(out + len, size - len, "%s;", b ? "true" : "false");
			break;
		case DBUS_TYPE_ARRAY:
			/* ay of ids (uint64) or as (strings) */
			for (dbus_message_iter_recurse(&v, &a);
			     dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_UINT64 ||
			     dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING;
			     dbus_message_iter_next(&a)) {
				if (dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING) {
					dbus_message_iter_get_basic(&a, &sv);
					len += (size_t)snprintf(out + len, size - len, "%s,", sv);
					continue;
				}
				dbus_message_iter_get_basic(&a, &t);
				len += (size_t)snprintf(out + len, size - len, "%llu,",
							(unsigned long long)t);
			}
			len += (size_t)snprintf(out + len, size - len, ";");
			break;
		default:
			ck_abort_msg("%s: unexpected type", key);
		}
		ck_assert_uint_lt(len, size);
	}
}

static DBusHandlerResult client_filter(DBusConnection *c, DBusMessage *m, void *ud)
{
	DBusMessageIter it;

	(void)c;
	(void)ud;
	if (dbus_message_is_signal(m, "org.cpmsync.Folder1", "MessagesAdded"))
		added_signals++;
	if (dbus_message_is_signal(m, "org.cpmsync.Account1", "ConversationChanged")) {
		if (conv_changed_last)
			dbus_message_unref(conv_changed_last);
		conv_changed_last = dbus_message_ref(m);
	}
	if (dbus_message_is_signal(m, "org.cpmsync.Account1", "ConversationRemoved")) {
		const char *cid = "?";
		size_t n = strlen(removed_signals);

		ck_assert(
			dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &cid, DBUS_TYPE_INVALID));
		snprintf(removed_signals + n, sizeof(removed_signals) - n, "%s\n", cid);
	}
	if (dbus_message_is_signal(m, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded")) {
		DBusMessageIter ifaces, entry;
		const char *iface;

		/* (o, a{sa{sv}}): the Account1 entry's dict. */
		dbus_message_iter_init(m, &it);
		dbus_message_iter_next(&it);
		for (dbus_message_iter_recurse(&it, &ifaces);
		     dbus_message_iter_get_arg_type(&ifaces) == DBUS_TYPE_DICT_ENTRY;
		     dbus_message_iter_next(&ifaces)) {
			dbus_message_iter_recurse(&ifaces, &entry);
			dbus_message_iter_get_basic(&entry, &iface);
			dbus_message_iter_next(&entry);
			if (!strcmp(iface, "org.cpmsync.Account1"))
				flat_dict(&entry, account_added, sizeof(account_added));
		}
	}
	if (dbus_message_is_signal(m, "org.cpmsync.Account1", "OperationFailed")) {
		failed_signals++;
		dbus_message_iter_init(m, &it);
		flat_dict(&it, failed_signal, sizeof(failed_signal));
	}
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

static void setup(void)
{
	struct cpmsync_account account = {
		.name = "acc-1",
		.host = "127.0.0.1",
		.port = 1,
		.security = CPMSYNC_SECURITY_NONE,
		.user = "u",
		.password_cb = password_cb,
	};
	char path[128], *err = NULL;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-dbus-service-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	address[0] = '\0';
	daemon_pid = 0;
	if (!start_daemon())
		return;
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	snprintf(path, sizeof(path), "%s/store.db", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(path, 0, &store, &err), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Work", &inbox_id), 0);
	ck_assert_int_eq(cpmsync_op_store(store, "acc-1", "Work", message, sizeof(message) - 1,
					  NULL, 1700000000, &msg_id),
			 0);
	ck_assert_int_eq(cpmsync_session_new(loop, store, &account, NULL, NULL, NULL, &session), 0);
	cpmsync_session_set_online(session, false);

	store_failures[0] = '\0';
	ck_assert_int_eq(
		cpm_service_new(loop, store, address, "9.9", &test_hooks, NULL, &svc, &err), 0);
	ck_assert_int_eq(cpm_service_add_account(svc, session, "127.0.0.1", "u", NULL), 0);
	ck_assert_int_eq(cpm_service_start(svc, &err), 0);
	snprintf(inbox_path, sizeof(inbox_path), "/org/cpmsync/acc_2d1/folder%lld",
		 (long long)inbox_id);

	client = dbus_connection_open_private(address, NULL);
	ck_assert_ptr_nonnull(client);
	ck_assert(dbus_bus_register(client, NULL));
	dbus_connection_set_exit_on_disconnect(client, FALSE);
	dbus_bus_add_match(client, "type='signal',interface='org.cpmsync.Folder1'", NULL);
	dbus_bus_add_match(client, "type='signal',interface='org.cpmsync.Account1'", NULL);
	dbus_bus_add_match(client, "type='signal',interface='org.freedesktop.DBus.ObjectManager'",
			   NULL);
	account_added[0] = '\0';
	dbus_connection_add_filter(client, client_filter, NULL, NULL);
	ck_assert_int_eq(cpm_dbus_glue_attach(client, loop, &client_glue), 0);
	added_signals = 0;
	removed_signals[0] = '\0';
	conv_changed_last = NULL;
	failed_signals = 0;
	failed_signal[0] = '\0';
}

static void teardown(void)
{
	if (client) {
		client_glue = cpm_dbus_glue_detach(client_glue);
		dbus_connection_close(client);
		dbus_connection_unref(client);
		client = NULL;
	}
	if (conv_changed_last)
		dbus_message_unref(conv_changed_last);
	conv_changed_last = NULL;
	svc = cpm_service_free(svc);
	session = cpmsync_session_free(session);
	/* the session's cancellations run from the loop */
	if (loop)
		for (int i = 0; i < 5; i++)
			cpmsync_loop_iterate(loop, 0);
	store = cpmsync_store_close(store);
	loop = cpmsync_loop_free(loop);
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
	}
	test_rm_rf(tmpdir);
}

#define SKIP_WITHOUT_DAEMON()                                                                      \
	do {                                                                                       \
		if (!address[0]) {                                                                 \
			fprintf(stderr, "no dbus-daemon: skipped\n");                              \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void pending_done(DBusPendingCall *p, void *ud)
{
	(void)p;
	*(bool *)ud = true;
}

/* Calls and runs the loop until the reply; returns it (to unref). */
static DBusMessage *call_msg(DBusMessage *m)
{
	DBusPendingCall *p = NULL;
	DBusMessage *reply;
	bool done = false;

	ck_assert(dbus_connection_send_with_reply(client, m, &p, 5000));
	ck_assert_ptr_nonnull(p);
	dbus_pending_call_set_notify(p, pending_done, &done, NULL);
	if (dbus_pending_call_get_completed(p))
		done = true;
	ck_assert(test_loop_run_until(loop, &done, 5000));
	reply = dbus_pending_call_steal_reply(p);
	dbus_pending_call_unref(p);
	dbus_message_unref(m);
	ck_assert_ptr_nonnull(reply);
	return reply;
}

static DBusMessage *new_call(const char *path, const char *iface, const char *member)
{
	DBusMessage *m = dbus_message_new_method_call("org.cpmsync", path, iface, member);

	ck_assert_ptr_nonnull(m);
	return m;
}

static void assert_error(DBusMessage *r, const char *name, const char *text_prefix)
{
	const char *text = "";

	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_ERROR);
	ck_assert_str_eq(dbus_message_get_error_name(r), name);
	dbus_message_get_args(r, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID);
	if (text_prefix)
		ck_assert_msg(!strncmp(text, text_prefix, strlen(text_prefix)), "error text '%s'",
			      text);
	dbus_message_unref(r);
}

START_TEST(test_objects)
{
	DBusMessageIter it, a, e;
	DBusMessage *r;
	const char *path;
	bool account = false, folder = false;

	SKIP_WITHOUT_DAEMON();
	r = call_msg(new_call("/org/cpmsync", "org.freedesktop.DBus.ObjectManager",
			      "GetManagedObjects"));
	ck_assert_str_eq(dbus_message_get_signature(r), "a{oa{sa{sv}}}");
	dbus_message_iter_init(r, &it);
	dbus_message_iter_recurse(&it, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&a)) {
		dbus_message_iter_recurse(&a, &e);
		dbus_message_iter_get_basic(&e, &path);
		if (!strcmp(path, "/org/cpmsync/acc_2d1"))
			account = true;
		if (!strcmp(path, inbox_path))
			folder = true;
	}
	ck_assert(account && folder);
	dbus_message_unref(r);

	/* A property of each kind. */
	{
		const char *iface = "org.cpmsync.Account1", *name = "State", *v;
		DBusMessage *m =
			new_call("/org/cpmsync/acc_2d1", "org.freedesktop.DBus.Properties", "Get");
		DBusMessageIter vi;

		dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
					 DBUS_TYPE_INVALID);
		r = call_msg(m);
		dbus_message_iter_init(r, &it);
		dbus_message_iter_recurse(&it, &vi);
		dbus_message_iter_get_basic(&vi, &v);
		ck_assert_str_eq(v, "offline");
		dbus_message_unref(r);
	}

	/* FindFolder */
	{
		const char *name = "Work", *p;
		DBusMessage *m =
			new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "FindFolder");

		dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
		r = call_msg(m);
		ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_OBJECT_PATH, &p,
						DBUS_TYPE_INVALID));
		ck_assert_str_eq(p, inbox_path);
		dbus_message_unref(r);
		name = "Nope";
		m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "FindFolder");
		dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
		assert_error(call_msg(m), "org.cpmsync.Error.NotFound", "name: no folder");
	}

	/* A folder name with a control or bidi character is refused at once
	 * (it used to be journaled and fail at replay). */
	{
		const char *name = "Bad\x1b]0;x\x07";
		DBusMessage *m =
			new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "CreateFolder");

		dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
		assert_error(call_msg(m), "org.freedesktop.DBus.Error.InvalidArgs",
			     "name: contains the control character U+001B at byte 3; names may not "
			     "contain control characters (C0, DEL, C1) or bidirectional formatting "
			     "characters");
		name = "Work\xe2\x81\xa6";
		m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "CreateFolder");
		dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
		assert_error(call_msg(m), "org.freedesktop.DBus.Error.InvalidArgs",
			     "name: contains the bidirectional formatting character U+2066 at byte "
			     "4; names may not contain control characters (C0, DEL, C1) or "
			     "bidirectional formatting characters");
	}
}
END_TEST

/*
 * An account added while the service runs: its InterfacesAdded carries
 * Host, User and CpmRoot as configured (they were "", "" and "Default",
 * the values only in a PropertiesChanged right after).
 */
START_TEST(test_account_added_with_settings)
{
	struct cpmsync_account account = {
		.name = "acc-2",
		.host = "imap.example.org",
		.port = 1,
		.security = CPMSYNC_SECURITY_NONE,
		.user = "bob",
		.password_cb = password_cb,
	};
	struct cpmsync_session *s2 = NULL;

	SKIP_WITHOUT_DAEMON();
	ck_assert_int_eq(cpmsync_session_new(loop, store, &account, NULL, NULL, NULL, &s2), 0);
	cpmsync_session_set_online(s2, false);
	ck_assert_int_eq(cpm_service_add_account(svc, s2, "imap.example.org", "bob", "Chats"), 0);
	for (int i = 0; i < 200 && !strstr(account_added, "User="); i++)
		cpmsync_loop_iterate(loop, 10);
	ck_assert_msg(strstr(account_added, "Host=imap.example.org;"), "%s", account_added);
	ck_assert_msg(strstr(account_added, "User=bob;"), "%s", account_added);
	ck_assert_msg(strstr(account_added, "CpmRoot=Chats;"), "%s", account_added);
	cpm_service_remove_account(svc, "acc-2");
	cpmsync_session_free(s2);
}
END_TEST

START_TEST(test_list_fetch)
{
	dbus_uint64_t after = 0, id = (dbus_uint64_t)msg_id;
	dbus_uint32_t limit = 10001;
	const char *section = "";
	const unsigned char *bytes;
	DBusMessageIter it, a;
	DBusMessage *m, *r;
	int n;

	SKIP_WITHOUT_DAEMON();
	m = new_call(inbox_path, "org.cpmsync.Folder1", "ListMessages");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &after, DBUS_TYPE_UINT32, &limit,
				 DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "limit: at most 10000");

	/* At most limit: 0 lists none, 1 the one message. */
	for (limit = 0; limit <= 1; limit++) {
		m = new_call(inbox_path, "org.cpmsync.Folder1", "ListMessages");
		dbus_message_append_args(m, DBUS_TYPE_UINT64, &after, DBUS_TYPE_UINT32, &limit,
					 DBUS_TYPE_INVALID);
		r = call_msg(m);
		ck_assert_str_eq(dbus_message_get_signature(r), "aa{sv}");
		dbus_message_iter_init(r, &it);
		ck_assert_int_eq(dbus_message_iter_get_element_count(&it), (int)limit);
		dbus_message_unref(r);
	}

	/* Wrong signature */
	m = new_call(inbox_path, "org.cpmsync.Folder1", "ListMessages");
	dbus_message_append_args(m, DBUS_TYPE_UINT32, &limit, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS,
		     "wrong arguments: expected signature 'tu'");

	/* Fetch the whole message, then the header. */
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Fetch");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
				 DBUS_TYPE_INVALID);
	r = call_msg(m);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_iter_init(r, &it);
	dbus_message_iter_recurse(&it, &a);
	dbus_message_iter_get_fixed_array(&a, &bytes, &n);
	ck_assert_int_eq(n, (int)sizeof(message) - 1);
	ck_assert(!memcmp(bytes, message, (size_t)n));
	dbus_message_unref(r);

	section = "TEXT";
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Fetch");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
				 DBUS_TYPE_INVALID);
	r = call_msg(m);
	dbus_message_iter_init(r, &it);
	dbus_message_iter_recurse(&it, &a);
	dbus_message_iter_get_fixed_array(&a, &bytes, &n);
	ck_assert_int_eq(n, 11);
	ck_assert(!memcmp(bytes, "body text\r\n", 11));
	dbus_message_unref(r);

	section = "1.FOO";
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Fetch");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
				 DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "section: ");

	/* FetchFd */
	section = "";
	m = new_call(inbox_path, "org.cpmsync.Folder1", "FetchFd");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
				 DBUS_TYPE_INVALID);
	r = call_msg(m);
	{
		char buf[256];
		int fd = -1;
		ssize_t k;

		ck_assert(
			dbus_message_get_args(r, NULL, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_INVALID));
		k = pread(fd, buf, sizeof(buf), 0);
		ck_assert_int_eq(k, (ssize_t)sizeof(message) - 1);
		ck_assert(!memcmp(buf, message, (size_t)k));
		close(fd);
	}
	dbus_message_unref(r);

	/* Not in this folder */
	id = 999999;
	m = new_call(inbox_path, "org.cpmsync.Folder1", "GetMessage");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), "org.cpmsync.Error.NotFound", "id: ");
}
END_TEST

START_TEST(test_store_signal)
{
	const unsigned char *content = (const unsigned char *)message;
	const char *flags[] = { "\\Seen" }, *bad[] = { "a b" };
	const char **fp = flags;
	dbus_int64_t date = 0;
	dbus_uint64_t id = 0;
	DBusMessageIter it, a;
	DBusMessage *m, *r;
	bool never = false;

	SKIP_WITHOUT_DAEMON();
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Store");
	dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &content,
				 (int)sizeof(message) - 1, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &fp,
				 1, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	r = call_msg(m);
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
	ck_assert(id > (dbus_uint64_t)msg_id);
	dbus_message_unref(r);
	/* The drain runs ~20 ms after the commit. */
	test_loop_run_until(loop, &never, 300);
	ck_assert_int_eq(added_signals, 1);

	fp = bad;
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Store");
	dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &content,
				 (int)sizeof(message) - 1, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &fp,
				 1, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "flags: ");

	/* Search offline: the local store answers. */
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Search");
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &a);
	cpm_dict_append_split(&a, "Flags", "\\Seen", ' ');
	dbus_message_iter_close_container(&it, &a);
	r = call_msg(m);
	ck_assert_str_eq(dbus_message_get_signature(r), "at");
	{
		const dbus_uint64_t *ids;
		int n;

		dbus_message_iter_init(r, &it);
		dbus_message_iter_recurse(&it, &a);
		dbus_message_iter_get_fixed_array(&a, &ids, &n);
		ck_assert_int_eq(n, 1);
		ck_assert_uint_eq(ids[0], id);
	}
	dbus_message_unref(r);
}
END_TEST

/* StoreFd of the read end of a new pipe, sent without waiting; *ret_wr the write end. */
static DBusPendingCall *store_fd_async(int *ret_wr, bool *done)
{
	const char *flags[] = { "\\Seen" }, **fp = flags;
	dbus_int64_t date = 0;
	DBusPendingCall *p = NULL;
	DBusMessage *m;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	m = new_call(inbox_path, "org.cpmsync.Folder1", "StoreFd");
	dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fds[0], DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				 &fp, 1, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	close(fds[0]);
	*done = false;
	ck_assert(dbus_connection_send_with_reply(client, m, &p, 10000));
	dbus_message_unref(m);
	dbus_pending_call_set_notify(p, pending_done, done, NULL);
	*ret_wr = fds[1];
	return p;
}

static DBusMessage *reply_of(DBusPendingCall *p, bool *done)
{
	DBusMessage *r;

	ck_assert(test_loop_run_until(loop, done, 5000));
	r = dbus_pending_call_steal_reply(p);
	dbus_pending_call_unref(p);
	return r;
}

/* Issue 13: a global cap on StoreFd pipes read at once and on the bytes they hold. */
START_TEST(test_store_fd_pipe_limits)
{
	DBusPendingCall *p1, *p2, *p3, *p4;
	bool d1, d2, d3, d4, never = false;
	int w1, w2, w3, w4;
	char chunk[600];
	DBusMessage *r;
	dbus_uint64_t id = 0;
	size_t off = 0;

	SKIP_WITHOUT_DAEMON();
	cpm_folder_set_pipe_limits(2, 1000);
	p1 = store_fd_async(&w1, &d1);
	p2 = store_fd_async(&w2, &d2);
	test_loop_run_until(loop, &never, 200);
	ck_assert(!d1 && !d2);
	/* A third pipe while two are read: refused at once, saying why. */
	p3 = store_fd_async(&w3, &d3);
	assert_error(reply_of(p3, &d3), "org.cpmsync.Error.Failed",
		     "content: 2 StoreFd and StoreObject pipes are being read already, the "
		     "most at once; try again when one is done or pass a regular file");
	close(w3);
	/* 600 bytes in each: the second crosses the 1000 bytes held in all. */
	memset(chunk, 'x', sizeof(chunk));
	while (off < sizeof(message) - 1)
		off += (size_t)write(w1, message + off, sizeof(message) - 1 - off);
	ck_assert_int_eq(write(w1, chunk, sizeof(chunk) - off), (ssize_t)(sizeof(chunk) - off));
	test_loop_run_until(loop, &never, 200);
	ck_assert_int_eq(write(w2, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	assert_error(reply_of(p2, &d2), "org.cpmsync.Error.Failed",
		     "content: the StoreFd and StoreObject pipes being read would hold more "
		     "than 1000 bytes in all, the limit; try again later or pass a regular "
		     "file");
	close(w2);
	/* The first one is unaffected and stored. */
	close(w1);
	r = reply_of(p1, &d1);
	ck_assert_msg(dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN, "%s",
		      dbus_message_get_error_name(r));
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
	ck_assert(id > 0);
	dbus_message_unref(r);
	/* All released: a new one is taken. */
	p4 = store_fd_async(&w4, &d4);
	ck_assert_int_eq(write(w4, message, sizeof(message) - 1), (ssize_t)(sizeof(message) - 1));
	close(w4);
	r = reply_of(p4, &d4);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_unref(r);
	cpm_folder_set_pipe_limits(CPM_MAX_PIPE_STORES, CPM_MAX_PIPE_BYTES);
}
END_TEST

/* The reading thread of StoreFd, held until the test opens the gate. */
static int gate[2] = { -1, -1 };
static pthread_t reader;
static bool reader_ran;

static void hold_reader(void)
{
	char c;

	reader = pthread_self();
	reader_ran = true;
	while (read(gate[0], &c, 1) < 0 && errno == EINTR)
		;
}

/*
 * Issue 13: a regular file on a file system that may block is read off the
 * loop.  The thread is held (as a stalled NFS read would be): D-Bus goes on
 * answering, and the store completes when the read does.
 */
START_TEST(test_store_fd_file_off_loop)
{
	const char *flags[] = { "\\Seen" }, **fp = flags;
	char path[128];
	dbus_int64_t date = 0;
	dbus_uint64_t id = 0;
	DBusPendingCall *p = NULL;
	DBusMessage *m, *r;
	bool done = false, never = false;
	int fd;

	SKIP_WITHOUT_DAEMON();
	ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
	reader_ran = false;
	cpm_folder_set_file_read_test(true, hold_reader);
	snprintf(path, sizeof(path), "%s/content.eml", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, message, sizeof(message) - 1), (ssize_t)(sizeof(message) - 1));
	m = new_call(inbox_path, "org.cpmsync.Folder1", "StoreFd");
	dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &fp,
				 1, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	close(fd);
	ck_assert(dbus_connection_send_with_reply(client, m, &p, 10000));
	dbus_message_unref(m);
	dbus_pending_call_set_notify(p, pending_done, &done, NULL);
	test_loop_run_until(loop, &never, 300);
	/* Held on its own thread; no answer yet, and the loop is free. */
	ck_assert(reader_ran);
	ck_assert(!pthread_equal(reader, pthread_self()));
	ck_assert(!done);
	r = call_msg(new_call(inbox_path, "org.freedesktop.DBus.Introspectable", "Introspect"));
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_unref(r);
	ck_assert(!done);
	/* Released: stored. */
	ck_assert_int_eq(write(gate[1], "x", 1), 1);
	ck_assert(test_loop_run_until(loop, &done, 5000));
	r = dbus_pending_call_steal_reply(p);
	dbus_pending_call_unref(p);
	ck_assert_msg(dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN, "%s",
		      dbus_message_get_error_name(r));
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID));
	dbus_message_unref(r);
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Fetch");
	{
		const char *section = "";
		const unsigned char *bytes;
		int n;
		DBusMessageIter it, a;

		dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
					 DBUS_TYPE_INVALID);
		r = call_msg(m);
		dbus_message_iter_init(r, &it);
		dbus_message_iter_recurse(&it, &a);
		dbus_message_iter_get_fixed_array(&a, &bytes, &n);
		ck_assert_int_eq(n, (int)sizeof(message) - 1);
		ck_assert(!memcmp(bytes, message, sizeof(message) - 1));
		dbus_message_unref(r);
	}
	cpm_folder_set_file_read_test(false, NULL);
	close(gate[0]);
	close(gate[1]);
}
END_TEST

/* StoreObject of the read end of a new pipe, sent without waiting; *ret_wr the write end. */
static DBusPendingCall *store_object_async(int *ret_wr, bool *done)
{
	const char **fp = NULL;
	dbus_int64_t date = 0;
	DBusPendingCall *p = NULL;
	DBusMessage *m;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "StoreObject");
	dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fds[0], DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				 &fp, 0, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	close(fds[0]);
	*done = false;
	ck_assert(dbus_connection_send_with_reply(client, m, &p, 10000));
	dbus_message_unref(m);
	dbus_pending_call_set_notify(p, pending_done, done, NULL);
	*ret_wr = fds[1];
	return p;
}

static const char cpm_object[] = "Message-ID: <obj1@example.org>\r\n"
				 "From: tel:+15550001\r\n"
				 "Conversation-ID: conv-obj\r\n"
				 "\r\n"
				 "hello\r\n";

/*
 * A failed Store, StoreFd or StoreObject reaches hooks.call_failed (the
 * daemon logs it), whether it fails at once or once its pipe is read;
 * a StoreFd that succeeds does not.  (Issue: a failed StoreFd went
 * unlogged.)
 */
START_TEST(test_store_failures_reported)
{
	const char *recent[] = { "\\Recent" }, **fp = recent, **none = NULL;
	const unsigned char *content = (const unsigned char *)message;
	dbus_int64_t date = 0;
	DBusPendingCall *p;
	DBusMessage *m, *r;
	char path[128];
	bool done;
	int w, fd;

	SKIP_WITHOUT_DAEMON();
	/* A pipe closed at once: empty, found once it is read. */
	p = store_fd_async(&w, &done);
	close(w);
	assert_error(reply_of(p, &done), DBUS_ERROR_INVALID_ARGS, "content: empty");
	/* A regular file that is no message: refused at once. */
	snprintf(path, sizeof(path), "%s/list.txt", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "shopping list", 13), 13);
	m = new_call(inbox_path, "org.cpmsync.Folder1", "StoreFd");
	dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				 &none, 0, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	close(fd);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "content: not a message");
	/* Bad arguments, before any content is read. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	m = new_call(inbox_path, "org.cpmsync.Folder1", "StoreFd");
	dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &fp,
				 1, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	close(fd);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "flags: ");
	m = new_call(inbox_path, "org.cpmsync.Folder1", "Store");
	dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &content,
				 (int)sizeof(message) - 1, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &fp,
				 1, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "flags: ");
	p = store_object_async(&w, &done);
	close(w);
	assert_error(reply_of(p, &done), DBUS_ERROR_INVALID_ARGS, "content: empty");
	/* One that succeeds: nothing more. */
	p = store_fd_async(&w, &done);
	ck_assert_int_eq(write(w, message, sizeof(message) - 1), (ssize_t)(sizeof(message) - 1));
	close(w);
	r = reply_of(p, &done);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_unref(r);

	ck_assert_str_eq(store_failures,
			 "acc-1|StoreFd into folder 'Work'|content: empty\n"
			 "acc-1|StoreFd into folder 'Work'|content: not a message: line 1 "
			 "(\"shopping list\") is not a header field (Name: value) or the "
			 "continuation of one; a message starts with its header, ended by an "
			 "empty line (RFC 5322)\n"
			 "acc-1|StoreFd into folder 'Work'|flags: flag \\Recent cannot be set (the "
			 "server sets it)\n"
			 "acc-1|Store into folder 'Work'|flags: flag \\Recent cannot be set (the "
			 "server sets it)\n"
			 "acc-1|StoreObject|content: empty\n");
}
END_TEST

/*
 * Any other call that changes something reaches hooks.call_failed too when
 * it fails (SetFlags, CreateFolder, AddAccount ...: they went unlogged),
 * naming the account (none for an AddAccount of no valid name) and the
 * call; one that works does not.
 */
START_TEST(test_write_failures_reported)
{
	const char *bogus[] = { "\\Bogus" }, **add = bogus, **none = NULL;
	const dbus_uint64_t ids[] = { 1 }, *idp = ids;
	const char *bad = "a/", *good = "Fine", *no_name = "";
	DBusMessageIter it, d;
	DBusMessage *m, *r;

	SKIP_WITHOUT_DAEMON();
	store_failures[0] = '\0';
	m = new_call(inbox_path, "org.cpmsync.Folder1", "SetFlags");
	dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_UINT64, &idp, 1, DBUS_TYPE_ARRAY,
				 DBUS_TYPE_STRING, &add, 1, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				 &none, 0, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "add: ");
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "CreateFolder");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &bad, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "name: ");
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "CreateFolder");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &good, DBUS_TYPE_INVALID);
	r = call_msg(m);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_unref(r);
	m = new_call("/org/cpmsync", "org.cpmsync.Manager1", "AddAccount");
	dbus_message_iter_init_append(m, &it);
	ck_assert(dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &no_name));
	ck_assert(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d));
	ck_assert(dbus_message_iter_close_container(&it, &d));
	assert_error(call_msg(m), DBUS_ERROR_INVALID_ARGS, "name: ");

	ck_assert_str_eq(store_failures,
			 "acc-1|SetFlags in folder 'Work'|add: flag '\\Bogus' is not a system flag "
			 "(\\Answered, \\Deleted, \\Draft, \\Flagged, \\Seen)\n"
			 "acc-1|CreateFolder|name: invalid folder name \"a/\": empty level\n"
			 "-|AddAccount|name: must not be empty\n");
}
END_TEST

/*
 * Account1.StoreObject takes the content the way StoreFd does: its pipes
 * count against the same global caps, and a regular file on a file system
 * that may block is read off the loop.
 */
START_TEST(test_store_object_fd_protections)
{
	DBusPendingCall *p1, *p2, *p3, *p4;
	bool d1, d2, d3, d4, never = false;
	int w1, w2, w3, w4, fd;
	const char *folder = NULL, **fp = NULL;
	dbus_int64_t date = 0;
	dbus_uint64_t id = 0;
	DBusMessage *m, *r;
	char path[128];

	SKIP_WITHOUT_DAEMON();
	/* One pipe at once: a StoreFd pipe blocks a StoreObject pipe, and back. */
	cpm_folder_set_pipe_limits(1, 1000);
	p1 = store_fd_async(&w1, &d1);
	test_loop_run_until(loop, &never, 200);
	ck_assert(!d1);
	p2 = store_object_async(&w2, &d2);
	assert_error(reply_of(p2, &d2), "org.cpmsync.Error.Failed",
		     "content: 1 StoreFd and StoreObject pipes are being read already, the "
		     "most at once; try again when one is done or pass a regular file");
	close(w2);
	close(w1);
	assert_error(reply_of(p1, &d1), DBUS_ERROR_INVALID_ARGS, "content: empty");
	p3 = store_object_async(&w3, &d3);
	test_loop_run_until(loop, &never, 200);
	ck_assert(!d3);
	p4 = store_fd_async(&w4, &d4);
	assert_error(reply_of(p4, &d4), "org.cpmsync.Error.Failed",
		     "content: 1 StoreFd and StoreObject pipes are being read already, the "
		     "most at once; try again when one is done or pass a regular file");
	close(w4);
	/* The bytes held count too. */
	{
		char chunk[1100];

		memset(chunk, 'x', sizeof(chunk));
		ck_assert_int_eq(write(w3, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	}
	assert_error(reply_of(p3, &d3), "org.cpmsync.Error.Failed",
		     "content: the StoreFd and StoreObject pipes being read would hold more "
		     "than 1000 bytes in all, the limit; try again later or pass a regular "
		     "file");
	close(w3);
	cpm_folder_set_pipe_limits(CPM_MAX_PIPE_STORES, CPM_MAX_PIPE_BYTES);

	/* A regular file that may block: read on a thread, the loop free meanwhile. */
	ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
	reader_ran = false;
	cpm_folder_set_file_read_test(true, hold_reader);
	snprintf(path, sizeof(path), "%s/object.eml", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, cpm_object, sizeof(cpm_object) - 1),
			 (ssize_t)(sizeof(cpm_object) - 1));
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "StoreObject");
	dbus_message_append_args(m, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING, &fp,
				 0, DBUS_TYPE_INT64, &date, DBUS_TYPE_INVALID);
	close(fd);
	d1 = false;
	ck_assert(dbus_connection_send_with_reply(client, m, &p1, 10000));
	dbus_message_unref(m);
	dbus_pending_call_set_notify(p1, pending_done, &d1, NULL);
	test_loop_run_until(loop, &never, 300);
	ck_assert(reader_ran);
	ck_assert(!pthread_equal(reader, pthread_self()));
	ck_assert(!d1);
	r = call_msg(new_call(inbox_path, "org.freedesktop.DBus.Introspectable", "Introspect"));
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_unref(r);
	ck_assert(!d1);
	ck_assert_int_eq(write(gate[1], "x", 1), 1);
	r = reply_of(p1, &d1);
	ck_assert_msg(dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN, "%s",
		      dbus_message_get_error_name(r));
	ck_assert(dbus_message_get_args(r, NULL, DBUS_TYPE_OBJECT_PATH, &folder, DBUS_TYPE_UINT64,
					&id, DBUS_TYPE_INVALID));
	ck_assert(id > 0);
	dbus_message_unref(r);
	{
		int64_t fid;

		ck_assert_int_eq(
			cpmsync_store_find_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	}
	cpm_folder_set_file_read_test(false, NULL);
	close(gate[0]);
	close(gate[1]);
}
END_TEST

/* The account's failed operations, each as flat_dict() followed by '|'. */
static void list_failed(char *out, size_t size)
{
	DBusMessageIter it, a;
	DBusMessage *r;
	size_t len = 0;

	r = call_msg(
		new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListFailedOperations"));
	ck_assert_str_eq(dbus_message_get_signature(r), "aa{sv}");
	out[0] = '\0';
	dbus_message_iter_init(r, &it);
	for (dbus_message_iter_recurse(&it, &a);
	     dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_ARRAY; dbus_message_iter_next(&a)) {
		flat_dict(&a, out + len, size - len);
		len = strlen(out);
		len += (size_t)snprintf(out + len, size - len, "|");
	}
	dbus_message_unref(r);
}

static DBusMessage *call_id(const char *member, dbus_uint64_t id)
{
	DBusMessage *m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", member);

	dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
	return call_msg(m);
}

static void make_failed(void)
{
	ck_assert_int_eq(store_exec(store_from_public(store),
				    "UPDATE journal SET failed = 1, code = 'NOPERM',"
				    " refused = 'no insert right', tries = 1, tried = 1700000001"
				    " WHERE op = 'append'"),
			 0);
	/* What the daemon calls when a sync ends. */
	cpm_service_account_changed(svc, session);
}

START_TEST(test_failed_operations)
{
	char expect[512], got[1024];
	dbus_uint32_t count = 9;
	dbus_uint64_t row;
	bool never = false;

	SKIP_WITHOUT_DAEMON();
	list_failed(got, sizeof(got));
	ck_assert_str_eq(got, "");
	row = (dbus_uint64_t)atoll(test_store_text(store_from_public(store),
						   "SELECT id FROM journal WHERE op = 'append'"));

	make_failed();
	test_loop_run_until(loop, &never, 300);
	snprintf(expect, sizeof(expect),
		 "Id=%llu;Operation=store;Folder=Work;MessageIds=%lld,;Code=NOPERM;"
		 "Text=no insert right;Tries=1;Time=1700000001;",
		 (unsigned long long)row, (long long)msg_id);
	ck_assert_int_eq(failed_signals, 1);
	ck_assert_str_eq(failed_signal, expect);
	list_failed(got, sizeof(got));
	ck_assert_str_eq(got, strcat(expect, "|"));
	{
		const char *iface = "org.cpmsync.Account1", *name = "FailedOperations";
		DBusMessage *m =
			new_call("/org/cpmsync/acc_2d1", "org.freedesktop.DBus.Properties", "Get");
		DBusMessageIter it, vi;
		DBusMessage *r;

		dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
					 DBUS_TYPE_INVALID);
		r = call_msg(m);
		dbus_message_iter_init(r, &it);
		dbus_message_iter_recurse(&it, &vi);
		dbus_message_iter_get_basic(&vi, &count);
		ck_assert_uint_eq(count, 1);
		dbus_message_unref(r);
	}
	/* Announced once. */
	cpm_service_account_changed(svc, session);
	test_loop_run_until(loop, &never, 100);
	ck_assert_int_eq(failed_signals, 1);

	assert_error(call_id("RetryOperation", row + 100), "org.cpmsync.Error.NotFound",
		     "account \"acc-1\" has no failed operation");
	/* 0 names no operation either: NotFound too. */
	assert_error(call_id("DiscardOperation", 0), "org.cpmsync.Error.NotFound",
		     "account \"acc-1\" has no failed operation 0");
	assert_error(call_id("RetryOperation", 0), "org.cpmsync.Error.NotFound",
		     "account \"acc-1\" has no failed operation 0");
	dbus_message_unref(call_id("RetryOperation", row));
	list_failed(got, sizeof(got));
	ck_assert_str_eq(got, "");

	/* Failing again is announced again; discarding removes the message
	 * that never reached the server. */
	make_failed();
	test_loop_run_until(loop, &never, 300);
	ck_assert_int_eq(failed_signals, 2);
	snprintf(expect, sizeof(expect), "SELECT count(*) FROM message WHERE id = %lld",
		 (long long)msg_id);
	ck_assert_str_eq(test_store_text(store_from_public(store), expect), "1");
	dbus_message_unref(call_id("DiscardOperation", row));
	list_failed(got, sizeof(got));
	ck_assert_str_eq(got, "");
	ck_assert_str_eq(test_store_text(store_from_public(store), expect), "0");
}
END_TEST

START_TEST(test_offline_and_name)
{
	const char *folder = "Work";
	struct cpm_service *other = NULL;
	char *err = NULL;
	DBusMessage *m;

	SKIP_WITHOUT_DAEMON();
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "GetAcl");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &folder, DBUS_TYPE_INVALID);
	assert_error(call_msg(m), "org.cpmsync.Error.Offline", NULL);

	ck_assert_int_eq(cpm_service_new(loop, store, address, "9.9", NULL, NULL, &other, &err), 0);
	ck_assert_int_lt(cpm_service_start(other, &err), 0);
	ck_assert_ptr_nonnull(strstr(err, "already owned"));
	free(err);
	/* (this also unhooks the store watch: one service per store) */
	cpm_service_free(other);
}
END_TEST

/* Account1.SetMetadata(folder, {entry: value}) of n pairs, checked. */
static void set_metadata(const char *folder, const char *const *kv, size_t n)
{
	DBusMessage *m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "SetMetadata");
	DBusMessageIter it, d, e;
	DBusMessage *r;

	dbus_message_iter_init_append(m, &it);
	ck_assert(dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &folder));
	ck_assert(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{ss}", &d));
	for (size_t i = 0; i < n; i++) {
		ck_assert(dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e));
		ck_assert(dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &kv[2 * i]));
		ck_assert(dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &kv[2 * i + 1]));
		ck_assert(dbus_message_iter_close_container(&d, &e));
	}
	ck_assert(dbus_message_iter_close_container(&it, &d));
	r = call_msg(m);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	dbus_message_unref(r);
}

/* Account1.GetMetadata(folder, entries): the reply, to unref. */
static DBusMessage *get_metadata(const char *folder, const char **entries, int n)
{
	DBusMessage *m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "GetMetadata");

	dbus_message_append_args(m, DBUS_TYPE_STRING, &folder, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				 &entries, n, DBUS_TYPE_INVALID);
	return call_msg(m);
}

/* An a{ss} reply as "k=v;k=v;" (in reply order), in a static buffer; unrefs r. */
static const char *flat_pairs(DBusMessage *r)
{
	static char out[1024];
	DBusMessageIter it, d, e;
	size_t len = 0;

	out[0] = '\0';
	ck_assert_msg(dbus_message_get_type(r) == DBUS_MESSAGE_TYPE_METHOD_RETURN, "error %s",
		      dbus_message_get_error_name(r));
	ck_assert_str_eq(dbus_message_get_signature(r), "a{ss}");
	dbus_message_iter_init(r, &it);
	dbus_message_iter_recurse(&it, &d);
	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d)) {
		const char *k, *v;

		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &k);
		dbus_message_iter_next(&e);
		dbus_message_iter_get_basic(&e, &v);
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s=%s;", k, v);
		ck_assert_uint_lt(len, sizeof(out));
	}
	dbus_message_unref(r);
	return out;
}

/*
 * GetMetadata reads its own writes: offline, entries that all have a
 * queued SetMetadata answer from it (the newest; "" = removed, absent);
 * one entry without a local value needs the server: Offline.
 */
START_TEST(test_metadata_read_your_writes)
{
	static const char *const first[] = { "/private/comment", "hello", "/shared/gone", "" };
	static const char *const second[] = { "/private/comment", "newer" };
	static const char *const server[] = { "/private/comment", "server wide" };
	const char *both[] = { "/private/comment", "/shared/gone" };
	const char *mixed[] = { "/private/comment", "/private/other" };
	const char *upper[] = { "/private/COMMENT" };

	SKIP_WITHOUT_DAEMON();
	assert_error(get_metadata("Work", both, 1), "org.cpmsync.Error.Offline",
		     "account 'acc-1' is offline");
	set_metadata("Work", first, 2);
	ck_assert_str_eq(flat_pairs(get_metadata("Work", both, 2)), "/private/comment=hello;");
	ck_assert_str_eq(flat_pairs(get_metadata("Work", both + 1, 1)), "");
	assert_error(get_metadata("Work", mixed, 2), "org.cpmsync.Error.Offline",
		     "account 'acc-1' is offline");
	set_metadata("Work", second, 1);
	ck_assert_str_eq(flat_pairs(get_metadata("Work", both, 2)), "/private/comment=newer;");
	ck_assert_str_eq(flat_pairs(get_metadata("Work", upper, 1)), "/private/COMMENT=newer;");
	/* Server entries are their own: the folder's do not answer for them. */
	assert_error(get_metadata("", both, 1), "org.cpmsync.Error.Offline", NULL);
	set_metadata("", server, 1);
	ck_assert_str_eq(flat_pairs(get_metadata("", both, 1)), "/private/comment=server wide;");
	ck_assert_str_eq(flat_pairs(get_metadata("Work", both, 1)), "/private/comment=newer;");
}
END_TEST

/* The value of key in the dict at it (an a{sv}), recursed into v. */
static bool dict_find(DBusMessageIter *it, const char *key, DBusMessageIter *v)
{
	DBusMessageIter d, e;

	for (dbus_message_iter_recurse(it, &d);
	     dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d)) {
		const char *k;

		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &k);
		dbus_message_iter_next(&e);
		if (!strcmp(k, key)) {
			dbus_message_iter_recurse(&e, v);
			return true;
		}
	}
	return false;
}

/* The conversation dict a (an a{sv}) as "Messages=..;Unseen=..;
 * Last=<Id>;Snippet=..;Flags=<flags,>". */
static void conversation_flat(DBusMessageIter *a, char *out, size_t size)
{
	DBusMessageIter v, lm, f;
	dbus_uint32_t msgs, unseen;
	dbus_uint64_t id;
	const char *snippet, *flag;
	size_t len;

	ck_assert_int_eq(dbus_message_iter_get_arg_type(a), DBUS_TYPE_ARRAY);
	ck_assert(dict_find(a, "Messages", &v));
	dbus_message_iter_get_basic(&v, &msgs);
	ck_assert(dict_find(a, "Unseen", &v));
	dbus_message_iter_get_basic(&v, &unseen);
	ck_assert(dict_find(a, "LastMessage", &lm));
	ck_assert(dict_find(&lm, "Id", &v));
	dbus_message_iter_get_basic(&v, &id);
	ck_assert(dict_find(&lm, "Snippet", &v));
	dbus_message_iter_get_basic(&v, &snippet);
	len = (size_t)snprintf(out, size, "Messages=%u;Unseen=%u;Last=%llu;Snippet=%s;Flags=", msgs,
			       unseen, (unsigned long long)id, snippet);
	ck_assert(dict_find(&lm, "Flags", &v));
	for (dbus_message_iter_recurse(&v, &f);
	     dbus_message_iter_get_arg_type(&f) == DBUS_TYPE_STRING; dbus_message_iter_next(&f)) {
		dbus_message_iter_get_basic(&f, &flag);
		len += (size_t)snprintf(out + len, size - len, "%s,", flag);
	}
	ck_assert_uint_lt(len, size);
}

/* ListConversations, the one conversation of acc-1 as conversation_flat(). */
static void list_conversations(char *out, size_t size)
{
	DBusMessage *r = call_msg(
		new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListConversations"));
	DBusMessageIter it, a;

	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	ck_assert(dbus_message_iter_init(r, &it));
	dbus_message_iter_recurse(&it, &a);
	conversation_flat(&a, out, size);
	/* One conversation only. */
	dbus_message_iter_next(&a);
	ck_assert_int_eq(dbus_message_iter_get_arg_type(&a), DBUS_TYPE_INVALID);
	dbus_message_unref(r);
}

static int64_t store_chat(const char *text, int64_t date)
{
	char obj[256];
	int64_t id;
	int n = snprintf(obj, sizeof(obj),
			 "Message-ID: <%s@example.org>\r\nFrom: tel:+15550001\r\n"
			 "Conversation-ID: conv-obj\r\nContent-Type: text/plain\r\n\r\n%s\r\n",
			 text, text);

	ck_assert_int_eq(cpmsync_op_store(store, "acc-1", "Default/conv-obj", obj, (size_t)n, NULL,
					  date, &id),
			 0);
	return id;
}

/*
 * Account1.ListConversations keeps its reply while the store stays the
 * same, and builds it anew after any change: a flag that leaves Unseen
 * alone but shows in LastMessage, \Seen, a newer message.
 */
START_TEST(test_conversations_kept)
{
	const char *flagged[] = { "\\Flagged", NULL }, *seen[] = { "\\Seen", NULL };
	struct svc_account *a;
	char got[512], want[512];
	int64_t id1, id2, id3, fid;

	SKIP_WITHOUT_DAEMON();
	a = svc_account_by_name(svc, "acc-1");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	id1 = store_chat("first", 1700000000);
	id2 = store_chat("second", 1700000100);

	ck_assert_ptr_null(a->conv_reply);
	list_conversations(got, sizeof(got));
	snprintf(want, sizeof(want),
		 "Messages=2;Unseen=2;Last=%lld;Snippet=second;Flags=", (long long)id2);
	ck_assert_str_eq(got, want);
	ck_assert_ptr_nonnull(a->conv_reply);
	list_conversations(got, sizeof(got));
	ck_assert_str_eq(got, want);

	ck_assert_int_eq(cpmsync_op_set_flags(store, &id2, 1, flagged, NULL), 0);
	list_conversations(got, sizeof(got));
	snprintf(want, sizeof(want),
		 "Messages=2;Unseen=2;Last=%lld;Snippet=second;Flags=\\Flagged,", (long long)id2);
	ck_assert_str_eq(got, want);

	ck_assert_int_eq(cpmsync_op_set_flags(store, &id1, 1, seen, NULL), 0);
	list_conversations(got, sizeof(got));
	snprintf(want, sizeof(want),
		 "Messages=2;Unseen=1;Last=%lld;Snippet=second;Flags=\\Flagged,", (long long)id2);
	ck_assert_str_eq(got, want);

	id3 = store_chat("third", 1700000200);
	list_conversations(got, sizeof(got));
	snprintf(want, sizeof(want),
		 "Messages=3;Unseen=2;Last=%lld;Snippet=third;Flags=", (long long)id3);
	ck_assert_str_eq(got, want);
	list_conversations(got, sizeof(got));
	ck_assert_str_eq(got, want);
}
END_TEST

/*
 * A list read before the signals of the commit it shows (the drain waits
 * for the next iteration, or CPM_DRAIN_DELAY_MS): the conversation it
 * showed, taken away by the next commit, gets its ConversationRemoved.
 * The list is the handler called at once, between the two commits, with
 * no loop iteration to drain them.
 */
START_TEST(test_conversation_removed_after_list)
{
	struct svc_account *a;
	DBusMessage *m, *r;
	DBusMessageIter it, arr, v;
	const char *cid = "";
	bool never = false;
	int64_t fid, id;

	SKIP_WITHOUT_DAEMON();
	a = svc_account_by_name(svc, "acc-1");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	test_loop_run_until(loop, &never, 200);
	ck_assert_str_eq(removed_signals, "");

	id = store_chat("only", 1700000000);
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListConversations");
	dbus_message_set_serial(m, 1); /* as if received: its reply names it */
	r = svc_list_conversations(NULL, m, a);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	ck_assert(dbus_message_iter_init(r, &it));
	dbus_message_iter_recurse(&it, &arr);
	ck_assert(dict_find(&arr, "ConversationId", &v));
	dbus_message_iter_get_basic(&v, &cid);
	ck_assert_str_eq(cid, "conv-obj");
	dbus_message_unref(r);
	dbus_message_unref(m);

	ck_assert_int_eq(cpmsync_op_delete(store, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(store, "acc-1", "Default/conv-obj"), 0);
	test_loop_run_until(loop, &never, 300);
	ck_assert_str_eq(removed_signals, "conv-obj\n");
}
END_TEST

/* Unseen of the first conversation dict of it (an aa{sv} reply, or a
 * ConversationChanged's a{sv}). */
static dbus_uint32_t unseen_of(DBusMessage *m)
{
	DBusMessageIter it, d, v;
	dbus_uint32_t unseen = 0;

	ck_assert(dbus_message_iter_init(m, &it));
	d = it;
	if (dbus_message_iter_get_element_type(&it) == DBUS_TYPE_ARRAY)
		dbus_message_iter_recurse(&it, &d);
	ck_assert(dict_find(&d, "Unseen", &v));
	dbus_message_iter_get_basic(&v, &unseen);
	return unseen;
}

/*
 * A flag that leaves Unseen alone (\Flagged), changed on the last message
 * of a conversation, shows in its LastMessage: a ConversationChanged says
 * so, and the app that keeps the list from the signals holds what a new
 * ListConversations says, for a local SetFlags and for the server's
 * flags.  The same change on a message that is not the last one changes
 * no summary: no signal.
 */
START_TEST(test_conversation_last_message_flags)
{
	const char *flagged[] = { "\\Flagged", NULL };
	struct store *s = store_from_public(store);
	bool never = false, found, changed;
	char app[512], now[512];
	int64_t fid, id1, id2;
	DBusMessageIter it;

	SKIP_WITHOUT_DAEMON();
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	id1 = store_chat("first", 1700000000);
	id2 = store_chat("second", 1700000100);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id2, 2, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);
	test_loop_run_until(loop, &never, 300);
	ck_assert_ptr_nonnull(conv_changed_last);

	for (int step = 0; step < 3; step++) {
		if (step == 2) { /* a local SetFlags on the last message */
			ck_assert_int_eq(cpmsync_op_set_flags(store, &id2, 1, flagged, NULL), 0);
		} else { /* the server's flags: \\Flagged, then none */
			ck_assert_int_eq(store_begin(s), 0);
			ck_assert_int_eq(store_sync_server_flags(s, fid, 2,
								 step == 0 ? "\\Flagged" : "", 0,
								 &found, &changed, NULL),
					 0);
			ck_assert(found && changed);
			ck_assert_int_eq(store_commit(s), 0);
		}
		test_loop_run_until(loop, &never, 300);
		ck_assert_ptr_nonnull(conv_changed_last);
		ck_assert(dbus_message_iter_init(conv_changed_last, &it));
		conversation_flat(&it, app, sizeof(app));
		list_conversations(now, sizeof(now));
		ck_assert_msg(strcmp(app, now) == 0, "step %d: the app holds %s, the store %s",
			      step, app, now);
		ck_assert_int_eq(strstr(now, "Flagged") != NULL, step != 1);
	}

	/* Not the last message: its summary is not the conversation's. */
	dbus_message_unref(conv_changed_last);
	conv_changed_last = NULL;
	ck_assert_int_eq(cpmsync_op_set_flags(store, &id1, 1, flagged, NULL), 0);
	test_loop_run_until(loop, &never, 300);
	ck_assert_ptr_null(conv_changed_last);
}
END_TEST

/* The conversation dict a as conversation_flat(), then its whole
 * LastMessage as flat_dict() has it. */
static void conversation_full(DBusMessageIter *a, char *out, size_t size)
{
	DBusMessageIter lm;
	size_t len;

	conversation_flat(a, out, size);
	len = strlen(out);
	ck_assert_uint_lt(len + 1, size);
	out[len++] = '|';
	ck_assert(dict_find(a, "LastMessage", &lm));
	flat_dict(&lm, out + len, size - len);
}

/* ListConversations, the one conversation of acc-1 as conversation_full(). */
static void list_conversations_full(char *out, size_t size)
{
	DBusMessage *r = call_msg(
		new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListConversations"));
	DBusMessageIter it, a;

	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	ck_assert(dbus_message_iter_init(r, &it));
	dbus_message_iter_recurse(&it, &a);
	conversation_full(&a, out, size);
	dbus_message_unref(r);
}

/*
 * The Uid of a conversation's last message, given when its APPEND is
 * answered, shows in its LastMessage: a ConversationChanged says so, and
 * the app that keeps the list from the signals holds what a new
 * ListConversations says.  The Uid of another message: no signal.
 */
START_TEST(test_conversation_last_message_uid)
{
	struct store *s = store_from_public(store);
	bool never = false;
	char app[2048], now[2048];
	int64_t fid, id1, id2;
	DBusMessageIter it;

	SKIP_WITHOUT_DAEMON();
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	id1 = store_chat("first", 1700000000);
	id2 = store_chat("second", 1700000100);
	test_loop_run_until(loop, &never, 300);
	ck_assert_ptr_nonnull(conv_changed_last);
	dbus_message_unref(conv_changed_last);
	conv_changed_last = NULL;

	/* Not the last message: its summary is not the conversation's. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id1, 1, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);
	test_loop_run_until(loop, &never, 300);
	ck_assert_ptr_null(conv_changed_last);

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id2, 2, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);
	test_loop_run_until(loop, &never, 300);
	list_conversations_full(now, sizeof(now));
	ck_assert_ptr_nonnull(strstr(now, "|Id="));
	ck_assert_msg(conv_changed_last, "no ConversationChanged; the store: %s", now);
	ck_assert(dbus_message_iter_init(conv_changed_last, &it));
	conversation_full(&it, app, sizeof(app));
	ck_assert_msg(strcmp(app, now) == 0, "the app holds %s, the store %s", app, now);
	ck_assert_ptr_nonnull(strstr(now, ";Uid=2;"));
}
END_TEST

/*
 * A list read while the sync engine's batch is open, with a change of
 * the conversation in it (the server's \Seen): what the app holds after
 * the list and the signals that follow it is what the store holds, when
 * the batch is then rolled back (a store or protocol error), and when it
 * is committed and a local change brings the conversation back to what
 * its last ConversationChanged said before the next drain; and (ending
 * 2) the batch rolled back after a ListConversationsPage.  The list is
 * the handler called at once, as in test_conversation_removed_after_list.
 */
START_TEST(test_conversation_list_in_batch)
{
	const char *unseen_flags[] = { "\\Seen", NULL };
	struct store *s = store_from_public(store);
	struct svc_account *a;
	bool never = false, found, changed;
	int64_t fid, id;

	SKIP_WITHOUT_DAEMON();
	a = svc_account_by_name(svc, "acc-1");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	id = store_chat("only", 1700000000);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id, 1, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);

	for (int ending = 0; ending < 3; ending++) {
		struct store_batch b = { 0 };
		DBusMessage *m, *r;
		dbus_uint32_t app, now;

		/* Unseen 1 said, then the server's \Seen in an open batch. */
		test_loop_run_until(loop, &never, 300);
		ck_assert_ptr_nonnull(conv_changed_last);
		ck_assert_uint_eq(unseen_of(conv_changed_last), 1);
		dbus_message_unref(conv_changed_last);
		conv_changed_last = NULL;
		ck_assert_int_eq(store_batch_begin(s, &b), 0);
		ck_assert_int_eq(
			store_sync_server_flags(s, fid, 1, "\\Seen", 0, &found, &changed, NULL), 0);
		ck_assert(found && changed);

		if (ending < 2) {
			m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1",
				     "ListConversations");
			dbus_message_set_serial(m, 1); /* as if received: its reply names it */
			r = svc_list_conversations(NULL, m, a);
		} else {
			dbus_uint32_t offset = 0, limit = 0;

			m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1",
				     "ListConversationsPage");
			ck_assert(dbus_message_append_args(m, DBUS_TYPE_UINT32, &offset,
							   DBUS_TYPE_UINT32, &limit,
							   DBUS_TYPE_INVALID));
			dbus_message_set_serial(m, 1);
			r = svc_list_conversations_page(NULL, m, a);
		}
		ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
		app = unseen_of(r);
		dbus_message_unref(r);
		dbus_message_unref(m);

		if (ending != 1) {
			store_batch_rollback(s, &b);
		} else {
			ck_assert_int_eq(store_batch_commit(s, &b), 0);
			ck_assert_int_eq(cpmsync_op_set_flags(store, &id, 1, NULL, unseen_flags),
					 0);
		}
		store_batch_rollback(s, &b);
		test_loop_run_until(loop, &never, 300);
		if (conv_changed_last)
			app = unseen_of(conv_changed_last);

		m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListConversations");
		dbus_message_set_serial(m, 2);
		r = svc_list_conversations(NULL, m, a);
		now = unseen_of(r);
		dbus_message_unref(r);
		dbus_message_unref(m);
		ck_assert_msg(app == now, "ending %d: the app holds Unseen %u, the store %u",
			      ending, app, now);
		/* Unseen 1 again for the next ending, the server's flags none. */
		if (now == 0)
			ck_assert_int_eq(cpmsync_op_set_flags(store, &id, 1, NULL, unseen_flags),
					 0);
		ck_assert_int_eq(store_begin(s), 0);
		ck_assert_int_eq(store_sync_message_set_server_flags(s, id, ""), 0);
		ck_assert_int_eq(store_commit(s), 0);
	}
}
END_TEST

/*
 * More changes pending than one drain round takes (CPM_DRAIN_CHUNK
 * folder changes, then the server's \Seen on a chat, in one commit): a
 * list drains them all before it reads, so that its reply comes after
 * the ConversationChanged of what it shows.  A local change that brings
 * the conversation back to Unseen 1 before the next drain is then a
 * change from what was said: its signal is sent, and the app holds what
 * the store holds.  The list is the handler called at once, as in
 * test_conversation_removed_after_list.
 */
START_TEST(test_conversation_list_drains_all)
{
	const char *seen[] = { "\\Seen", NULL };
	struct store *s = store_from_public(store);
	struct svc_account *a;
	bool never = false, found, changed;
	dbus_uint32_t app, now;
	DBusMessage *m, *r;
	char sql[128];
	int64_t fid, id;

	SKIP_WITHOUT_DAEMON();
	a = svc_account_by_name(svc, "acc-1");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	id = store_chat("only", 1700000000);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id, 1, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);
	test_loop_run_until(loop, &never, 300);
	ck_assert_ptr_nonnull(conv_changed_last);
	ck_assert_uint_eq(unseen_of(conv_changed_last), 1);
	dbus_message_unref(conv_changed_last);
	conv_changed_last = NULL;

	snprintf(sql, sizeof(sql),
		 "UPDATE folder SET highestmodseq = coalesce(highestmodseq, 0) + 1 WHERE id = %lld",
		 (long long)inbox_id);
	ck_assert_int_eq(store_begin(s), 0);
	for (int i = 0; i < CPM_DRAIN_CHUNK; i++)
		ck_assert_int_eq(store_exec(s, sql), 0);
	ck_assert_int_eq(store_sync_server_flags(s, fid, 1, "\\Seen", 0, &found, &changed, NULL),
			 0);
	ck_assert(found && changed);
	ck_assert_int_eq(store_commit(s), 0);

	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListConversations");
	dbus_message_set_serial(m, 1); /* as if received: its reply names it */
	r = svc_list_conversations(NULL, m, a);
	ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
	app = unseen_of(r);
	ck_assert_uint_eq(app, 0);
	dbus_message_unref(r);
	dbus_message_unref(m);

	ck_assert_int_eq(cpmsync_op_set_flags(store, &id, 1, NULL, seen), 0);
	test_loop_run_until(loop, &never, 300);
	if (conv_changed_last)
		app = unseen_of(conv_changed_last);
	m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", "ListConversations");
	dbus_message_set_serial(m, 2);
	r = svc_list_conversations(NULL, m, a);
	now = unseen_of(r);
	dbus_message_unref(r);
	dbus_message_unref(m);
	ck_assert_msg(app == now, "the app holds Unseen %u, the store %u", app, now);
}
END_TEST

static int found_cb(const struct cpmsync_message_info *m, void *userdata)
{
	(void)m;
	*(bool *)userdata = true;
	return 0;
}

/*
 * Account1.ListConversationMessages and Folder1.ListMessages called while
 * the sync engine's batch is open, with a new message of the conversation
 * in it: the list commits the batch first (as ListConversations does), so
 * that its MessagesAdded comes before the reply, and the message the list
 * showed is still in the store when the batch is then rolled back (a
 * store or protocol error).
 */
START_TEST(test_message_lists_in_batch)
{
	struct store *s = store_from_public(store);
	static const char *const lists[] = { "ListConversationMessages", "ListMessages" };
	bool never = false;
	char path[128];
	int64_t fid;

	SKIP_WITHOUT_DAEMON();
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default", &fid), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(store, "acc-1", "Default/conv-obj", &fid), 0);
	store_chat("first", 1700000000);
	snprintf(path, sizeof(path), "/org/cpmsync/acc_2d1/folder%lld", (long long)fid);
	test_loop_run_until(loop, &never, 300);

	for (int which = 0; which < 2; which++) {
		struct store_batch b = { 0 };
		const char *cid = "conv-obj";
		dbus_uint64_t after = 0;
		dbus_uint32_t limit = 100;
		struct msg_summary sum;
		struct sync_new_message nm = { .uid = 10 + (uint32_t)which, .flags = "" };
		char obj[256], want[32];
		bool has_body, is_new, found = false;
		int added, n;
		int64_t id;
		DBusMessage *m, *r;
		DBusMessageIter it, arr, v;
		dbus_uint64_t got;

		n = snprintf(obj, sizeof(obj),
			     "Message-ID: <batch-%d@example.org>\r\nFrom: tel:+15550001\r\n"
			     "Date: Tue, 14 Nov 2023 22:20:00 +0000\r\n"
			     "Conversation-ID: conv-obj\r\nContent-Type: text/plain\r\n\r\nnew\r\n",
			     which);
		ck_assert_int_eq(msg_summary_parse(obj, (size_t)n, &sum), 0);
		nm.size = (uint64_t)n;
		nm.summary = &sum;
		ck_assert_int_eq(store_batch_begin(s, &b), 0);
		ck_assert_int_eq(store_sync_new_message(s, fid, &nm, &id, &has_body, &is_new), 0);
		msg_summary_free(&sum);
		ck_assert(is_new);

		added = added_signals;
		if (which == 0) {
			m = new_call("/org/cpmsync/acc_2d1", "org.cpmsync.Account1", lists[which]);
			ck_assert(dbus_message_append_args(
				m, DBUS_TYPE_STRING, &cid, DBUS_TYPE_UINT64, &after,
				DBUS_TYPE_UINT32, &limit, DBUS_TYPE_INVALID));
		} else {
			m = new_call(path, "org.cpmsync.Folder1", lists[which]);
			ck_assert(dbus_message_append_args(m, DBUS_TYPE_UINT64, &after,
							   DBUS_TYPE_UINT32, &limit,
							   DBUS_TYPE_INVALID));
		}
		r = call_msg(m);
		ck_assert_int_eq(dbus_message_get_type(r), DBUS_MESSAGE_TYPE_METHOD_RETURN);
		/* The new message is listed (newest first, or by id: last). */
		ck_assert(dbus_message_iter_init(r, &it));
		snprintf(want, sizeof(want), "%lld", (long long)id);
		for (dbus_message_iter_recurse(&it, &arr);
		     dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&arr)) {
			ck_assert(dict_find(&arr, "Id", &v));
			dbus_message_iter_get_basic(&v, &got);
			found = found || got == (dbus_uint64_t)id;
		}
		dbus_message_unref(r);
		ck_assert_msg(found, "%s: message %s not listed", lists[which], want);
		ck_assert_msg(added_signals > added, "%s: no MessagesAdded before the reply",
			      lists[which]);

		store_batch_rollback(s, &b);
		test_loop_run_until(loop, &never, 300);
		found = false;
		n = cpmsync_store_get_message(store, id, found_cb, &found);
		ck_assert_msg(n == 0 && found,
			      "%s listed message %s, which the store no longer holds", lists[which],
			      want);
	}
}
END_TEST

static Suite *dbus_service_suite(void)
{
	Suite *s = suite_create("dbus-service");
	TCase *tc = tcase_create("service");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_objects);
	tcase_add_test(tc, test_account_added_with_settings);
	tcase_add_test(tc, test_list_fetch);
	tcase_add_test(tc, test_store_signal);
	tcase_add_test(tc, test_offline_and_name);
	tcase_add_test(tc, test_metadata_read_your_writes);
	tcase_add_test(tc, test_failed_operations);
	tcase_add_test(tc, test_store_fd_pipe_limits);
	tcase_add_test(tc, test_store_fd_file_off_loop);
	tcase_add_test(tc, test_store_object_fd_protections);
	tcase_add_test(tc, test_store_failures_reported);
	tcase_add_test(tc, test_write_failures_reported);
	tcase_add_test(tc, test_conversations_kept);
	tcase_add_test(tc, test_conversation_removed_after_list);
	tcase_add_test(tc, test_conversation_list_in_batch);
	tcase_add_test(tc, test_conversation_last_message_flags);
	tcase_add_test(tc, test_conversation_last_message_uid);
	tcase_add_test(tc, test_conversation_list_drains_all);
	tcase_add_test(tc, test_message_lists_in_batch);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(dbus_service_suite)
