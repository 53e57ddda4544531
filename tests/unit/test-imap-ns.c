/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * imap-ns: NAMESPACE (RFC 2342) as Cyrus 3.6 and Dovecot 2.3 answer it,
 * fed through the parser (whole and one byte at a time), its limits, and
 * the mapping of names between the server and us.
 */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "testlib.h"
#include "imap/imap-ns.h"
#include "imap/imap-parser.h"
#include "imap/imap-resp.h"
#include "util/buf.h"

/* What the servers of the test suite answer (tests/cyrus, tests/dovecot). */
#define CYRUS_CLASSIC "* NAMESPACE ((\"INBOX.\" \".\")) ((\"user.\" \".\")) ((\"\" \".\"))\r\n"
#define CYRUS_ALT                                                                                  \
	"* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared Folders/\" \"/\"))\r\n"
#define DOVECOT "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n"

static struct imap_parser *P;

static void setup(void)
{
	ck_assert_int_eq(imap_parser_new(NULL, NULL, NULL, &P), 0);
}

static void teardown(void)
{
	P = imap_parser_free(P);
}

/* m from the NAMESPACE response text, fed whole. */
static void map_from(struct imap_ns_map *m, const char *text, bool show)
{
	const struct imap_response *resp = NULL;
	struct imap_namespace ns;
	size_t consumed = 0;
	const char *why = NULL;

	imap_ns_map_init(m);
	m->show_other = show;
	ck_assert_int_eq(imap_parser_feed(P, text, strlen(text), &consumed, &resp),
			 IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	ck_assert_msg(imap_ns_map_set(m, &ns, &why) == 0, "%s: %s", text, why ? why : "");
	ck_assert(m->known);
}

static void ck_local(const struct imap_ns_map *m, const char *server, char delim, const char *want)
{
	struct buf out = BUF_INIT(4096);
	int r = imap_ns_to_local(m, server, strlen(server), delim, false, &out);

	ck_assert_msg(r == 0, "%s: %d", server, r);
	ck_assert_str_eq(out.data, want);
	buf_free(&out);
}

static void ck_local_err(const struct imap_ns_map *m, const char *server, char delim, int want)
{
	struct buf out = BUF_INIT(4096);

	buf_append_str(&out, "kept");
	ck_assert_int_eq(imap_ns_to_local(m, server, strlen(server), delim, false, &out), want);
	ck_assert_str_eq(out.data, "kept"); /* left as it was */
	buf_free(&out);
}

static void ck_server(const struct imap_ns_map *m, const char *local, char delim, const char *want)
{
	struct buf out = BUF_INIT(4096);
	int r = imap_ns_from_local(m, local, delim, false, &out);

	ck_assert_msg(r == 0, "%s: %d", local, r);
	ck_assert_str_eq(out.data, want);
	buf_free(&out);
}

static void ck_base(const struct imap_ns_map *m, const char *want)
{
	struct buf out = BUF_INIT(4096);

	ck_assert_int_eq(imap_ns_personal_base(m, false, &out), 0);
	ck_assert_str_eq(out.data ? out.data : "", want);
	buf_free(&out);
}

START_TEST(test_cyrus_classic)
{
	struct imap_ns_map m;

	map_from(&m, CYRUS_CLASSIC, false);
	ck_assert_str_eq(imap_ns_map_personal_prefix(&m), "INBOX.");
	ck_base(&m, "INBOX/");
	ck_local(&m, "INBOX", '.', "INBOX");
	ck_local(&m, "inbox", '.', "INBOX");
	ck_local(&m, "INBOX.Work", '.', "Work");
	ck_local(&m, "INBOX.Work.Sync", '.', "Work/Sync");
	ck_local(&m, "Inbox.Default.tel:+15551234567", '.', "Default/tel:+15551234567");
	ck_local(&m, "INBOX.Gr&AOk-ce", '.',
		 "Gr\xc3\xa9"
		 "ce");
	/* INBOX.INBOX would be INBOX; INBOX.INBOX.x is not. */
	ck_local_err(&m, "INBOX.INBOX", '.', -EEXIST);
	ck_local(&m, "INBOX.INBOX.x", '.', "INBOX/x");
	/* Hidden: other users, shared (prefix ""), their roots. */
	ck_local_err(&m, "user.bob", '.', -ENOENT);
	ck_local_err(&m, "user.bob.Work", '.', -ENOENT);
	ck_local_err(&m, "user", '.', -ENOENT);
	ck_local_err(&m, "shared.news", '.', -ENOENT);
	ck_local_err(&m, "INBOX.a..b", '.', -EINVAL);

	ck_server(&m, "INBOX", '.', "INBOX");
	ck_server(&m, "inbox", '.', "INBOX");
	ck_server(&m, "Work", '.', "INBOX.Work");
	ck_server(&m, "Work/Sync", '/', "INBOX.Work.Sync"); /* the namespace's delimiter */
	ck_server(&m, "TopLevel", '.', "INBOX.TopLevel");
	ck_server(&m, "INBOX/x", '.', "INBOX.INBOX.x");
	ck_server(&m,
		  "Gr\xc3\xa9"
		  "ce",
		  '.', "INBOX.Gr&AOk-ce");
	/* Hidden namespaces have no reserved roots: a personal "#Shared". */
	ck_local(&m, "INBOX.#Shared", '.', "#Shared");
	ck_server(&m, "#Shared/x", '.', "INBOX.#Shared.x");
	imap_ns_map_free(&m);
}
END_TEST

START_TEST(test_cyrus_classic_shown)
{
	struct imap_ns_map m;
	struct buf out = BUF_INIT(4096);

	map_from(&m, CYRUS_CLASSIC, true);
	ck_local(&m, "INBOX.Work", '.', "Work");
	ck_local(&m, "user.bob", '.', "#Users/bob");
	ck_local(&m, "user.bob.Work", '.', "#Users/bob/Work");
	ck_local(&m, "user", '.', "#Users");
	ck_local(&m, "shared.news", '.', "#Shared/shared/news");
	/* A personal folder named as a shown root: not ours to show. */
	ck_local_err(&m, "INBOX.#Shared", '.', -EEXIST);
	ck_local_err(&m, "INBOX.#Users.x", '.', -EEXIST);
	ck_local(&m, "INBOX.#Sharedx", '.', "#Sharedx");

	ck_server(&m, "#Users/bob/Work", '.', "user.bob.Work");
	ck_server(&m, "#Users", '.', "user");
	ck_server(&m, "#Shared/shared/news", '.', "shared.news");
	ck_server(&m, "Work", '.', "INBOX.Work");
	/* The shared root has the empty prefix: no such mailbox. */
	ck_assert_int_eq(imap_ns_from_local(&m, "#Shared", '.', false, &out), -EINVAL);
	buf_free(&out);
	imap_ns_map_free(&m);
}
END_TEST

START_TEST(test_cyrus_alt)
{
	struct imap_ns_map m;

	map_from(&m, CYRUS_ALT, false);
	ck_base(&m, "");
	ck_local(&m, "INBOX", '/', "INBOX");
	ck_local(&m, "Work/Sync", '/', "Work/Sync");
	ck_local_err(&m, "Other Users/bob/Work", '/', -ENOENT);
	ck_local_err(&m, "Shared Folders/news", '/', -ENOENT);
	ck_local_err(&m, "Other Users", '/', -ENOENT);
	ck_server(&m, "Work/Sync", '/', "Work/Sync");
	ck_server(&m, "Other Users/x", '/', "Other Users/x"); /* a personal folder */
	imap_ns_map_free(&m);

	map_from(&m, CYRUS_ALT, true);
	ck_local(&m, "Other Users/bob/Work", '/', "#Users/bob/Work");
	ck_local(&m, "Shared Folders/news", '/', "#Shared/news");
	ck_local(&m, "Shared Folders", '/', "#Shared");
	ck_server(&m, "#Shared/news", '/', "Shared Folders/news");
	ck_server(&m, "#Shared", '/', "Shared Folders");
	imap_ns_map_free(&m);
}
END_TEST

/*
 * A local name kept from when the other namespaces were shown, now that
 * they are hidden: imap_ns_from_local() would make it a personal folder,
 * so the engine must tell it (imap_ns_hidden_root()).
 */
START_TEST(test_hidden_root)
{
	struct imap_ns_map m;

	map_from(&m, CYRUS_ALT, false);
	ck_assert(imap_ns_hidden_root(&m, NULL));
	ck_assert(imap_ns_hidden_root(&m, "#Users/bob/ForAlice"));
	ck_assert(imap_ns_hidden_root(&m, "#Users"));
	ck_assert(imap_ns_hidden_root(&m, "#Shared/news"));
	ck_assert(!imap_ns_hidden_root(&m, "#Usersx/a"));
	ck_assert(!imap_ns_hidden_root(&m, "Work/#Users"));
	ck_assert(!imap_ns_hidden_root(&m, "INBOX"));
	ck_assert(!imap_ns_hidden_root(&m, "#Personal2/a")); /* no second personal one */
	/* What it would otherwise become: bob's folder as alice's own. */
	ck_server(&m, "#Users/bob/ForAlice", '/', "#Users/bob/ForAlice");
	imap_ns_map_free(&m);

	/* Shown: nothing is hidden. */
	map_from(&m, CYRUS_ALT, true);
	ck_assert(!imap_ns_hidden_root(&m, NULL));
	ck_assert(!imap_ns_hidden_root(&m, "#Users/bob/ForAlice"));
	imap_ns_map_free(&m);

	/* No NAMESPACE: one personal namespace, nothing to hide. */
	imap_ns_map_init(&m);
	ck_assert(!imap_ns_hidden_root(&m, NULL));
	ck_assert(!imap_ns_hidden_root(&m, "#Users/bob"));
	imap_ns_map_free(&m);
}
END_TEST

START_TEST(test_dovecot_and_default)
{
	struct imap_ns_map m;

	map_from(&m, DOVECOT, true);
	ck_base(&m, "");
	ck_local(&m, "INBOX", '.', "INBOX");
	ck_local(&m, "INBOX.Sub", '.', "INBOX/Sub");
	ck_local(&m, "Work.Sync", '.', "Work/Sync");
	ck_local(&m, "#Shared", '.', "#Shared"); /* nothing shown: nothing reserved */
	ck_server(&m, "Work/Sync", '.', "Work.Sync");
	ck_server(&m, "INBOX/Sub", '.', "INBOX.Sub");
	imap_ns_map_free(&m);

	/* No NAMESPACE: names as they are, with LIST's delimiter. */
	imap_ns_map_init(&m);
	ck_assert(!m.known);
	ck_assert_str_eq(imap_ns_map_personal_prefix(&m), "");
	ck_base(&m, "");
	ck_local(&m, "INBOX.Work", '.', "INBOX/Work");
	ck_server(&m, "INBOX/Work", '.', "INBOX.Work");
	imap_ns_map_free(&m);
}
END_TEST

/* Several namespaces of a kind, prefixes that do not end in the delimiter,
 * and the longest prefix winning. */
START_TEST(test_several)
{
	struct imap_ns_map m;

	map_from(&m,
		 "* NAMESPACE ((\"\" \"/\")(\"#mh/\" \"/\" \"X-PARAM\" (\"FLAG1\"))) "
		 "((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\"))\r\n",
		 true);
	ck_local(&m, "Work", '/', "Work");
	ck_local(&m, "#mh/inbox", '/', "#Personal2/INBOX");
	ck_local(&m, "~smith/Mail", '/', "#Users/smith/Mail");
	ck_local(&m, "#public/x", '/', "#Shared2/x");
	ck_local(&m, "#shared/x", '/', "#Shared/x");
	ck_server(&m, "#Shared2/x", '/', "#public/x");
	ck_server(&m, "#Users/smith/Mail", '/', "~smith/Mail");
	ck_server(&m, "#Personal2/a", '/', "#mh/a");
	imap_ns_map_free(&m);

	/* The personal prefix "INBOX/" of a server whose hierarchy is '/'. */
	map_from(&m, "* NAMESPACE ((\"INBOX/\" \"/\")) NIL NIL\r\n", false);
	ck_base(&m, "INBOX/");
	ck_local(&m, "INBOX/a/b", '/', "a/b");
	ck_local(&m, "INBOX", '/', "INBOX");
	ck_local_err(&m, "Elsewhere", '/', -ENOENT); /* outside every namespace */
	ck_server(&m, "a/b", '/', "INBOX/a/b");
	imap_ns_map_free(&m);
}
END_TEST

/* The whole response one byte at a time gives the same map. */
START_TEST(test_bytewise)
{
	static const char text[] = CYRUS_CLASSIC;
	const struct imap_response *resp = NULL;
	struct imap_namespace ns;
	struct imap_ns_map m;
	size_t consumed;
	int r = IMAP_PARSE_NEED_MORE;

	for (size_t i = 0; i < sizeof(text) - 1; i++) {
		ck_assert_int_eq(r, IMAP_PARSE_NEED_MORE);
		r = imap_parser_feed(P, text + i, 1, &consumed, &resp);
		ck_assert_uint_eq(consumed, 1);
	}
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	imap_ns_map_init(&m);
	ck_assert_int_eq(imap_ns_map_set(&m, &ns, NULL), 0);
	ck_assert_uint_eq(m.n[IMAP_NS_PERSONAL], 1);
	ck_assert_uint_eq(m.n[IMAP_NS_OTHER], 1);
	ck_assert_uint_eq(m.n[IMAP_NS_SHARED], 1);
	ck_assert_str_eq(m.ns[IMAP_NS_OTHER][0].prefix, "user.");
	ck_assert_int_eq(m.ns[IMAP_NS_SHARED][0].delimiter, '.');
	ck_local(&m, "INBOX.Work.Sync", '.', "Work/Sync");
	imap_ns_map_free(&m);
}
END_TEST

/* Refused: what the parser refuses, and what goes beyond our limits. */
START_TEST(test_limits)
{
	struct buf text = BUF_INIT(1 << 20);
	const struct imap_response *resp = NULL;
	struct imap_namespace ns;
	struct imap_ns_map m;
	const char *why = NULL;
	size_t consumed;

	/* Nine personal namespaces. */
	buf_append_str(&text, "* NAMESPACE (");
	for (int i = 0; i <= IMAP_NS_MAX_ENTRIES; i++)
		buf_printf(&text, "(\"p%d/\" \"/\")", i);
	buf_append_str(&text, ") NIL NIL\r\n");
	ck_assert_int_eq(imap_parser_feed(P, text.data, text.len, &consumed, &resp),
			 IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	imap_ns_map_init(&m);
	ck_assert_int_eq(imap_ns_map_set(&m, &ns, &why), -CPMSYNC_E_PROTOCOL);
	ck_assert_str_eq(why, "more namespaces of a kind than the limit");
	ck_assert(!m.known); /* unchanged */

	/* A prefix one byte too long (as a literal), then one that fits. */
	for (int fits = 0; fits < 2; fits++) {
		size_t n = IMAP_NS_MAX_PREFIX + (fits ? 0 : 1);

		buf_reset(&text);
		buf_printf(&text, "* NAMESPACE (({%zu}\r\n", n);
		for (size_t i = 0; i < n; i++)
			buf_append_char(&text, 'a');
		buf_append_str(&text, " \"/\")) NIL NIL\r\n");
		ck_assert_int_eq(imap_parser_feed(P, text.data, text.len, &consumed, &resp),
				 IMAP_PARSE_COMPLETE);
		ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
		why = NULL;
		ck_assert_int_eq(imap_ns_map_set(&m, &ns, &why), fits ? 0 : -CPMSYNC_E_PROTOCOL);
		if (!fits)
			ck_assert_str_eq(why, "a prefix longer than the limit");
		else
			ck_assert_uint_eq(m.ns[IMAP_NS_PERSONAL][0].len, IMAP_NS_MAX_PREFIX);
	}
	imap_ns_map_free(&m);

	/* No personal namespace. */
	ck_assert_int_eq(imap_parser_feed(P, "* NAMESPACE NIL NIL NIL\r\n", 25, &consumed, &resp),
			 IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	imap_ns_map_init(&m);
	ck_assert_int_eq(imap_ns_map_set(&m, &ns, &why), -CPMSYNC_E_PROTOCOL);
	ck_assert_str_eq(why, "no personal namespace");
	imap_ns_map_free(&m);
	buf_free(&text);
}
END_TEST

static Suite *ns_suite(void)
{
	Suite *s = suite_create("imap-ns");
	TCase *tc = tcase_create("ns");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cyrus_classic);
	tcase_add_test(tc, test_cyrus_classic_shown);
	tcase_add_test(tc, test_cyrus_alt);
	tcase_add_test(tc, test_hidden_root);
	tcase_add_test(tc, test_dovecot_and_default);
	tcase_add_test(tc, test_several);
	tcase_add_test(tc, test_bytewise);
	tcase_add_test(tc, test_limits);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(ns_suite)
