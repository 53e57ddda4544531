/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The typed journal (store/journal.c): the one name table, each
 * operation's argument encoder and decoder, malformed and old strings, the
 * attempt mark, and SQL naming operations through bound names.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/journal.h"
#include "store/store-sync.h"
#include "testlib.h"
#include "util/macro.h"

/* The names on disk: stores written by every earlier version use them. */
static const char *const disk_names[_JOURNAL_OP_MAX] = {
	[JOURNAL_OP_APPEND] = "append",
	[JOURNAL_OP_FLAGS] = "flags",
	[JOURNAL_OP_COPY] = "copy",
	[JOURNAL_OP_MOVE] = "move",
	[JOURNAL_OP_EXPUNGE] = "expunge",
	[JOURNAL_OP_CREATE_FOLDER] = "create_folder",
	[JOURNAL_OP_RENAME_FOLDER] = "rename_folder",
	[JOURNAL_OP_DELETE_FOLDER] = "delete_folder",
	[JOURNAL_OP_SET_METADATA] = "set_metadata",
	[JOURNAL_OP_SET_ACL] = "set_acl",
	[JOURNAL_OP_ANNOTATION] = "set_annotation",
};

START_TEST(test_names)
{
	enum journal_op op;

	for (int i = 0; i < _JOURNAL_OP_MAX; i++) {
		ck_assert_str_eq(journal_op_to_string((enum journal_op)i), disk_names[i]);
		ck_assert_int_eq(journal_op_from_string(disk_names[i], &op), 0);
		ck_assert_int_eq(op, i);
	}
	ck_assert_ptr_null(journal_op_to_string(_JOURNAL_OP_MAX));
	ck_assert_ptr_null(journal_op_to_string((enum journal_op) - 1));
	op = JOURNAL_OP_FLAGS;
	ck_assert_int_eq(journal_op_from_string("apend", &op), -EBADMSG);
	ck_assert_int_eq(journal_op_from_string("APPEND", &op), -EBADMSG);
	ck_assert_int_eq(journal_op_from_string("", &op), -EBADMSG);
	ck_assert_int_eq(journal_op_from_string(NULL, &op), -EBADMSG);
	ck_assert_int_eq(op, JOURNAL_OP_FLAGS); /* untouched */
}
END_TEST

/* encode, then decode what was encoded. */
static char *round_trip(const struct journal_args *in, struct journal_args *out)
{
	char *s = NULL;
	const char *why = NULL;

	ck_assert_int_eq(journal_args_encode(in, &s), 0);
	ck_assert_int_eq(journal_args_decode(in->op, s, out, &why), 0);
	ck_assert_ptr_null(why);
	return s;
}

START_TEST(test_args_round_trip)
{
	struct journal_args out;
	char *s;

	s = round_trip(&(struct journal_args){ .op = JOURNAL_OP_COPY, .copy.src_id = 42 }, &out);
	ck_assert_str_eq(s, "src=42");
	ck_assert_int_eq(out.copy.src_id, 42);
	journal_args_free(&out);
	free(s);

	s = round_trip(
		&(struct journal_args){ .op = JOURNAL_OP_MOVE, .copy.src_id = 9007199254740993LL },
		&out);
	ck_assert_str_eq(s, "src=9007199254740993");
	ck_assert_int_eq(out.copy.src_id, 9007199254740993LL);
	journal_args_free(&out);
	free(s);

	s = round_trip(&(struct journal_args){ .op = JOURNAL_OP_RENAME_FOLDER,
					       .rename.new_name = "Old/Archive" },
		       &out);
	ck_assert_str_eq(s, "Old/Archive");
	ck_assert_str_eq(out.rename.new_name, "Old/Archive");
	journal_args_free(&out);
	free(s);

	/* The value may hold newlines; only the first one separates. */
	s = round_trip(&(struct journal_args){ .op = JOURNAL_OP_SET_METADATA,
					       .metadata = { "/private/comment", "a\nb" } },
		       &out);
	ck_assert_str_eq(s, "/private/comment\na\nb");
	ck_assert_str_eq(out.metadata.entry, "/private/comment");
	ck_assert_str_eq(out.metadata.value, "a\nb");
	journal_args_free(&out);
	free(s);

	/* An empty value (remove the entry); a NULL one is empty too. */
	s = round_trip(&(struct journal_args){ .op = JOURNAL_OP_SET_METADATA,
					       .metadata = { "/shared/x", NULL } },
		       &out);
	ck_assert_str_eq(s, "/shared/x\n");
	ck_assert_str_eq(out.metadata.value, "");
	journal_args_free(&out);
	free(s);

	s = round_trip(&(struct journal_args){ .op = JOURNAL_OP_SET_ACL, .acl = { "bob", "lrs" } },
		       &out);
	ck_assert_str_eq(s, "bob\nlrs");
	ck_assert_str_eq(out.acl.identifier, "bob");
	ck_assert_str_eq(out.acl.rights, "lrs");
	journal_args_free(&out);
	free(s);

	/* Operations without arguments store NULL and read anything. */
	for (int op = 0; op < _JOURNAL_OP_MAX; op++) {
		if (op == JOURNAL_OP_COPY || op == JOURNAL_OP_MOVE ||
		    op == JOURNAL_OP_RENAME_FOLDER || op == JOURNAL_OP_SET_METADATA ||
		    op == JOURNAL_OP_SET_ACL)
			continue;
		s = (char *)"x";
		ck_assert_int_eq(journal_args_encode(&(struct journal_args){ .op = op }, &s), 0);
		ck_assert_ptr_null(s);
		ck_assert_int_eq(journal_args_decode(op, "whatever", &out, NULL), 0);
		ck_assert_int_eq(journal_args_decode(op, NULL, &out, NULL), 0);
		journal_args_free(&out);
	}
}
END_TEST

static void expect_bad(enum journal_op op, const char *s, const char *why_part)
{
	struct journal_args out = { .op = JOURNAL_OP_FLAGS, .buf_ = NULL };
	const char *why = NULL;

	ck_assert_int_eq(journal_args_decode(op, s, &out, &why), -EBADMSG);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, why_part), "'%s' does not say '%s'", why, why_part);
	ck_assert_ptr_null(out.buf_);
	/* Freeing after a failure is harmless. */
	journal_args_free(&out);
}

START_TEST(test_args_malformed)
{
	char *s = (char *)"untouched";

	expect_bad(JOURNAL_OP_COPY, NULL, "src=");
	expect_bad(JOURNAL_OP_COPY, "", "src=");
	expect_bad(JOURNAL_OP_COPY, "src=", "src=");
	expect_bad(JOURNAL_OP_COPY, "src=0", "src=");
	expect_bad(JOURNAL_OP_COPY, "src=-3", "src=");
	expect_bad(JOURNAL_OP_COPY, "src=12x", "src=");
	expect_bad(JOURNAL_OP_COPY, "source=12", "src=");
	expect_bad(JOURNAL_OP_MOVE, "src=99999999999999999999", "src=");
	expect_bad(JOURNAL_OP_RENAME_FOLDER, NULL, "name");
	expect_bad(JOURNAL_OP_RENAME_FOLDER, "", "name");
	expect_bad(JOURNAL_OP_SET_METADATA, NULL, "<entry>");
	expect_bad(JOURNAL_OP_SET_METADATA, "/private/comment", "<entry>");
	expect_bad(JOURNAL_OP_SET_METADATA, "\nvalue", "<entry>");
	expect_bad(JOURNAL_OP_SET_ACL, "bob lrs", "<identifier>");
	expect_bad(_JOURNAL_OP_MAX, "src=1", "operation");

	/* What the formats cannot carry is refused, not written. */
	ck_assert_int_eq(journal_args_encode(&(struct journal_args){ .op = JOURNAL_OP_COPY }, &s),
			 -EINVAL);
	ck_assert_int_eq(journal_args_encode(&(struct journal_args){ .op = JOURNAL_OP_SET_ACL,
								     .acl = { "a\nb", "l" } },
					     &s),
			 -EINVAL);
	ck_assert_int_eq(
		journal_args_encode(&(struct journal_args){ .op = JOURNAL_OP_SET_METADATA }, &s),
		-EINVAL);
	ck_assert_int_eq(
		journal_args_encode(&(struct journal_args){ .op = JOURNAL_OP_RENAME_FOLDER }, &s),
		-EINVAL);
	ck_assert_int_eq(journal_args_encode(&(struct journal_args){ .op = _JOURNAL_OP_MAX }, &s),
			 -EINVAL);
	ck_assert_str_eq(s, "untouched");
}
END_TEST

START_TEST(test_attempt_mark)
{
	char buf[JOURNAL_ATTEMPT_MAX];
	uint32_t u = 5;

	journal_attempt_encode(4294967295u, buf, sizeof(buf));
	ck_assert_str_eq(buf, "uidnext=4294967295");
	ck_assert_int_eq(journal_attempt_decode(buf, &u), 0);
	ck_assert_uint_eq(u, 4294967295u);
	u = 5;
	ck_assert_int_eq(journal_attempt_decode(NULL, &u), -EBADMSG);
	ck_assert_int_eq(journal_attempt_decode("uidnext=", &u), -EBADMSG);
	ck_assert_int_eq(journal_attempt_decode("uidnext=4294967296", &u), -EBADMSG);
	ck_assert_int_eq(journal_attempt_decode("uidnext=7 ", &u), -EBADMSG);
	ck_assert_int_eq(journal_attempt_decode("modseq=7", &u), -EBADMSG);
	ck_assert_uint_eq(u, 5);
}
END_TEST

START_TEST(test_create_attempt_mark)
{
	_cleanup_free_ char *s = NULL;
	const char *name = "unchanged";

	ck_assert_int_eq(journal_create_attempt_encode("Projects/2026 \xc3\xa9", &s), 0);
	ck_assert_str_eq(s, "name=Projects/2026 \xc3\xa9");
	ck_assert_int_eq(journal_create_attempt_decode(s, &name), 0);
	ck_assert_str_eq(name, "Projects/2026 \xc3\xa9");
	ck_assert_int_eq(journal_create_attempt_encode("", &s), -EINVAL);
	ck_assert_int_eq(journal_create_attempt_encode(NULL, &s), -EINVAL);
	name = "unchanged";
	ck_assert_int_eq(journal_create_attempt_decode(NULL, &name), -EBADMSG);
	ck_assert_int_eq(journal_create_attempt_decode("name=", &name), -EBADMSG);
	/* A mark of another operation is not a name. */
	ck_assert_int_eq(journal_create_attempt_decode("uidnext=5", &name), -EBADMSG);
	ck_assert_str_eq(name, "unchanged");
}
END_TEST

START_TEST(test_flags_attempt_mark)
{
	char *m = NULL, *m2 = NULL;

	/* The first set; no flags at all is a set too (STORE FLAGS ()). */
	ck_assert_int_eq(journal_flags_attempt_add(NULL, "$Work \\Answered", &m), 0);
	ck_assert_str_eq(m, "flags=$Work \\Answered");
	ck_assert(journal_flags_attempt_has(m, "$Work \\Answered"));
	ck_assert(!journal_flags_attempt_has(m, "\\Answered"));
	ck_assert(!journal_flags_attempt_has(m, ""));
	ck_assert(journal_flags_attempt_only(m, "$Work \\Answered"));
	ck_assert(!journal_flags_attempt_only(m, "\\Answered"));
	/* Another one, newest last; the newest again changes nothing. */
	ck_assert_int_eq(journal_flags_attempt_add(m, "", &m2), 0);
	ck_assert_str_eq(m2, "flags=$Work \\Answered\n");
	ck_assert(journal_flags_attempt_has(m2, ""));
	ck_assert(journal_flags_attempt_has(m2, "$Work \\Answered"));
	ck_assert(!journal_flags_attempt_only(m2, ""));
	free(m);
	ck_assert_int_eq(journal_flags_attempt_add(m2, "", &m), 0);
	ck_assert_str_eq(m, m2);
	free(m2);
	/* At most JOURNAL_FLAGS_MARKS: the oldest goes. */
	ck_assert_int_eq(journal_flags_attempt_add(m, "a", &m2), 0);
	free(m);
	ck_assert_int_eq(journal_flags_attempt_add(m2, "b", &m), 0);
	ck_assert_str_eq(m, "flags=$Work \\Answered\n\na\nb");
	free(m2);
	ck_assert_int_eq(journal_flags_attempt_add(m, "c", &m2), 0);
	ck_assert_str_eq(m2, "flags=\na\nb\nc");
	ck_assert(!journal_flags_attempt_has(m2, "$Work \\Answered"));
	ck_assert(journal_flags_attempt_has(m2, "a") && journal_flags_attempt_has(m2, "c"));
	free(m);
	free(m2);
	/* No mark, or another operation's: no sets. */
	ck_assert(journal_flags_attempt_only(NULL, "x"));
	ck_assert(!journal_flags_attempt_has(NULL, ""));
	ck_assert(!journal_flags_attempt_has("uidnext=5", "uidnext=5"));
	ck_assert(journal_flags_attempt_only("name=x", "y"));
	ck_assert_int_eq(journal_flags_attempt_add("uidnext=5", "x", &m), 0);
	ck_assert_str_eq(m, "flags=x");
	free(m);
}
END_TEST

static char tmpdir[64];

START_TEST(test_store_rows)
{
	struct journal_args args = { .op = JOURNAL_OP_SET_ACL, .acl = { "bob", "" } };
	struct journal_entry j;
	struct store *s = NULL;
	sqlite3_stmt *st;
	char path[128];
	int64_t acc, inbox;

	strcpy(tmpdir, "/tmp/test-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/store.db", tmpdir);
	ck_assert_int_eq(store_open(path, 0, &s, NULL), 0);
	ck_assert_int_eq(store_sync_account(s, "a", &acc), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc, "INBOX", NULL, false, &inbox), 0);

	/* Typed rows go to disk under today's names and come back typed. */
	ck_assert_int_eq(store_journal_add(s, acc, JOURNAL_OP_SET_ACL, inbox, 0, &args), 0);
	ck_assert_int_eq(store_journal_add(s, acc, JOURNAL_OP_FLAGS, inbox, 0, &args), -EINVAL);
	ck_assert_int_eq(store_journal_add(s, acc, _JOURNAL_OP_MAX, inbox, 0, NULL), -EINVAL);
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO journal (account_id, op) VALUES (1, 'frobnicate')"), 0);
	ck_assert_int_eq(store_journal_next(s, acc, INT64_MIN, &j), 1);
	ck_assert_int_eq(j.op, JOURNAL_OP_SET_ACL);
	ck_assert_str_eq(j.op_name, "set_acl");
	ck_assert_str_eq(j.args, "bob\n");
	journal_entry_free_contents(&j);
	/* A name this version does not know is reported, not guessed. */
	ck_assert_int_eq(store_journal_next(s, acc, 1, &j), 1);
	ck_assert_int_eq(j.op, _JOURNAL_OP_MAX);
	ck_assert_str_eq(j.op_name, "frobnicate");
	journal_entry_free_contents(&j);

	/* SQL names operations through the table. */
	ck_assert_int_eq(store_prepare(s,
				       "SELECT count(*) FROM journal WHERE op IN (:op_set_acl,"
				       " :op_flags)",
				       &st),
			 0);
	ck_assert_int_eq(journal_bind_ops(s, st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
	sqlite3_reset(st);
	/* A typo fails on the first run, naming it. */
	ck_assert_int_eq(store_prepare(s, "SELECT 1 FROM journal WHERE op = :op_set_acls", &st), 0);
	ck_assert_int_eq(journal_bind_ops(s, st), -EINVAL);
	ck_assert_ptr_nonnull(strstr(store_error(s), ":op_set_acls"));
	/* A numbered parameter after a named one could share its index. */
	ck_assert_int_eq(
		store_prepare(s, "SELECT 1 FROM journal WHERE op = :op_flags AND id = ?1", &st), 0);
	ck_assert_int_eq(journal_bind_ops(s, st), -EINVAL);

	s = store_close(s);
	test_rm_rf(tmpdir);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *su = suite_create("journal");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_args_round_trip);
	tcase_add_test(tc, test_args_malformed);
	tcase_add_test(tc, test_attempt_mark);
	tcase_add_test(tc, test_create_attempt_mark);
	tcase_add_test(tc, test_flags_attempt_mark);
	tcase_add_test(tc, test_store_rows);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(journal_suite)
