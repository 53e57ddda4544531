/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CPM folder model (cpmsync/cpm-folders.h): folder classification
 * (Folder1.Kind, ConversationId, ContributionId), cpm_root validation, the
 * filing decision (util/cpm-file.h), and filing in a real store
 * (cpmsync_op_store_object_fd): folders created and journaled before the
 * APPEND, in order, and nothing left behind for a refused object.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/cpm-folders.h>
#include <cpmsync/error.h>
#include <cpmsync/limits.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store-sync.h"
#include "store/store.h"
#include "testlib.h"
#include "util/cpm-file.h"
#include "util/macro.h"

/* ------------------------------------------------------------------------ */
/* Classification */

struct classify_case {
	const char *root, *name, *special_use;
	const char *kind, *conversation_id, *contribution_id;
};

static const struct classify_case classify_cases[] = {
	{ "Default", "Default/conv-ABC", NULL, "conversation-history", "conv-ABC", "" },
	{ "Default", "Default/conv-ABC/contrib-1", NULL, "session-history", "conv-ABC",
	  "contrib-1" },
	{ "Default", "Default/tel:+15551234567", NULL, "conversation-history", "tel:+15551234567",
	  "" },
	{ "Default", "Default", NULL, "user", "", "" },
	{ "Default", "Default/a/b/c", NULL, "user", "", "" },
	{ "Default", "INBOX", NULL, "user", "", "" },
	{ "Default", "Sent", "\\Sent", "user", "", "" },
	{ "Default", "Default/Sent", "\\Sent", "user", "", "" },
	/* Names compare byte for byte: another case is another folder. */
	{ "Default", "default/conv-ABC", NULL, "user", "", "" },
	{ "Default", "DefaultX/conv-ABC", NULL, "user", "", "" },
	{ "Default", "Defaul", NULL, "user", "", "" },
	/* A deeper root. */
	{ "RCS/Default", "RCS/Default/c1", NULL, "conversation-history", "c1", "" },
	{ "RCS/Default", "RCS/Default/c1/s1", NULL, "session-history", "c1", "s1" },
	{ "RCS/Default", "RCS/c1", NULL, "user", "", "" },
	/* The top level as root. */
	{ "", "conv-1", NULL, "conversation-history", "conv-1", "" },
	{ "", "conv-1/contrib-2", NULL, "session-history", "conv-1", "contrib-2" },
	{ "", "INBOX", NULL, "user", "", "" },
	{ "", "inbox", NULL, "user", "", "" },
	{ "", "Drafts", "\\Drafts", "user", "", "" },
	{ "", "a/b/c", NULL, "user", "", "" },
	{ NULL, "conv-1", NULL, "conversation-history", "conv-1", "" },
	{ "Default", NULL, NULL, "user", "", "" },
	{ "Default", "", NULL, "user", "", "" },
};

START_TEST(test_classify)
{
	const struct classify_case *c = &classify_cases[_i];
	struct cpmsync_cpm_folder f;

	cpmsync_cpm_classify_folder(c->root, c->name, c->special_use, &f);
	ck_assert_msg(strcmp(cpmsync_folder_kind_name(f.kind), c->kind) == 0,
		      "case %d (%s): kind %s, expected %s", _i, c->name ? c->name : "(null)",
		      cpmsync_folder_kind_name(f.kind), c->kind);
	ck_assert_uint_eq(f.conversation_id_len, strlen(c->conversation_id));
	ck_assert(memcmp(f.conversation_id, c->conversation_id, f.conversation_id_len) == 0);
	ck_assert_uint_eq(f.contribution_id_len, strlen(c->contribution_id));
	ck_assert(memcmp(f.contribution_id, c->contribution_id, f.contribution_id_len) == 0);
}
END_TEST

START_TEST(test_kind_names)
{
	ck_assert_str_eq(cpmsync_folder_kind_name(CPMSYNC_FOLDER_USER), "user");
	ck_assert_str_eq(cpmsync_folder_kind_name(CPMSYNC_FOLDER_CONVERSATION_HISTORY),
			 "conversation-history");
	ck_assert_str_eq(cpmsync_folder_kind_name(CPMSYNC_FOLDER_SESSION_HISTORY),
			 "session-history");
	ck_assert_str_eq(cpmsync_folder_kind_name(_CPMSYNC_FOLDER_KIND_MAX), "user");
}
END_TEST

START_TEST(test_root_valid)
{
	const char *why = "untouched";
	char longroot[CPMSYNC_FOLDER_NAME_MAX + 2];

	ck_assert(cpmsync_cpm_root_valid("Default", &why));
	ck_assert_str_eq(why, "untouched");
	ck_assert(cpmsync_cpm_root_valid("", NULL));
	ck_assert(cpmsync_cpm_root_valid("RCS/Default", NULL));
	ck_assert(cpmsync_cpm_root_valid("Gr\xc3\xbc\xc3\x9f"
					 "e",
					 NULL));
	ck_assert(!cpmsync_cpm_root_valid("/Default", &why));
	ck_assert_str_eq(why, "has an empty level (a '/' at either end or two in a row)");
	ck_assert(!cpmsync_cpm_root_valid("Default/", NULL));
	ck_assert(!cpmsync_cpm_root_valid("a//b", NULL));
	ck_assert(!cpmsync_cpm_root_valid("a\tb", &why));
	ck_assert_str_eq(why, "is not valid UTF-8 or contains a control character");
	ck_assert(!cpmsync_cpm_root_valid("\xff", NULL));
	ck_assert(!cpmsync_cpm_root_valid("inbox", &why));
	ck_assert_str_eq(why, "cannot be INBOX");
	memset(longroot, 'x', sizeof(longroot) - 1);
	longroot[sizeof(longroot) - 1] = 0;
	ck_assert(!cpmsync_cpm_root_valid(longroot, &why));
	ck_assert_str_eq(why, "is longer than a folder name may be");
	ck_assert(!cpmsync_cpm_root_valid(NULL, NULL));
}
END_TEST

START_TEST(test_address_of)
{
	char buf[64];

	ck_assert_str_eq(cpm_address_of("tel:+15551234567", buf, sizeof(buf)), "tel:+15551234567");
	ck_assert_str_eq(cpm_address_of(" Bob <tel:+1555> ", buf, sizeof(buf)), "tel:+1555");
	ck_assert_str_eq(cpm_address_of("<sip:a@b>\nc@d", buf, sizeof(buf)), "sip:a@b");
	ck_assert_str_eq(cpm_address_of("x@y\n<z@w>", buf, sizeof(buf)), "x@y");
	ck_assert_str_eq(cpm_address_of("", buf, sizeof(buf)), "");
	ck_assert_str_eq(cpm_address_of(NULL, buf, sizeof(buf)), "");
	ck_assert_str_eq(cpm_address_of("abcdef", buf, 4), "abc");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The filing decision */

static const char *const *existing;

static bool exists_in_list(const char *name, void *userdata)
{
	(void)userdata;
	for (const char *const *e = existing; e && *e; e++)
		if (strcmp(*e, name) == 0)
			return true;
	return false;
}

struct decide_case {
	const char *root;
	struct cpm_file_object o;
	const char *const *existing;
	int r;
	const char *folder; /* or the reason when r < 0 */
	const char *create; /* the folders to create, ' '-separated */
};

/* Fields not given are "" (see test_decide). */
#define OBJ(...)                                                                                   \
	{                                                                                          \
		__VA_ARGS__                                                                        \
	}

static const char *const ex_default[] = { "INBOX", "Default", NULL };
static const char *const ex_conv[] = { "INBOX", "Default", "Default/c1", NULL };
static const char *const ex_tel_upper[] = { "INBOX", "Default", "Default/TEL:+1555", NULL };
static const char *const ex_session[] = { "INBOX", "Default", "Default/c1", "Default/c1/s1", NULL };

static const struct decide_case decide_cases[] = {
	/* A chat message of a new conversation: its folder, created. */
	{ "Default", OBJ(.conversation_id = "c1", .contribution_id = "s1"), ex_default, 0,
	  "Default/c1", "Default/c1" },
	/* The root is created too when missing. */
	{ "Default", OBJ(.conversation_id = "c1"), NULL, 0, "Default/c1", "Default Default/c1" },
	/* A message of an existing conversation: nothing to create. */
	{ "Default", OBJ(.conversation_id = "c1", .contribution_id = "s9"), ex_conv, 0,
	  "Default/c1", "" },
	/* A message of a session whose folder exists: into the session folder. */
	{ "Default", OBJ(.conversation_id = "c1", .contribution_id = "s1"), ex_session, 0,
	  "Default/c1/s1", "" },
	/* session-info and group-state: always the session folder. */
	{ "Default", OBJ(.conversation_id = "c1", .contribution_id = "s1", .is_state = true),
	  ex_default, 0, "Default/c1/s1", "Default/c1 Default/c1/s1" },
	{ "Default", OBJ(.conversation_id = "c1", .contribution_id = "s2", .is_state = true),
	  ex_session, 0, "Default/c1/s2", "Default/c1/s2" },
	/* SMS: the peer is From when received, To when sent. */
	{ "Default",
	  OBJ(.context = "pager-message", .direction = "received", .from = "tel:+1555",
	      .to = "tel:+1999"),
	  ex_default, 0, "Default/tel:+1555", "Default/tel:+1555" },
	{ "Default",
	  OBJ(.context = "pager-message", .direction = "Sent", .from = "tel:+1999",
	      .to = "Bob <tel:+1555>\ntel:+1777"),
	  ex_default, 0, "Default/tel:+1555", "Default/tel:+1555" },
	{ "Default", OBJ(.context = "multimedia-message", .from = "<tel:+1555>"), ex_default, 0,
	  "Default/tel:+1555", "Default/tel:+1555" },
	/* A peer's URI scheme is case-insensitive: one folder for TEL: and
	 * tel:, the lower-case one, unless the folder exists as written. */
	{ "Default", OBJ(.context = "pager-message", .from = "TEL:+1555"), ex_default, 0,
	  "Default/tel:+1555", "Default/tel:+1555" },
	{ "Default", OBJ(.context = "pager-message", .from = "<Sip:Bob@Example.COM>"), ex_default,
	  0, "Default/sip:Bob@Example.COM", "Default/sip:Bob@Example.COM" },
	{ "Default", OBJ(.context = "pager-message", .from = "TEL:+1555"), ex_tel_upper, 0,
	  "Default/TEL:+1555", "" },
	/* Not a scheme: as written. */
	{ "Default", OBJ(.context = "pager-message", .from = "+1 (555) X:1"), ex_default, 0,
	  "Default/+1 (555) X:1", "Default/+1 (555) X:1" },
	{ "Default", OBJ(.context = "pager-message", .from = "Bob@Example.COM"), ex_default, 0,
	  "Default/Bob@Example.COM", "Default/Bob@Example.COM" },
	/* An SMS with a Conversation-ID is filed by it. */
	{ "Default", OBJ(.context = "pager-message", .conversation_id = "c1", .from = "tel:+1"),
	  ex_conv, 0, "Default/c1", "" },
	/* The top level as root. */
	{ "", OBJ(.conversation_id = "c1", .contribution_id = "s1", .is_state = true), ex_default,
	  0, "c1/s1", "c1 c1/s1" },
	{ "RCS/Default", OBJ(.conversation_id = "c1"), ex_default, 0, "RCS/Default/c1",
	  "RCS RCS/Default RCS/Default/c1" },
	/* Refused. */
	{ "Default", OBJ(.from = "tel:+1"), ex_default, -EINVAL,
	  "content: not a CPM object: it has neither Conversation-ID nor Message-Context", "" },
	{ "Default", OBJ(.conversation_id = "c1", .is_state = true), ex_default, -EINVAL,
	  "content: a session-info or group-state object needs both Conversation-ID and "
	  "Contribution-ID",
	  "" },
	{ "Default", OBJ(.contribution_id = "s1", .is_state = true), ex_default, -EINVAL,
	  "content: a session-info or group-state object needs both Conversation-ID and "
	  "Contribution-ID",
	  "" },
	{ "Default", OBJ(.conversation_id = "a/b"), ex_default, -EINVAL,
	  "content: the Conversation-ID \"a/b\" contains '/'", "" },
	{ "Default", OBJ(.conversation_id = ".."), ex_default, -EINVAL,
	  "content: the Conversation-ID \"..\" is '.' or '..'", "" },
	{ "Default", OBJ(.conversation_id = "c*"), ex_default, -EINVAL,
	  "content: the Conversation-ID \"c*\" contains '*' or '%' (IMAP LIST wildcards)", "" },
	{ "Default", OBJ(.conversation_id = "c1", .contribution_id = "x/y"), ex_default, -EINVAL,
	  "content: the Contribution-ID \"x/y\" contains '/'", "" },
	{ "Default", OBJ(.context = "pager-message", .direction = "sent", .from = "tel:+1"),
	  ex_default, -EINVAL,
	  "content: a message with Message-Context and no Conversation-ID is filed by its peer, "
	  "but To is empty",
	  "" },
	{ "Default", OBJ(.context = "pager-message", .from = "a/b@c"), ex_default, -EINVAL,
	  "content: the peer address (From) \"a/b@c\" contains '/'", "" },
};

START_TEST(test_decide)
{
	const struct decide_case *c = &decide_cases[_i];
	struct cpm_file_target t;
	char why[512] = "", created[2048] = "";
	int r;

	struct cpm_file_object o = c->o;
	const char **fields[] = {
		&o.conversation_id, &o.contribution_id, &o.context, &o.direction, &o.from, &o.to
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!*fields[i])
			*fields[i] = "";
	existing = c->existing;
	r = cpm_file_decide(c->root, &o, exists_in_list, NULL, &t, why, sizeof(why));
	ck_assert_msg(r == c->r, "case %d: %d, expected %d (%s)", _i, r, c->r, why);
	if (r < 0) {
		ck_assert_str_eq(why, c->folder);
		ck_assert_ptr_null(t.folder);
		return;
	}
	ck_assert_str_eq(t.folder, c->folder);
	for (size_t i = 0; i < t.n_create; i++) {
		if (i)
			strcat(created, " ");
		strcat(created, t.create[i]);
	}
	ck_assert_str_eq(created, c->create);
	cpm_file_target_free(&t);
	ck_assert_ptr_null(t.folder);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Filing in a store */

static char tmpdir[] = "/tmp/test-cpm-folders-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];
static struct cpmsync_store *cs;
static struct store *s;

static void setup(void)
{
	char *err = NULL;

	strcpy(tmpdir, "/tmp/test-cpm-folders-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, &err), 0);
	s = store_from_public(cs);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name, delimiter, "
				       "server_name) VALUES (1, 1, 'INBOX', '/', 'INBOX');"),
			 0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	s = NULL;
	test_rm_rf(tmpdir);
}

/* An fd reading text. */
static int text_fd(const char *text)
{
	int fd = memfd_create("obj", 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static int file_text(const char *text, int64_t *folder_id, int64_t *id)
{
	int fd = text_fd(text), r;
	const char *flags[] = { "\\Seen", NULL };

	r = cpmsync_op_store_object_fd(cs, "a", "Default", fd, strlen(text), flags, 0, folder_id,
				       id);
	close(fd);
	return r;
}

/* The journal, "op folder-name" per row in order, ' '-joined. */
static const char *journal_text(void)
{
	return test_store_text(
		s, "SELECT coalesce(group_concat(j.op || ':' || coalesce(f.name, '-'), ' '), '')"
		   " FROM (SELECT * FROM journal ORDER BY id) j LEFT JOIN folder f"
		   " ON f.id = j.folder_id");
}

static const char session_info[] = "From: tel:+1111\r\n"
				   "Subject: Lunch\r\n"
				   "Conversation-ID: conv-G\r\n"
				   "Contribution-ID: contrib-1\r\n"
				   "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
				   "Content-Type: Application/X-CPM-Session\r\n"
				   "\r\n"
				   "<session><session-type>Group</session-type></session>\r\n";

static const char chat[] = "From: tel:+1111\r\n"
			   "To: tel:+2222\r\n"
			   "Message-ID: <chat1@x>\r\n"
			   "Conversation-ID: conv-G\r\n"
			   "Contribution-ID: contrib-1\r\n"
			   "Message-Direction: sent\r\n"
			   "Content-Type: Message/CPIM\r\n"
			   "\r\n"
			   "From: <tel:+1111>\r\n\r\nContent-Type: text/plain\r\n\r\nhello\r\n";

static const char sms[] = "From: tel:+15551234567\r\n"
			  "To: tel:+2222\r\n"
			  "Message-ID: <sms1@x>\r\n"
			  "Message-Context: pager-message\r\n"
			  "Message-Direction: received\r\n"
			  "Content-Type: text/plain\r\n"
			  "\r\n"
			  "hi\r\n";

START_TEST(test_file_new_session)
{
	int64_t folder_id = 0, id = 0, chat_folder = 0, chat_id = 0, f;

	ck_assert_int_eq(file_text(session_info, &folder_id, &id), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default/conv-G/contrib-1", &f), 0);
	ck_assert_int_eq(f, folder_id);
	ck_assert_int_gt(id, 0);
	/* CREATE parents first, then the APPEND, in one transaction. */
	ck_assert_str_eq(journal_text(), "create_folder:Default create_folder:Default/conv-G "
					 "create_folder:Default/conv-G/contrib-1 "
					 "append:Default/conv-G/contrib-1");
	ck_assert_str_eq(test_store_text(s, "SELECT ms.flags || '|' || m.folder_id FROM message m"
					    " JOIN message_state ms ON ms.id = m.id"
					    " WHERE m.id = (SELECT max(id) FROM message)"),
			 "\\Seen|4");
	/* A message of that session goes into the session folder now. */
	ck_assert_int_eq(file_text(chat, &chat_folder, &chat_id), 0);
	ck_assert_int_eq(chat_folder, folder_id);
	ck_assert_str_eq(test_store_text(s, "SELECT count(*) FROM journal"), "5");
}
END_TEST

START_TEST(test_file_chat_and_sms)
{
	int64_t folder_id = 0, id = 0, f;

	ck_assert_int_eq(file_text(chat, &folder_id, &id), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default/conv-G", &f), 0);
	ck_assert_int_eq(f, folder_id);
	ck_assert_int_eq(file_text(sms, &folder_id, &id), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default/tel:+15551234567", &f), 0);
	ck_assert_int_eq(f, folder_id);
	ck_assert_str_eq(journal_text(), "create_folder:Default create_folder:Default/conv-G "
					 "append:Default/conv-G "
					 "create_folder:Default/tel:+15551234567 "
					 "append:Default/tel:+15551234567");
}
END_TEST

/*
 * An SMS from a SIP peer, once the account's server is known to use '.'
 * as its delimiter (Cyrus's classic namespace): its folder
 * "Default/sip:bob@example.com" cannot exist there, so the object is
 * refused when filed, nothing made, rather than queued for a CREATE that
 * replay can only fail.
 */
START_TEST(test_file_peer_with_delimiter)
{
	static const char sip_sms[] = "From: sip:bob@example.com\r\n"
				      "To: tel:+2222\r\n"
				      "Message-ID: <sms2@x>\r\n"
				      "Message-Context: pager-message\r\n"
				      "\r\n"
				      "hi\r\n";
	int64_t folder_id = -1, id = -1, acc;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Default", NULL), 0);
	acc = atoll(test_store_text(s, "SELECT id FROM account WHERE name = 'a'"));
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_set_delimiter(s, acc, '.'), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(file_text(sip_sms, &folder_id, &id), -EINVAL);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "\"Default/sip:bob@example.com\" cannot be a folder name on this server: "
			 "its hierarchy delimiter '.' is not allowed inside a level");
	ck_assert_int_eq(id, -1);
	ck_assert_str_eq(journal_text(), "create_folder:Default");
	/* A tel: peer has no '.': filed as before. */
	ck_assert_int_eq(file_text(sms, &folder_id, &id), 0);
}
END_TEST

START_TEST(test_file_refused_leaves_nothing)
{
	static const char mail[] = "From: a@b\r\nTo: c@d\r\nSubject: plain mail\r\n\r\nhi\r\n";
	static const char bad_id[] = "From: a@b\r\nConversation-ID: x/y\r\n\r\nhi\r\n";
	static const char bad_state[] = "Conversation-ID: c\r\n"
					"Content-Type: application/group-state-object+xml\r\n"
					"\r\n<groupstate/>\r\n";
	const char *before = "";
	int64_t folder_id = -1, id = -1;
	int fd;

	before = strdup(test_store_text(s, "SELECT count(*) FROM folder"));
	ck_assert_int_eq(file_text(mail, &folder_id, &id), -EINVAL);
	ck_assert_str_eq(cpmsync_store_error(cs), "content: not a CPM object: it has neither "
						  "Conversation-ID nor Message-Context");
	ck_assert_int_eq(file_text(bad_id, &folder_id, &id), -EINVAL);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "content: the Conversation-ID \"x/y\" contains '/'");
	ck_assert_int_eq(file_text(bad_state, &folder_id, &id), -EINVAL);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "content: a session-info or group-state object needs both "
			 "Conversation-ID and Contribution-ID");
	/* Empty, truncated, a bad root. */
	fd = text_fd("");
	ck_assert_int_eq(cpmsync_op_store_object_fd(cs, "a", "Default", fd, 0, NULL, 0, NULL, NULL),
			 -EINVAL);
	ck_assert_str_eq(cpmsync_store_error(cs), "content: empty");
	ck_assert_int_eq(
		cpmsync_op_store_object_fd(cs, "a", "Default", fd, 100, NULL, 0, NULL, NULL), -EIO);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "content: end of input before the announced size");
	close(fd);
	fd = text_fd(chat);
	ck_assert_int_eq(
		cpmsync_op_store_object_fd(cs, "a", "/x", fd, strlen(chat), NULL, 0, NULL, NULL),
		-EINVAL);
	ck_assert_str_eq(
		cpmsync_store_error(cs),
		"cpm_root \"/x\" has an empty level (a '/' at either end or two in a row)");
	/* A bad flag is refused after the decision: still nothing created. */
	{
		const char *flags[] = { "\\Recent", NULL };

		ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
		ck_assert_int_eq(cpmsync_op_store_object_fd(cs, "a", "Default", fd, strlen(chat),
							    flags, 0, NULL, NULL),
				 -EINVAL);
	}
	close(fd);
	ck_assert_int_eq(folder_id, -1);
	ck_assert_int_eq(id, -1);
	ck_assert_str_eq(test_store_text(s, "SELECT count(*) FROM folder"), before);
	ck_assert_str_eq(test_store_text(s, "SELECT count(*) FROM message"), "0");
	ck_assert_str_eq(journal_text(), "");
	free((char *)before);
}
END_TEST

/* Files text with cpmsync_op_file_object_fd(): 0 stored, 1 a copy found. */
static int file_again(const char *text, size_t len, int64_t *folder_id, int64_t *id)
{
	int fd = memfd_create("obj", 0), r;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	r = cpmsync_op_file_object_fd(cs, "a", "Default", fd, len, NULL, 0, NULL, NULL, folder_id,
				      id);
	close(fd);
	return r;
}

static const char *count_messages(void)
{
	return test_store_text(s, "SELECT count(*) FROM message");
}

/*
 * The same object filed twice (an app's retry after a D-Bus timeout, an
 * outbox file filed again after a crash) is stored once: the second call
 * answers the first copy, journals nothing.  Another object with the same
 * Message-ID but other bytes is stored, and so is one without any id.
 */
START_TEST(test_file_same_object_once)
{
	static const char no_id[] = "From: tel:+1111\r\nConversation-ID: conv-G\r\n\r\nno id\r\n";
	int64_t folder_id = 0, id = 0, f2 = 0, id2 = 0;
	const char *journal;
	char *other;

	ck_assert_int_eq(file_text(chat, &folder_id, &id), 0);
	journal = strdup(journal_text());
	ck_assert_int_eq(file_text(chat, &f2, &id2), 0);
	ck_assert_int_eq(f2, folder_id);
	ck_assert_int_eq(id2, id);
	ck_assert_str_eq(journal_text(), journal);
	ck_assert_str_eq(count_messages(), "1");
	/* The call that says so. */
	f2 = id2 = 0;
	ck_assert_int_eq(file_again(chat, strlen(chat), &f2, &id2), 1);
	ck_assert_int_eq(id2, id);
	ck_assert_int_eq(f2, folder_id);
	ck_assert_str_eq(journal_text(), journal);
	/* The same Message-ID, one byte else: another object. */
	other = strdup(chat);
	other[strlen(other) - 3] = 'O';
	ck_assert_int_eq(file_again(other, strlen(other), &f2, &id2), 0);
	ck_assert_int_ne(id2, id);
	ck_assert_str_eq(count_messages(), "2");
	/* Neither IMDN-Message-ID nor Message-ID: never the same. */
	ck_assert_int_eq(file_text(no_id, &f2, &id2), 0);
	ck_assert_int_eq(file_text(no_id, &f2, &id2), 0);
	ck_assert_str_eq(count_messages(), "4");
	free(other);
	free((char *)journal);
}
END_TEST

/*
 * A retry the app wrote anew is the same object: LF line ends, headers
 * folded otherwise, the text in base64 or quoted-printable, with the same
 * IMDN-Message-ID; one with that id and another text, Date or recipient
 * is another object and filed (IMDN-Message-IDs are unique only as their
 * sender makes them).
 */
START_TEST(test_file_same_object_reencoded)
{
#define RE_HEAD(date, to)                                                                          \
	"Date: " date "\r\nFrom: tel:+1111\r\nTo: " to "\r\nMessage-ID: <re@x>\r\n"                \
	"IMDN-Message-ID: imdn-re-1\r\nConversation-ID: conv-R\r\nMessage-Direction: sent\r\n"     \
	"Content-Type: Message/CPIM\r\n\r\nFrom: <tel:+1111>\r\nTo: <" to ">\r\n"                  \
	"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: imdn-re-1\r\n\r\n"
#define RE_DATE "Mon, 7 Dec 2026 10:00:00 +0000"
	static const char first[] =
		RE_HEAD(RE_DATE, "tel:+2222") "Content-Type: text/plain; "
					      "charset=utf-8\r\n\r\nCaf\xc3\xa9 at noon?\r\nok\r\n";
	static const char lf[] =
		"Date: " RE_DATE "\nFrom: tel:+1111\nTo: tel:+2222\nMessage-ID: <re@x>\n"
		"IMDN-Message-ID: imdn-re-1\nConversation-ID: conv-R\nMessage-Direction: sent\n"
		"Content-Type: Message/CPIM\n\nFrom: <tel:+1111>\nTo: <tel:+2222>\n"
		"NS: imdn <urn:ietf:params:imdn>\nimdn.Message-ID: imdn-re-1\n\n"
		"Content-Type: text/plain; charset=utf-8\n\nCaf\xc3\xa9 at noon?\nok\n";
	static const char folded[] =
		"Date: Mon, 7 Dec 2026\r\n 10:00:00 +0000\r\nFrom:   tel:+1111\r\nTo: tel:+2222\r\n"
		"Message-ID: <re@x>\r\nIMDN-Message-ID: imdn-re-1\r\nConversation-ID: conv-R\r\n"
		"Message-Direction: sent\r\nContent-Type: Message/CPIM\r\n\r\nFrom: <tel:+1111>\r\n"
		"To: <tel:+2222>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: "
		"imdn-re-1\r\n\r\n"
		"Content-Type: text/plain;\r\n\tcharset=\"utf-8\"\r\n\r\nCaf\xc3\xa9 at "
		"noon?\r\nok\r\n";
	static const char b64[] = RE_HEAD(
		RE_DATE, "tel:+2222") "Content-Type: text/plain; "
				      "charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
				      "Q2Fmw6kgYXQgbm9vbj8NCm9rDQo=\r\n";
	static const char qp[] = RE_HEAD(
		RE_DATE,
		"tel:+2222") "Content-Type: text/plain; "
			     "charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
			     "\r\nCaf=C3=A9 at noon?\r\nok\r\n";
	static const char *const again[] = { lf, folded, b64, qp };
	static const char other_text[] =
		RE_HEAD(RE_DATE, "tel:+2222") "Content-Type: text/plain; "
					      "charset=utf-8\r\n\r\nCaf\xc3\xa9 at one?\r\nok\r\n";
	static const char other_date[] =
		RE_HEAD("Mon, 7 Dec 2026 10:00:01 +0000",
			"tel:+2222") "Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 "
				     "at noon?\r\nok\r\n";
	static const char other_to[] =
		RE_HEAD(RE_DATE, "tel:+3333") "Content-Type: text/plain; "
					      "charset=utf-8\r\n\r\nCaf\xc3\xa9 at noon?\r\nok\r\n";
	static const char *const others[] = { other_text, other_date, other_to };
#undef RE_HEAD
#undef RE_DATE
	int64_t folder_id = 0, id = 0, f2, id2;
	const char *journal;

	ck_assert_int_eq(file_again(first, strlen(first), &folder_id, &id), 0);
	journal = strdup(journal_text());
	for (size_t i = 0; i < ARRAY_SIZE(again); i++) {
		f2 = id2 = 0;
		ck_assert_msg(file_again(again[i], strlen(again[i]), &f2, &id2) == 1,
			      "re-encoding %zu filed anew", i);
		ck_assert_int_eq(id2, id);
		ck_assert_int_eq(f2, folder_id);
	}
	ck_assert_str_eq(journal_text(), journal);
	ck_assert_str_eq(count_messages(), "1");
	for (size_t i = 0; i < ARRAY_SIZE(others); i++) {
		ck_assert_msg(file_again(others[i], strlen(others[i]), &f2, &id2) == 0,
			      "other object %zu taken for a copy", i);
		ck_assert_int_ne(id2, id);
	}
	ck_assert_str_eq(count_messages(), "4");
	free((char *)journal);
}
END_TEST

/* Which earlier copies count: synced or on its way, not \Deleted, not an
 * APPEND given up; the key is the IMDN-Message-ID when there is one. */
START_TEST(test_file_same_object_which_copy)
{
	static const char imdn[] =
		"From: tel:+1111\r\nTo: tel:+2222\r\n"
		"Message-ID: <m@x>\r\nIMDN-Message-ID: imdn-1\r\n"
		"Conversation-ID: conv-I\r\nMessage-Direction: sent\r\n\r\nhi\r\n";
	int64_t folder_id = 0, id = 0, id2 = 0, id3 = 0, f2;
	char sql[160];

	ck_assert_int_eq(file_again(imdn, strlen(imdn), &folder_id, &id), 0);
	ck_assert_int_eq(file_again(imdn, strlen(imdn), &f2, &id2), 1);
	ck_assert_int_eq(id2, id);
	/* On the server now (its APPEND done): still that copy. */
	snprintf(sql, sizeof(sql),
		 "UPDATE message SET uid = 7 WHERE id = %lld;"
		 " DELETE FROM journal WHERE message_id = %lld",
		 (long long)id, (long long)id);
	ck_assert_int_eq(store_exec(s, sql), 0);
	ck_assert_int_eq(file_again(imdn, strlen(imdn), &f2, &id2), 1);
	ck_assert_int_eq(id2, id);
	/* Deleted: filed anew. */
	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(file_again(imdn, strlen(imdn), &f2, &id2), 0);
	ck_assert_int_ne(id2, id);
	/* Its APPEND given up: filed anew. */
	snprintf(sql, sizeof(sql), "UPDATE journal SET failed = 1 WHERE message_id = %lld",
		 (long long)id2);
	ck_assert_int_eq(store_exec(s, sql), 0);
	ck_assert_int_eq(file_again(imdn, strlen(imdn), &f2, &id3), 0);
	ck_assert_int_ne(id3, id2);
	ck_assert_str_eq(count_messages(), "3");
}
END_TEST

/* A copy whose body cannot be read (a damaged store) is no copy: the
 * object is filed, not refused for it. */
START_TEST(test_file_same_object_body_lost)
{
	int64_t folder_id = 0, id = 0, f2 = 0, id2 = 0;
	char sql[96];

	ck_assert_int_eq(file_again(chat, strlen(chat), &folder_id, &id), 0);
	snprintf(sql, sizeof(sql), "DELETE FROM body_inline WHERE message_id = %lld",
		 (long long)id);
	ck_assert_int_eq(store_exec(s, sql), 0);
	ck_assert_int_eq(file_again(chat, strlen(chat), &f2, &id2), 0);
	ck_assert_int_ne(id2, id);
	ck_assert_str_eq(count_messages(), "2");
}
END_TEST

/* A body in a pack (larger than the inline limit), compared to its end. */
START_TEST(test_file_same_object_large)
{
	static const char head[] = "From: tel:+1111\r\nMessage-ID: <big@x>\r\n"
				   "Conversation-ID: conv-B\r\n\r\n";
	size_t len = 300 * 1024;
	int64_t f = 0, id = 0, f2 = 0, id2 = 0;
	char *big = malloc(len);

	ck_assert_ptr_nonnull(big);
	memcpy(big, head, strlen(head));
	for (size_t i = strlen(head); i < len; i++)
		big[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	ck_assert_int_eq(file_again(big, len, &f, &id), 0);
	ck_assert_int_eq(file_again(big, len, &f2, &id2), 1);
	ck_assert_int_eq(id2, id);
	big[len - 2] = 'Z';
	ck_assert_int_eq(file_again(big, len, &f2, &id2), 0);
	ck_assert_int_ne(id2, id);
	ck_assert_str_eq(count_messages(), "2");
	free(big);
}
END_TEST

struct check_calls {
	unsigned n;
	char folder[64];
	int answer;
};

static int check_folder(const char *folder, void *userdata)
{
	struct check_calls *c = userdata;

	c->n++;
	snprintf(c->folder, sizeof(c->folder), "%s", folder);
	return c->answer;
}

/*
 * The caller's check of the folder (the daemon's folders setting) is
 * asked on the one reading of the header: a refusal is returned as it is,
 * nothing stored; an object from a pipe, which cannot be read twice, is
 * filed after the check.
 */
START_TEST(test_file_object_check)
{
	struct check_calls c = { .answer = -EPERM };
	int64_t folder_id = -1, id = -1, f;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], chat, strlen(chat)), (ssize_t)strlen(chat));
	ck_assert_int_eq(cpmsync_op_file_object_fd(cs, "a", "Default", p[0], strlen(chat), NULL, 0,
						   check_folder, &c, &folder_id, &id),
			 -EPERM);
	close(p[0]);
	close(p[1]);
	ck_assert_uint_eq(c.n, 1);
	ck_assert_str_eq(c.folder, "Default/conv-G");
	ck_assert_str_eq(cpmsync_store_error(cs), "the folder 'Default/conv-G' was refused");
	ck_assert_int_eq(id, -1);
	ck_assert_str_eq(journal_text(), "");
	ck_assert_str_eq(count_messages(), "0");

	c = (struct check_calls){ .answer = 0 };
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], chat, strlen(chat)), (ssize_t)strlen(chat));
	close(p[1]);
	ck_assert_int_eq(cpmsync_op_file_object_fd(cs, "a", "Default", p[0], strlen(chat), NULL, 0,
						   check_folder, &c, &folder_id, &id),
			 0);
	close(p[0]);
	ck_assert_uint_eq(c.n, 1);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default/conv-G", &f), 0);
	ck_assert_int_eq(folder_id, f);
	ck_assert_str_eq(count_messages(), "1");
}
END_TEST

/* The lookup reads the index of migration 33, not the folder. */
START_TEST(test_file_same_object_indexed)
{
	char *q = NULL;
	sqlite3_stmt *st;
	unsigned n = 0;

	ck_assert_int_ge(asprintf(&q, "EXPLAIN QUERY PLAN %s", store_sql_same_object), 0);
	ck_assert_int_eq(store_prepare(s, q, &st), 0);
	while (store_step(s, st) > 0) {
		const char *d = (const char *)sqlite3_column_text(st, 3);

		if (strstr(d, "USING INDEX message_object (<expr>=? AND folder_id=?)"))
			n++;
		ck_assert_msg(!strstr(d, "SCAN m"), "%s", d);
	}
	sqlite3_reset(st);
	free(q);
	ck_assert_uint_eq(n, 1);
}
END_TEST

static Suite *cpm_folders_suite(void)
{
	Suite *suite = suite_create("cpm-folders");
	TCase *tc = tcase_create("model");

	tcase_add_loop_test(tc, test_classify, 0,
			    (int)(sizeof(classify_cases) / sizeof(classify_cases[0])));
	tcase_add_test(tc, test_kind_names);
	tcase_add_test(tc, test_root_valid);
	tcase_add_test(tc, test_address_of);
	tcase_add_loop_test(tc, test_decide, 0,
			    (int)(sizeof(decide_cases) / sizeof(decide_cases[0])));
	suite_add_tcase(suite, tc);
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_file_new_session);
	tcase_add_test(tc, test_file_chat_and_sms);
	tcase_add_test(tc, test_file_refused_leaves_nothing);
	tcase_add_test(tc, test_file_peer_with_delimiter);
	tcase_add_test(tc, test_file_same_object_once);
	tcase_add_test(tc, test_file_same_object_which_copy);
	tcase_add_test(tc, test_file_same_object_reencoded);
	tcase_add_test(tc, test_file_same_object_large);
	tcase_add_test(tc, test_file_same_object_body_lost);
	tcase_add_test(tc, test_file_same_object_indexed);
	tcase_add_test(tc, test_file_object_check);
	suite_add_tcase(suite, tc);
	return suite;
}

TEST_MAIN(cpm_folders_suite)
