/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's decisions (engine/plan.c) and the flag merge
 * (util/flags.c), over scenario tables: no I/O anywhere.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/account.h>

#include "engine/plan.h"
#include "testlib.h"
#include "util/flags.h"

/* ------------------------------------------------------------------ */
/* Flag sets and the three-way merge */

static const struct {
	const char *in[6];
	const char *want; /* NULL: -EINVAL */
} from_list_cases[] = {
	{ { NULL }, "" },
	{ { "\\seen", NULL }, "\\Seen" },
	{ { "\\Seen", "\\SEEN", "$Work", NULL }, "$Work \\Seen" },
	{ { "\\Recent", "\\Flagged", NULL }, "\\Flagged" },
	/* Flags compare case-insensitively: the first spelling stays. */
	{ { "b", "a", "B", NULL }, "a b" },
	{ { "UPPER", "Foo", "upper", "foo", "FOO", NULL }, "Foo UPPER" },
	{ { "\\Bogus", NULL }, NULL },
	{ { "has space", NULL }, NULL },
	{ { "par(en", NULL }, NULL },
	{ { "", NULL }, NULL },
	{ { "\\*", NULL }, NULL },
};

START_TEST(test_flags_from_list)
{
	const char *const *in = from_list_cases[_i].in;
	size_t n = 0;
	char *out = NULL;
	int r;

	while (in[n])
		n++;
	r = flags_from_list(in, n, &out);
	if (!from_list_cases[_i].want) {
		ck_assert_int_eq(r, -EINVAL);
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_str_eq(out, from_list_cases[_i].want);
	free(out);
}
END_TEST

/* base, local, remote -> merged (dsync's rule). */
static const struct {
	const char *base, *local, *remote, *want;
} merge_cases[] = {
	/* Nothing local: the server wins. */
	{ "\\Seen", "\\Seen", "\\Flagged \\Seen", "\\Flagged \\Seen" },
	{ "\\Seen", "\\Seen", "", "" },
	/* Local add and a remote add of another flag: both. */
	{ "", "\\Flagged", "\\Seen", "\\Flagged \\Seen" },
	/* Local remove, remote add of another flag: both. */
	{ "\\Seen", "", "$Work \\Seen", "$Work" },
	/* Same change on both sides. */
	{ "", "\\Seen", "\\Seen", "\\Seen" },
	/* Local removed what the server also removed. */
	{ "\\Seen", "", "", "" },
	/* Local re-adds a flag the server removed meanwhile: local change wins
	 * only for flags it touched; here local did not touch \Seen. */
	{ "\\Seen \\Answered", "\\Seen \\Answered \\Flagged", "\\Answered",
	  "\\Answered \\Flagged" },
	/* The example: local +\Flagged -\Seen, server +$Work -\Answered. */
	{ "\\Answered \\Seen", "\\Answered \\Flagged", "$Work \\Seen", "$Work \\Flagged" },
	/* Keywords compare case-insensitively, as the servers compare them:
	 * the same keyword added on both sides is one, the server's spelling. */
	{ "", "$label", "$Label", "$Label" },
	/* Removed here in another case than the server's: removed. */
	{ "Foo \\Seen", "\\Seen", "Foo \\Seen", "\\Seen" },
	{ "foo", "", "FOO $Work", "$Work" },
};

START_TEST(test_flags_merge3)
{
	char *out = NULL;

	ck_assert_int_eq(flags_merge3(merge_cases[_i].base, merge_cases[_i].local,
				      merge_cases[_i].remote, &out),
			 0);
	ck_assert_msg(strcmp(out, merge_cases[_i].want) == 0, "case %d: got '%s' want '%s'", _i,
		      out, merge_cases[_i].want);
	free(out);
}
END_TEST

START_TEST(test_flags_diff_apply)
{
	char *add = NULL, *del = NULL, *back = NULL;

	ck_assert_int_eq(flags_diff("$A \\Seen", "$B \\Seen", &add, &del), 0);
	ck_assert_str_eq(add, "$B");
	ck_assert_str_eq(del, "$A");
	ck_assert_int_eq(flags_apply("$A \\Seen", add, del, &back), 0);
	ck_assert_str_eq(back, "$B \\Seen");
	ck_assert(flags_has(back, "\\seen"));
	ck_assert(flags_has(back, "$b"));
	free(back);
	/* -foo removes Foo; +UPPER onto upper adds nothing. */
	ck_assert_int_eq(flags_apply("Foo \\Seen", "", "foo", &back), 0);
	ck_assert_str_eq(back, "\\Seen");
	free(back);
	ck_assert_int_eq(flags_apply("upper", "UPPER $x", "", &back), 0);
	ck_assert_str_eq(back, "$x upper");
	free(back);
	free(add);
	free(del);
	ck_assert_int_eq(flags_diff("Foo", "foo", &add, &del), 0);
	ck_assert_str_eq(add, "");
	ck_assert_str_eq(del, "");
	free(add);
	free(del);
	add = del = NULL;
	ck_assert_int_eq(flags_apply("$A \\Seen", "$B", "$A", &back), 0);
	ck_assert(!flags_has(back, "$A"));
	ck_assert_uint_eq(flags_count(back), 2);
	ck_assert_uint_eq(flags_count(""), 0);
	free(add);
	free(del);
	free(back);
}
END_TEST

/* ------------------------------------------------------------------ */
/* LIST patterns */

static const struct {
	const char *pattern, *name;
	bool want;
} pattern_cases[] = {
	{ "*", "INBOX", true },		{ "*", "a/b/c", true },		 { "%", "a", true },
	{ "%", "a/b", false },		{ "a/%", "a/b", true },		 { "a/%", "a/b/c", false },
	{ "a/*", "a/b/c", true },	{ "a*", "abc/d", true },	 { "INBOX", "inbox", true },
	{ "inbox/%", "INBOX/x", true }, { "INBOX/x", "INBOX/X", false }, { "Sent", "sent", false },
	{ "*c", "abc", true },		{ "*c", "abd", false },		 { "", "", true },
	{ "a%c", "ab/c", false },	{ "a%c", "abbc", true },
};

START_TEST(test_pattern)
{
	ck_assert_msg(plan_pattern_match(pattern_cases[_i].pattern, pattern_cases[_i].name) ==
			      pattern_cases[_i].want,
		      "'%s' vs '%s'", pattern_cases[_i].pattern, pattern_cases[_i].name);
}
END_TEST

START_TEST(test_patterns)
{
	const char *const pats[] = { "INBOX", "Work/*", NULL };

	ck_assert(plan_patterns_match(NULL, "anything"));
	ck_assert(plan_patterns_match(pats, "INBOX"));
	ck_assert(plan_patterns_match(pats, "Work/a/b"));
	ck_assert(!plan_patterns_match(pats, "Work"));
	ck_assert(!plan_patterns_match(pats, "Sent"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Folder planning: scenario tables */

#define MAXF 6

struct folder_scenario {
	const char *what;
	bool with_modseq;
	struct plan_remote_folder remote[MAXF];
	struct plan_local_folder local[MAXF];
	/* Expected actions, as "KIND:local:remote" strings in output order. */
	const char *want[MAXF * 2];
};

#define R(n, ...)                                                                                  \
	{                                                                                          \
		.name = n, __VA_ARGS__                                                             \
	}
#define L(i, n, sn, ...)                                                                           \
	{                                                                                          \
		.id = i, .name = n, .server_name = sn, __VA_ARGS__                                 \
	}

static const struct folder_scenario folder_scenarios[] = {
	{ "first sync: everything new",
	  true,
	  { R("INBOX"), R("Sent"), R("Archive/2024") },
	  { { 0 } },
	  { "ADD:-:0", "ADD:-:1", "ADD:-:2" } },
	{ "nothing changed (LIST-STATUS equal): no SELECT",
	  true,
	  { R("INBOX", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55) },
	  { L(1, "INBOX", "INBOX", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9) },
	  { "UNCHANGED:0:0" } },
	{ "nothing changed but sync_bodies grew: sync (to fetch the bodies now wanted)",
	  true,
	  { R("INBOX", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55) },
	  { L(1, "INBOX", "INBOX", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9, .bodies_behind = true) },
	  { "SYNC:0:0" } },
	{ "HIGHESTMODSEQ moved: sync",
	  true,
	  { R("INBOX", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 56) },
	  { L(1, "INBOX", "INBOX", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9) },
	  { "SYNC:0:0" } },
	{ "an expunge shows in MESSAGES even if HIGHESTMODSEQ were equal",
	  true,
	  { R("INBOX", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 8,
	      .highestmodseq = 55) },
	  { L(1, "INBOX", "INBOX", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9) },
	  { "SYNC:0:0" } },
	{ "without CONDSTORE equal STATUS proves nothing (flags)",
	  false,
	  { R("INBOX", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55) },
	  { L(1, "INBOX", "INBOX", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9) },
	  { "SYNC:0:0" } },
	{ "deleted on the server: deleted locally",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "Old", "Old", .uidvalidity = 3) },
	  { "SYNC:0:0", "DELETE:1:-" } },
	{ "deleted on the server with local appends waiting: re-created",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "Old", "Old", .has_content_ops = true) },
	  { "SYNC:0:0", "RECREATE:1:-" } },
	/* Another user's or a shared folder, no longer listed: access lost or
	 * deleted by its owner.  Never re-created (not the account's to
	 * make): LOST while changes wait, else dropped locally. */
	{ "another user's folder gone, an append waiting: lost, not re-created",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "#Users/bob/Shared2", "#Users/bob/Shared2",
				      .has_content_ops = true, .has_ops = true, .foreign = true) },
	  { "SYNC:0:0", "LOST:1:-" } },
	{ "a shared folder gone, a flag change waiting: lost (not silently dropped)",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "#Shared/Team", "#Shared/Team", .has_ops = true, .foreign = true) },
	  { "SYNC:0:0", "LOST:1:-" } },
	{ "another user's folder gone, nothing waiting: dropped locally",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "#Users/bob/Shared2", "#Users/bob/Shared2", .foreign = true) },
	  { "SYNC:0:0", "DELETE:1:-" } },
	{ "another user's folder gone, its local DELETE waiting: dropped locally",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "#Users/bob/Old", "#Users/bob/Old", .removed = true,
				      .has_ops = true, .foreign = true) },
	  { "SYNC:0:0", "DELETE:1:-" } },
	/* Out of view: LIST could not show it (the folders setting no longer
	 * matches it, or its namespace is hidden now).  Its absence says
	 * nothing of the server: never re-created there, kept while changes
	 * of it wait, else dropped locally. */
	{ "out of view, an append waiting: kept, not re-created",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "Archive", "Archive", .has_content_ops = true,
				      .has_ops = true, .out_of_view = true) },
	  { "SYNC:0:0", "KEEP:1:-" } },
	{ "out of view, a flag change waiting: kept (it goes to the folder as it is)",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "Archive", "Archive", .has_ops = true, .out_of_view = true) },
	  { "SYNC:0:0", "KEEP:1:-" } },
	{ "out of view, its local DELETE waiting: kept, so that the DELETE goes",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "Archive", "Archive", .removed = true, .has_ops = true, .out_of_view = true) },
	  { "SYNC:0:0", "KEEP:1:-" } },
	{ "out of view, nothing waiting: dropped locally",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "Archive", "Archive", .out_of_view = true) },
	  { "SYNC:0:0", "DELETE:1:-" } },
	{ "out of view but listed (a personal folder named like a hidden root): synced",
	  true,
	  { R("INBOX"), R("#Users/x") },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "#Users/x", "#Users/x", .has_ops = true, .out_of_view = true) },
	  { "SYNC:0:0", "SYNC:1:1" } },
	{ "renamed on the server: same UIDVALIDITY keeps the folder",
	  true,
	  { R("INBOX"), R("Projects/2025", .has_status = true, .uidvalidity = 42, .uidnext = 5,
			  .messages = 4) },
	  { L(1, "INBOX", "INBOX"), L(2, "Projects/2024", "Projects/2024", .uidvalidity = 42) },
	  { "SYNC:0:0", "RENAMED:1:1" } },
	{ "two folders swapped on the server: each follows its UIDVALIDITY, not its name",
	  true,
	  { R("X2", .has_status = true, .uidvalidity = 20),
	    R("Y2", .has_status = true, .uidvalidity = 10) },
	  { L(1, "X2", "X2", .uidvalidity = 10), L(2, "Y2", "Y2", .uidvalidity = 20) },
	  { "RENAMED:1:0", "RENAMED:0:1" } },
	{ "A renamed A.old and a new A made on the server: A follows, the new one is added",
	  true,
	  { R("W1old", .has_status = true, .uidvalidity = 10),
	    R("W1", .has_status = true, .uidvalidity = 30) },
	  { L(1, "W1", "W1", .uidvalidity = 10) },
	  { "RENAMED:0:0", "ADD:-:1" } },
	{ "re-created, its old UIDVALIDITY another folder's too (Cyrus: made in the same second): "
	  "a reset, not a rename",
	  true,
	  { R("A", .has_status = true, .uidvalidity = 10),
	    R("X", .has_status = true, .uidvalidity = 30) },
	  { L(1, "A", "A", .uidvalidity = 10), L(2, "X", "X", .uidvalidity = 10) },
	  { "SYNC:0:0", "SYNC:1:1" } },
	{ "B deleted, A renamed B on the server: A follows its UIDVALIDITY, B is folded into it",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10) },
	  { L(1, "A", "A", .uidvalidity = 10), L(2, "B", "B", .uidvalidity = 20) },
	  { "RENAMED:0:0", "FOLD:1:0>0" } },
	{ "the same when B waits for local appends: they go where the server's B is",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10) },
	  { L(1, "A", "A", .uidvalidity = 10),
	    L(2, "B", "B", .uidvalidity = 20, .has_content_ops = true) },
	  { "RENAMED:0:0", "FOLD:1:0>0" } },
	{ "the same on Cyrus, A and B made in the same second: told by MAILBOXID",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10, .mailboxid = "M-A") },
	  { L(1, "B", "B", .uidvalidity = 10, .mailboxid = "M-B"),
	    L(2, "A", "A", .uidvalidity = 10, .mailboxid = "M-A") },
	  { "RENAMED:1:0", "FOLD:0:0>1" } },
	{ "one UIDVALIDITY for every folder and no MAILBOXID: no evidence, B synced, A gone",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10) },
	  { L(1, "A", "A", .uidvalidity = 10), L(2, "B", "B", .uidvalidity = 10) },
	  { "SYNC:1:0", "DELETE:0:-" } },
	{ "B re-created, A (B's new UIDVALIDITY) still there under its name: both synced",
	  true,
	  { R("A", .has_status = true, .uidvalidity = 10),
	    R("B", .has_status = true, .uidvalidity = 10) },
	  { L(1, "A", "A", .uidvalidity = 10), L(2, "B", "B", .uidvalidity = 20) },
	  { "SYNC:0:0", "SYNC:1:1" } },
	{ "A's own RENAME pending: not taken for the folder now under B",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10) },
	  { L(1, "A2", "A", .uidvalidity = 10, .rename_pending = true),
	    L(2, "B", "B", .uidvalidity = 20) },
	  { "SYNC:1:0", "DELETE:0:-" } },
	{ "two names, one folder renamed: only one takes it, the other is synced",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10),
	    R("C", .has_status = true, .uidvalidity = 10) },
	  { L(1, "A", "A", .uidvalidity = 10), L(2, "B", "B", .uidvalidity = 20),
	    L(3, "C", "C", .uidvalidity = 30) },
	  { "SYNC:2:1", "RENAMED:0:0", "FOLD:1:0>0" } },
	{ "renamed and UIDVALIDITY differs: a new folder, the old one deleted",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 43) },
	  { L(2, "Old", "Old", .uidvalidity = 42) },
	  { "ADD:-:0", "DELETE:0:-" } },
	{ "deleted and re-created with the same name: one folder (UIDVALIDITY seen at SELECT)",
	  true,
	  { R("Box", .has_status = true, .uidvalidity = 99, .uidnext = 1) },
	  { L(2, "Box", "Box", .uidvalidity = 42, .uidnext = 7, .highestmodseq = 3) },
	  { "SYNC:0:0" } },
	{ "local CREATE pending: kept, nothing to sync",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "Mine", NULL) },
	  { "SYNC:0:0" } },
	{ "local CREATE that reached the server before a crash: confirmed",
	  true,
	  { R("INBOX"), R("Mine") },
	  { L(1, "INBOX", "INBOX"), L(2, "Mine", NULL) },
	  { "SYNC:0:0", "CONFIRM:1:1" } },
	{ "local RENAME pending: synced under its server name",
	  true,
	  { R("Old") },
	  { L(2, "New", "Old", .rename_pending = true) },
	  { "SYNC:0:0" } },
	{ "local RENAME that reached the server before a crash: confirmed",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42) },
	  { L(2, "New", "Old", .rename_pending = true, .uidvalidity = 42) },
	  { "CONFIRM:0:0" } },
	/* S renamed to S2 here while another client renamed it to S1: what
	 * the server moved along with S keeps its local name (S2/kid), S's
	 * RENAME S1 S2 takes it there; only what it moved elsewhere or
	 * apart from S follows the server. */
	{ "S -> S2 pending, S -> S1 there: S1/kid is S2/kid, confirmed",
	  true,
	  { R("S1", .has_status = true, .uidvalidity = 42),
	    R("S1/kid", .has_status = true, .uidvalidity = 43),
	    R("S1/kid/g", .has_status = true, .uidvalidity = 44) },
	  { L(1, "S2", "S", .rename_pending = true, .uidvalidity = 42),
	    L(2, "S2/kid", "S/kid", .uidvalidity = 43),
	    L(3, "S2/kid/g", "S/kid/g", .uidvalidity = 44) },
	  { "CONFIRM:0:0", "CONFIRM:1:1", "CONFIRM:2:2" } },
	{ "the same, S/kid moved apart from S there: renamed as the server has it",
	  true,
	  { R("S1", .has_status = true, .uidvalidity = 42),
	    R("S1/kid2", .has_status = true, .uidvalidity = 43),
	    R("T/kid", .has_status = true, .uidvalidity = 44) },
	  { L(1, "S2", "S", .rename_pending = true, .uidvalidity = 42),
	    L(2, "S2/kid", "S/kid", .uidvalidity = 43),
	    L(3, "S2/other", "S/other", .uidvalidity = 44) },
	  { "CONFIRM:0:0", "RENAMED:1:1", "RENAMED:2:2" } },
	{ "the same, S's RENAME not pending: S/kid renamed as the server has it",
	  true,
	  { R("S1", .has_status = true, .uidvalidity = 42),
	    R("S1/kid", .has_status = true, .uidvalidity = 43) },
	  { L(1, "S", "S", .uidvalidity = 42), L(2, "S/kid", "S/kid", .uidvalidity = 43) },
	  { "RENAMED:0:0", "RENAMED:1:1" } },
	{ "local DELETE pending: neither synced nor re-added",
	  true,
	  { R("INBOX"), R("Gone") },
	  { L(1, "INBOX", "INBOX"), L(2, "Gone", "Gone", .removed = true) },
	  { "SYNC:0:0" } },
	{ "local DELETE that reached the server: row dropped",
	  true,
	  { R("INBOX") },
	  { L(1, "INBOX", "INBOX"), L(2, "Gone", "Gone", .removed = true) },
	  { "SYNC:0:0", "DELETE:1:-" } },
	/* A pending DELETE or RENAME whose command reached the server before a
	 * crash, while a later RENAME of ours moved another folder to its name
	 * (test-sync-crash, CRASH_SEED=94805): the folder now under the name is
	 * told apart by its UIDVALIDITY or MAILBOXID. */
	{ "DELETE A, RENAME B A, both sent before a crash: A's row goes, B confirmed",
	  true,
	  { R("A", .has_status = true, .uidvalidity = 839) },
	  { L(1, "A2", "A", .removed = true, .uidvalidity = 838),
	    L(2, "A", "B", .rename_pending = true, .uidvalidity = 839) },
	  { "DELETE:0:-", "CONFIRM:1:0" } },
	{ "DELETE A, RENAME B A, neither sent yet: A left alone, B synced as B",
	  true,
	  { R("A", .has_status = true, .uidvalidity = 838),
	    R("B", .has_status = true, .uidvalidity = 839) },
	  { L(1, "A2", "A", .removed = true, .uidvalidity = 838),
	    L(2, "A", "B", .rename_pending = true, .uidvalidity = 839) },
	  { "SYNC:1:1" } },
	{ "DELETE A, RENAME B A, told apart by MAILBOXID alone",
	  true,
	  { R("A", .has_status = true, .uidvalidity = 7, .mailboxid = "M-B") },
	  { L(1, "A2", "A", .removed = true, .uidvalidity = 7, .mailboxid = "M-A"),
	    L(2, "A", "B", .rename_pending = true, .uidvalidity = 7, .mailboxid = "M-B") },
	  { "DELETE:0:-", "CONFIRM:1:0" } },
	{ "RENAME S X, RENAME Y S, both sent before a crash: both confirmed",
	  true,
	  { R("X", .has_status = true, .uidvalidity = 10),
	    R("S", .has_status = true, .uidvalidity = 20) },
	  { L(1, "X", "S", .rename_pending = true, .uidvalidity = 10),
	    L(2, "S", "Y", .rename_pending = true, .uidvalidity = 20) },
	  { "CONFIRM:0:0", "CONFIRM:1:1" } },
	{ "RENAME A B sent (answer lost), then renamed to C locally: B confirmed, RENAME B C next",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 42) },
	  { L(2, "C", "A", .rename_pending = true, .uidvalidity = 42) },
	  { "CONFIRM:0:0" } },
	{ "RENAME A C pending, another client renamed A to X: X confirmed, not a new folder",
	  true,
	  { R("X", .has_status = true, .uidvalidity = 42, .mailboxid = "M-A") },
	  { L(2, "C", "A", .rename_pending = true, .uidvalidity = 42, .mailboxid = "M-A"),
	    L(3, "Other", "Other", .uidvalidity = 43) },
	  { "CONFIRM:0:0", "DELETE:1:-" } },
	{ "RENAME A C pending, same UIDVALIDITY but another MAILBOXID: not that folder",
	  true,
	  { R("X", .has_status = true, .uidvalidity = 42, .mailboxid = "M-X") },
	  { L(2, "C", "A", .rename_pending = true, .uidvalidity = 42, .mailboxid = "M-A") },
	  { "ADD:-:0", "DELETE:0:-" } },
	{ "RENAME A B sent (answer lost), then deleted locally: the DELETE goes to B",
	  true,
	  { R("INBOX"), R("B", .has_status = true, .uidvalidity = 42, .mailboxid = "M-A") },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "A2", "A", .removed = true, .uidvalidity = 42, .mailboxid = "M-A") },
	  { "SYNC:0:0", "DELETE_THERE:1:1" } },
	{ "the same told by UIDVALIDITY alone: no DELETE moved to B (it comes back)",
	  true,
	  { R("INBOX"), R("B", .has_status = true, .uidvalidity = 42) },
	  { L(1, "INBOX", "INBOX"), L(2, "A2", "A", .removed = true, .uidvalidity = 42) },
	  { "SYNC:0:0", "ADD:-:1", "DELETE:1:-" } },
	{ "local DELETE pending, the name made anew by another client: row dropped, then added",
	  true,
	  { R("Gone", .has_status = true, .uidvalidity = 6) },
	  { L(1, "Gone", "Gone", .removed = true, .uidvalidity = 5) },
	  { "DELETE:0:-", "ADD:-:0" } },
	{ "local DELETE pending, UIDVALIDITY not known: matched by name",
	  true,
	  { R("Gone", .has_status = true, .uidvalidity = 6) },
	  { L(1, "Gone", "Gone", .removed = true) },
	  { NULL } },
	{ "\\Noselect parents are not folders",
	  true,
	  { R("Parent", .noselect = true), R("Parent/Child") },
	  { { 0 } },
	  { "ADD:-:1" } },
	{ "INBOX case-insensitive",
	  true,
	  { R("INBOX") },
	  { L(1, "inbox", "Inbox") },
	  { "SYNC:0:0" } },
	/* RFC 8474 MAILBOXID from LIST-STATUS (servers with OBJECTID). */
	{ "MAILBOXID changed, every other number equal: re-read, not UNCHANGED",
	  true,
	  { R("RepA", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55, .mailboxid = "M-B") },
	  { L(1, "RepA", "RepA", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9, .mailboxid = "M-A") },
	  { "REREAD:0:0" } },
	{ "DELETE RepA; RENAME RepB RepA (one UIDVALIDITY): RepB follows its MAILBOXID, RepA "
	  "folded into it",
	  true,
	  { R("RepA", .has_status = true, .uidvalidity = 631, .uidnext = 11, .messages = 10,
	      .highestmodseq = 40, .mailboxid = "M-B") },
	  { L(1, "RepA", "RepA", .uidvalidity = 631, .uidnext = 21, .highestmodseq = 60,
	      .known_messages = 20, .mailboxid = "M-A"),
	    L(2, "RepB", "RepB", .uidvalidity = 631, .uidnext = 11, .highestmodseq = 40,
	      .known_messages = 10, .mailboxid = "M-B") },
	  { "RENAMED:1:0", "FOLD:0:0>1" } },
	{ "MAILBOXID equal, numbers equal: UNCHANGED",
	  true,
	  { R("RepA", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55, .mailboxid = "M-A") },
	  { L(1, "RepA", "RepA", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9, .mailboxid = "M-A") },
	  { "UNCHANGED:0:0" } },
	{ "no MAILBOXID recorded yet: the numbers decide",
	  true,
	  { R("RepA", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55, .mailboxid = "M-A") },
	  { L(1, "RepA", "RepA", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9) },
	  { "UNCHANGED:0:0" } },
	{ "no MAILBOXID reported (no OBJECTID): the numbers decide",
	  true,
	  { R("RepA", .has_status = true, .uidvalidity = 7, .uidnext = 10, .messages = 9,
	      .highestmodseq = 55) },
	  { L(1, "RepA", "RepA", .uidvalidity = 7, .uidnext = 10, .highestmodseq = 55,
	      .known_messages = 9, .mailboxid = "M-A") },
	  { "UNCHANGED:0:0" } },
	{ "same UIDVALIDITY but another MAILBOXID: not a rename",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .mailboxid = "M-N") },
	  { L(2, "Old", "Old", .uidvalidity = 42, .mailboxid = "M-O") },
	  { "ADD:-:0", "DELETE:0:-" } },
	{ "same UIDVALIDITY and MAILBOXID: a rename",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .mailboxid = "M-O") },
	  { L(2, "Old", "Old", .uidvalidity = 42, .mailboxid = "M-O") },
	  { "RENAMED:0:0" } },
	{ "same UIDVALIDITY, the second candidate's MAILBOXID matches",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .mailboxid = "M-2") },
	  { L(1, "Old1", "Old1", .uidvalidity = 42, .mailboxid = "M-1"),
	    L(2, "Old2", "Old2", .uidvalidity = 42, .mailboxid = "M-2") },
	  { "RENAMED:1:0", "DELETE:0:-" } },
	/* A rename whose numbers did not move: the row renamed, no SELECT
	 * (RENAMED ... unchanged), when the identity stands on all there is. */
	{ "renamed on the server, numbers equal, no MAILBOXID anywhere: renamed, not selected",
	  true,
	  { R("INBOX"),
	    R("Moved", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 9),
	    R("Moved/Sub", .has_status = true, .uidvalidity = 43, .uidnext = 2, .messages = 1,
	      .highestmodseq = 3) },
	  { L(1, "INBOX", "INBOX"),
	    L(2, "Top", "Top", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4),
	    L(3, "Top/Sub", "Top/Sub", .uidvalidity = 43, .uidnext = 2, .highestmodseq = 3,
	      .known_messages = 1) },
	  { "SYNC:0:0", "RENAMED:1:1 unchanged", "RENAMED:2:2 unchanged" } },
	{ "renamed, numbers equal, the same MAILBOXID: renamed, not selected",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 9, .mailboxid = "M-O") },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4, .mailboxid = "M-O") },
	  { "RENAMED:0:0 unchanged" } },
	{ "renamed, HIGHESTMODSEQ moved: selected",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 10) },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4) },
	  { "RENAMED:0:0" } },
	{ "renamed, a message expunged (MESSAGES): selected",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 3,
	      .highestmodseq = 9) },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4) },
	  { "RENAMED:0:0" } },
	{ "renamed, numbers equal, without CONDSTORE: selected",
	  false,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 9) },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4) },
	  { "RENAMED:0:0" } },
	{ "renamed, numbers equal, sync_bodies grew: selected",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 9) },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4, .bodies_behind = true) },
	  { "RENAMED:0:0" } },
	{ "renamed, numbers equal, a MAILBOXID recorded but none reported: selected (it reports "
	  "one)",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 9) },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4, .mailboxid = "M-O") },
	  { "RENAMED:0:0" } },
	{ "renamed, numbers equal, a MAILBOXID reported but none recorded: selected",
	  true,
	  { R("New", .has_status = true, .uidvalidity = 42, .uidnext = 5, .messages = 4,
	      .highestmodseq = 9, .mailboxid = "M-O") },
	  { L(2, "Old", "Old", .uidvalidity = 42, .uidnext = 5, .highestmodseq = 9,
	      .known_messages = 4) },
	  { "RENAMED:0:0" } },
	{ "A renamed A.old and a new A made, numbers equal: A.old renamed unselected, A added",
	  true,
	  { R("W1old", .has_status = true, .uidvalidity = 10, .uidnext = 3, .messages = 2,
	      .highestmodseq = 4),
	    R("W1", .has_status = true, .uidvalidity = 30, .uidnext = 3, .messages = 2,
	      .highestmodseq = 4) },
	  { L(1, "W1", "W1", .uidvalidity = 10, .uidnext = 3, .highestmodseq = 4,
	      .known_messages = 2) },
	  { "RENAMED:0:0 unchanged", "ADD:-:1" } },
	{ "DELETE B, RENAME A B, A's numbers equal: A selected all the same (B folded into it)",
	  true,
	  { R("B", .has_status = true, .uidvalidity = 10, .uidnext = 3, .messages = 2,
	      .highestmodseq = 4) },
	  { L(1, "A", "A", .uidvalidity = 10, .uidnext = 3, .highestmodseq = 4,
	      .known_messages = 2),
	    L(2, "B", "B", .uidvalidity = 20, .uidnext = 3, .highestmodseq = 4,
	      .known_messages = 2) },
	  { "RENAMED:0:0", "FOLD:1:0>0" } },
};

static const char *kind_name(enum plan_folder_action_kind k)
{
	switch (k) {
	case PLAN_FOLDER_ADD:
		return "ADD";
	case PLAN_FOLDER_RENAMED:
		return "RENAMED";
	case PLAN_FOLDER_CONFIRM:
		return "CONFIRM";
	case PLAN_FOLDER_DELETE:
		return "DELETE";
	case PLAN_FOLDER_RECREATE:
		return "RECREATE";
	case PLAN_FOLDER_SYNC:
		return "SYNC";
	case PLAN_FOLDER_UNCHANGED:
		return "UNCHANGED";
	case PLAN_FOLDER_DELETE_THERE:
		return "DELETE_THERE";
	case PLAN_FOLDER_REREAD:
		return "REREAD";
	case PLAN_FOLDER_FOLD:
		return "FOLD";
	case PLAN_FOLDER_KEEP:
		return "KEEP";
	case PLAN_FOLDER_LOST:
		return "LOST";
	}
	return "?";
}

START_TEST(test_folder_scenarios)
{
	const struct folder_scenario *sc = &folder_scenarios[_i];
	struct plan_folder_action acts[MAXF * 2];
	size_t nr = 0, nl = 0, nw = 0;
	int n;

	while (nr < MAXF && sc->remote[nr].name)
		nr++;
	while (nl < MAXF && sc->local[nl].name)
		nl++;
	while (nw < MAXF * 2 && sc->want[nw])
		nw++;
	n = plan_folders(sc->remote, nr, sc->local, nl, sc->with_modseq, acts);
	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n || (size_t)i < nw; i++) {
		char got[64] = "(none)";
		bool has_local, has_remote;

		if (i < n) {
			has_local = acts[i].kind != PLAN_FOLDER_ADD;
			has_remote = acts[i].kind != PLAN_FOLDER_DELETE &&
				     acts[i].kind != PLAN_FOLDER_RECREATE &&
				     acts[i].kind != PLAN_FOLDER_KEEP &&
				     acts[i].kind != PLAN_FOLDER_LOST;
			snprintf(got, sizeof(got), "%s:%s%s%s", kind_name(acts[i].kind),
				 has_local ? "" : "-", "", "");
			if (has_local)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%zu",
					 acts[i].local);
			snprintf(got + strlen(got), sizeof(got) - strlen(got), ":");
			if (has_remote)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%zu",
					 acts[i].remote);
			else
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "-");
			if (acts[i].kind == PLAN_FOLDER_FOLD)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), ">%zu",
					 acts[i].into);
			if (acts[i].unchanged)
				snprintf(got + strlen(got), sizeof(got) - strlen(got),
					 " unchanged");
		}
		ck_assert_msg((size_t)i < nw && strcmp(got, sc->want[i]) == 0,
			      "%s: action %d is %s, want %s", sc->what, i, got,
			      (size_t)i < nw ? sc->want[i] : "(none)");
	}
}
END_TEST

START_TEST(test_many_folders)
{
	/* 20,000 folders: the matching is by sorted index, not O(n*m).
	 * Even ones unchanged, every fourth renamed on the server (same
	 * UIDVALIDITY), the rest gone with a new one in their place. */
	enum { N = 20000 };
	struct plan_remote_folder *r = calloc(N, sizeof(*r));
	struct plan_local_folder *l = calloc(N, sizeof(*l));
	struct plan_folder_action *acts = calloc(2 * N, sizeof(*acts));
	char(*rn)[32] = calloc(N, 32), (*ln)[32] = calloc(N, 32);
	size_t count[PLAN_FOLDER_UNCHANGED + 1] = { 0 };
	int n;

	ck_assert(r && l && acts && rn && ln);
	for (size_t i = 0; i < N; i++) {
		/* locals in reverse order, so that nothing lines up by index */
		size_t k = N - 1 - i;

		snprintf(ln[k], 32, "conv/%05zu", i);
		l[k] = (struct plan_local_folder){ .id = (int64_t)k + 1,
						   .name = ln[k],
						   .server_name = ln[k],
						   .uidvalidity = (uint32_t)i + 1,
						   .uidnext = 5,
						   .highestmodseq = 9,
						   .known_messages = 4 };
		if (i % 2 == 0)
			snprintf(rn[i], 32, "conv/%05zu", i);
		else if (i % 4 == 1)
			snprintf(rn[i], 32, "renamed/%05zu", i);
		else
			snprintf(rn[i], 32, "new/%05zu", i);
		r[i] = (struct plan_remote_folder){ .name = rn[i],
						    .has_status = true,
						    .uidvalidity =
							    (uint32_t)(i % 4 == 3 ? N + i : i + 1),
						    .uidnext = 5,
						    .messages = 4,
						    .highestmodseq = 9 };
	}
	n = plan_folders(r, N, l, N, true, acts);
	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++)
		count[acts[i].kind]++;
	ck_assert_uint_eq(count[PLAN_FOLDER_UNCHANGED], N / 2);
	ck_assert_uint_eq(count[PLAN_FOLDER_RENAMED], N / 4);
	ck_assert_uint_eq(count[PLAN_FOLDER_ADD], N / 4);
	ck_assert_uint_eq(count[PLAN_FOLDER_DELETE], N / 4);
	for (int i = 0; i < n; i++)
		if (acts[i].kind == PLAN_FOLDER_RENAMED) {
			ck_assert_uint_eq(l[acts[i].local].uidvalidity,
					  r[acts[i].remote].uidvalidity);
			/* nothing moved in them: renamed, not selected */
			ck_assert(acts[i].unchanged);
		}
	free(r);
	free(l);
	free(acts);
	free(rn);
	free(ln);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Per-folder mode: the fallback ladder */

static const struct {
	const char *what;
	bool qresync, condstore;
	uint32_t uv;
	uint64_t hms;
	uint32_t known;
	enum plan_mode want;
} mode_cases[] = {
	{ "never synced", true, true, 0, 0, 0, PLAN_MODE_INITIAL },
	{ "QRESYNC with state", true, true, 5, 100, 10, PLAN_MODE_QRESYNC },
	{ "QRESYNC but no HIGHESTMODSEQ stored (NOMODSEQ before)", true, true, 5, 0, 10,
	  PLAN_MODE_PLAIN },
	{ "CONDSTORE only", false, true, 5, 100, 10, PLAN_MODE_CONDSTORE },
	{ "neither", false, false, 5, 100, 10, PLAN_MODE_PLAIN },
	{ "neither, empty folder", false, false, 5, 0, 0, PLAN_MODE_INITIAL },
};

START_TEST(test_select_mode)
{
	ck_assert_msg(plan_select_mode(mode_cases[_i].qresync, mode_cases[_i].condstore,
				       mode_cases[_i].uv, mode_cases[_i].hms,
				       mode_cases[_i].known) == mode_cases[_i].want,
		      "%s", mode_cases[_i].what);
}
END_TEST

static const struct {
	const char *what;
	struct plan_identity_in in;
	enum plan_identity want;
} identity_cases[] = {
	{ "nothing recorded yet",
	  { .uidvalidity = 7, .uidnext = 3, .highestmodseq = 9, .mailboxid = "M2" },
	  PLAN_IDENTITY_SAME },
	{ "all as recorded",
	  { 7, 21, 31, "M1", 7, 21, 31, "M1", true, 20, 20 },
	  PLAN_IDENTITY_SAME },
	{ "new messages, changes, expunges: the same folder",
	  { 7, 21, 31, "M1", 7, 25, 40, "M1", true, 22, 20 },
	  PLAN_IDENTITY_SAME },
	{ "UIDVALIDITY changed",
	  { 7, 21, 31, "M1", 8, 3, 4, "M1", true, 2, 0 },
	  PLAN_IDENTITY_UIDVALIDITY },
	/* Cyrus after DELETE RepA; RENAME RepB RepA, RepA and RepB created in
	 * the same second (20 and 10 messages): every other sign at once. */
	{ "Cyrus: the rename of a folder with the same UIDVALIDITY",
	  { 7, 21, 22, "M1", 7, 11, 12, "M2", true, 10, 20 },
	  PLAN_IDENTITY_MAILBOXID },
	{ "MAILBOXID changed alone",
	  { 7, 21, 31, "M1", 7, 21, 31, "M2", false, 0, 0 },
	  PLAN_IDENTITY_MAILBOXID },
	{ "no MAILBOXID recorded: the others decide",
	  { 7, 21, 31, NULL, 7, 21, 31, "M2", false, 0, 0 },
	  PLAN_IDENTITY_SAME },
	{ "no MAILBOXID reported (no OBJECTID)",
	  { 7, 21, 31, "M1", 7, 21, 31, NULL, false, 0, 0 },
	  PLAN_IDENTITY_SAME },
	{ "HIGHESTMODSEQ went down",
	  { 7, 21, 31, NULL, 7, 21, 30, NULL, false, 0, 0 },
	  PLAN_IDENTITY_MODSEQ_DOWN },
	{ "HIGHESTMODSEQ not reported (NOMODSEQ): no sign",
	  { 7, 21, 31, NULL, 7, 21, 0, NULL, false, 0, 0 },
	  PLAN_IDENTITY_SAME },
	{ "UIDNEXT went down",
	  { 7, 21, 31, NULL, 7, 20, 31, NULL, false, 0, 0 },
	  PLAN_IDENTITY_UIDNEXT_DOWN },
	{ "UIDNEXT not reported: no sign",
	  { 7, 21, 31, NULL, 7, 0, 31, NULL, false, 0, 0 },
	  PLAN_IDENTITY_SAME },
	{ "QRESYNC: EXISTS below the known UIDs, nothing vanished",
	  { 7, 21, 31, NULL, 7, 21, 31, NULL, true, 19, 20 },
	  PLAN_IDENTITY_EXISTS },
	{ "QRESYNC: EXISTS equal to the known UIDs",
	  { 7, 21, 31, NULL, 7, 21, 31, NULL, true, 20, 20 },
	  PLAN_IDENTITY_SAME },
	{ "CONDSTORE/plain: EXISTS below the known UIDs is expunges, not a sign",
	  { 7, 21, 31, NULL, 7, 21, 31, NULL, false, 5, 20 },
	  PLAN_IDENTITY_SAME },
};

START_TEST(test_identity)
{
	enum plan_identity got = plan_folder_identity(&identity_cases[_i].in);

	ck_assert_msg(got == identity_cases[_i].want, "%s: got %s, want %s",
		      identity_cases[_i].what, plan_identity_name(got),
		      plan_identity_name(identity_cases[_i].want));
}
END_TEST

static const struct {
	const char *what;
	enum plan_mode with;
	enum plan_identity identity;
	uint32_t lnext, snext;
	bool nomodseq;
	bool want_reread;
	enum plan_mode want_mode;
	bool want_fetch;
	uint32_t want_from;
} after_cases[] = {
	{ "QRESYNC, nothing new", PLAN_MODE_QRESYNC, PLAN_IDENTITY_SAME, 10, 10, false, false,
	  PLAN_MODE_QRESYNC, false, 10 },
	{ "QRESYNC, new messages", PLAN_MODE_QRESYNC, PLAN_IDENTITY_SAME, 10, 12, false, false,
	  PLAN_MODE_QRESYNC, true, 10 },
	{ "UIDVALIDITY changed: re-read from 1", PLAN_MODE_QRESYNC, PLAN_IDENTITY_UIDVALIDITY, 10,
	  3, false, true, PLAN_MODE_INITIAL, true, 1 },
	{ "MAILBOXID changed: re-read from 1", PLAN_MODE_QRESYNC, PLAN_IDENTITY_MAILBOXID, 21, 11,
	  false, true, PLAN_MODE_INITIAL, true, 1 },
	{ "HIGHESTMODSEQ down: re-read from 1", PLAN_MODE_CONDSTORE, PLAN_IDENTITY_MODSEQ_DOWN, 21,
	  11, false, true, PLAN_MODE_INITIAL, true, 1 },
	{ "UIDNEXT down: re-read from 1", PLAN_MODE_PLAIN, PLAN_IDENTITY_UIDNEXT_DOWN, 21, 11,
	  false, true, PLAN_MODE_INITIAL, true, 1 },
	{ "EXISTS contradicts: re-read from 1", PLAN_MODE_QRESYNC, PLAN_IDENTITY_EXISTS, 21, 21,
	  false, true, PLAN_MODE_INITIAL, true, 1 },
	{ "NOMODSEQ: plain comparison", PLAN_MODE_CONDSTORE, PLAN_IDENTITY_SAME, 10, 10, true,
	  false, PLAN_MODE_PLAIN, false, 10 },
	{ "no UIDNEXT from the server: look", PLAN_MODE_PLAIN, PLAN_IDENTITY_SAME, 10, 0, false,
	  false, PLAN_MODE_PLAIN, true, 10 },
	{ "initial", PLAN_MODE_INITIAL, PLAN_IDENTITY_SAME, 0, 10, false, false, PLAN_MODE_INITIAL,
	  true, 1 },
};

START_TEST(test_after_select)
{
	struct plan_after_select a;

	plan_after_select(after_cases[_i].with, after_cases[_i].identity, after_cases[_i].lnext,
			  after_cases[_i].snext, after_cases[_i].nomodseq, &a);
	ck_assert_msg(a.reread == after_cases[_i].want_reread, "%s", after_cases[_i].what);
	ck_assert_msg(a.identity == after_cases[_i].identity, "%s", after_cases[_i].what);
	ck_assert_msg(a.mode == after_cases[_i].want_mode, "%s", after_cases[_i].what);
	ck_assert_msg(a.fetch_new == after_cases[_i].want_fetch, "%s", after_cases[_i].what);
	ck_assert_msg(a.new_from_uid == after_cases[_i].want_from, "%s", after_cases[_i].what);
}
END_TEST

START_TEST(test_expunge_search_and_bodies)
{
	/* 10 held below the old UIDNEXT, server has 12 with 2 new: no search. */
	ck_assert(!plan_need_expunge_search(12, 2, 10));
	/* one expunged meanwhile */
	ck_assert(plan_need_expunge_search(11, 2, 10));
	/* the server contradicts itself */
	ck_assert(plan_need_expunge_search(1, 2, 0));

	ck_assert_uint_eq(plan_body_limit(CPMSYNC_SYNC_BODIES_ALL), UINT64_MAX);
	ck_assert_uint_eq(plan_body_limit(CPMSYNC_SYNC_BODIES_NONE), 0);
	ck_assert_uint_eq(plan_body_limit(64), 65536);
	ck_assert_uint_eq(plan_body_limit(INT64_MAX), UINT64_MAX);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_flags_from_list, 0,
			    (int)(sizeof(from_list_cases) / sizeof(from_list_cases[0])));
	tcase_add_loop_test(tc, test_flags_merge3, 0,
			    (int)(sizeof(merge_cases) / sizeof(merge_cases[0])));
	tcase_add_test(tc, test_flags_diff_apply);
	tcase_add_loop_test(tc, test_pattern, 0,
			    (int)(sizeof(pattern_cases) / sizeof(pattern_cases[0])));
	tcase_add_test(tc, test_patterns);
	tcase_add_loop_test(tc, test_folder_scenarios, 0,
			    (int)(sizeof(folder_scenarios) / sizeof(folder_scenarios[0])));
	tcase_add_test(tc, test_many_folders);
	tcase_add_loop_test(tc, test_select_mode, 0,
			    (int)(sizeof(mode_cases) / sizeof(mode_cases[0])));
	tcase_add_loop_test(tc, test_identity, 0,
			    (int)(sizeof(identity_cases) / sizeof(identity_cases[0])));
	tcase_add_loop_test(tc, test_after_select, 0,
			    (int)(sizeof(after_cases) / sizeof(after_cases[0])));
	tcase_add_test(tc, test_expunge_search_and_bodies);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(plan_suite)
