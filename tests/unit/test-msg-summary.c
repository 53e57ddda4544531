/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/utf8.h>

#include "testlib.h"
#include "util/buf.h"
#include "util/msg-summary.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char sample[] = "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
			     "From: tel:+4911111\r\n"
			     "To: tel:+4922222\r\n"
			     "Message-ID: <0123@example.org>\r\n"
			     "MIME-Version: 1.0\r\n"
			     "Content-Type: Message/CPIM\r\n"
			     "Subject: =?UTF-8?B?SGFsbG8g?=\r\n"
			     " =?UTF-8?B?V2VsdA==?=\r\n"
			     "Conversation-ID: f81d4fae-7dec-11d0-a765-00a0c91e6bf6\r\n"
			     "Contribution-ID: abcdef\r\n"
			     "IMDN-Message-ID: UFoF32HEaXaw\r\n"
			     "Message-Direction: sent\r\n"
			     "\r\n"
			     "From: <sip:anonymous@anonymous.invalid>\r\n"
			     "Subject: not a header of the message\r\n";

static struct msg_summary parse(const char *s)
{
	struct msg_summary m;

	ck_assert_int_eq(msg_summary_parse(s, strlen(s), &m), 0);
	return m;
}

START_TEST(test_sample)
{
	struct msg_summary m = parse(sample);

	ck_assert_str_eq(m.message_id, "<0123@example.org>");
	ck_assert_str_eq(m.subject, "Hallo Welt");
	ck_assert_str_eq(m.from, "tel:+4911111");
	ck_assert_str_eq(m.to, "tel:+4922222");
	ck_assert_str_eq(m.conversation_id, "f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
	ck_assert_str_eq(m.contribution_id, "abcdef");
	ck_assert_str_eq(m.imdn_message_id, "UFoF32HEaXaw");
	ck_assert_str_eq(m.type, "message");
	ck_assert_str_eq(m.direction, "sent");
	ck_assert_str_eq(m.peer, "tel:+4922222");
	ck_assert_int_eq(m.date, 1057049557);
	msg_summary_free(&m);
}
END_TEST

/* One field of a header in, its value out. */
struct field_case {
	const char *in;
	const char *message_id, *subject, *from, *to;
};

static const struct field_case field_cases[] = {
	/* absent: "" */
	{ "X-Other: 1\r\n\r\n", "", "", "", "" },
	{ "", "", "", "", "" },
	/* case-insensitive names, first occurrence wins, trimming */
	{ "message-id:   <a@b>  \r\nMessage-ID: <c@d>\r\n", "<a@b>", "", "", "" },
	{ "MESSAGE-ID:<a@b>\n", "<a@b>", "", "", "" },
	/* obsolete WSP before the colon */
	{ "Subject  : hi\n", "", "hi", "", "" },
	/* folding, bare LF, tab folds */
	{ "Subject: a\r\n b\r\n\tc\r\n", "", "a b\tc", "", "" },
	{ "Subject: a\n b\n", "", "a b", "", "" },
	/* CRs: a CRLF line's value is read without its CR, every other CR
	 * in a value is dropped as a fold's line break is */
	{ "Subject: a b \r\nFrom: x\r\n", "", "a b", "x", "" },
	{ "Subject: a\rb\r\nFrom: x\rx\n", "", "ab", "xx", "" },
	{ "Subject: a\r\r\n", "", "a", "", "" },
	{ "Subject: \r\nFrom:\r\n", "", "", "", "" },
	{ "Subject: a\r \r\n", "", "a", "", "" },
	/* lines without a colon and their continuations are skipped */
	{ "garbage line\n continued\nFrom: x\n", "", "", "x", "" },
	/* a continuation at the very start belongs to nothing */
	{ " Subject: no\nFrom: y\n", "", "", "y", "" },
	/* parsing stops at the empty line */
	{ "From: a\n\nSubject: body\n", "", "", "a", "" },
	{ "From: a\r\n\r\nSubject: body\r\n", "", "", "a", "" },
	/* NUL dropped, control characters to spaces, 8-bit Latin-1 to UTF-8 */
	{ "Subject: a\x01"
	  "b\n",
	  "", "a b", "", "" },
	{ "Subject: caf\xe9\n", "", "caf\xc3\xa9", "", "" },
	{ "Subject: caf\xc3\xa9\n", "", "caf\xc3\xa9", "", "" },
	/* To and Cc: top-level commas only */
	{ "To: a@x, b@y\r\nCc: c@z\r\n", "", "", "", "a@x\nb@y\nc@z" },
	{ "To: \"Doe, John\" <j@x>, (a, comment) k@y\n", "", "", "",
	  "\"Doe, John\" <j@x>\n(a, comment) k@y" },
	{ "To: <sip:a@x;p=1,2>, tel:+1\n", "", "", "", "<sip:a@x;p=1,2>\ntel:+1" },
	{ "To: ,, a ,\n", "", "", "", "a" },
	{ "To: \"q\\\", r\" <z@z>\n", "", "", "", "\"q\\\", r\" <z@z>" },
	{ "Cc: only@cc\n", "", "", "", "only@cc" },
	{ "To: a\n , b\n", "", "", "", "a\nb" },
	{ "To: a\nTo: b\n", "", "", "", "a" },
	/* groups give their members (RFC 5322 3.4); a URI's scheme is no
	 * group name */
	{ "To: Team: a@x, b@x;, c@y\n", "", "", "", "a@x\nb@x\nc@y" },
	{ "To: undisclosed-recipients:;\n", "", "", "", "" },
	{ "To: \"The: Team\": <a@x>, =?utf-8?Q?B?= <b@x>; c@y\n", "", "", "",
	  "<a@x>\nB <b@x>\nc@y" },
	{ "To: tel:+15551234567;ext=2, sip:a@x;p=1\n", "", "", "",
	  "tel:+15551234567;ext=2\nsip:a@x;p=1" },
	{ "To: Team:a@x;\n", "", "", "", "Team:a@x;" },
	{ "Cc: x@y, Team: <a@x;b>;\n", "", "", "", "x@y\n<a@x;b>" },
	/* RFC 2047 */
	{ "Subject: =?iso-8859-1?q?caf=E9?=\n", "", "caf\xc3\xa9", "", "" },
	{ "Subject: =?US-ASCII?Q?a_b?=\n", "", "a b", "", "" },
	{ "Subject: =?utf-8?b?w6k?=\n", "", "\xc3\xa9", "", "" }, /* no padding */
	{ "Subject: =?UTF-8?Q?a?= =?UTF-8?Q?b?=\n", "", "ab", "", "" },
	{ "Subject: =?UTF-8?Q?a?=  x  =?UTF-8?Q?b?=\n", "", "a  x  b", "", "" },
	/* a UTF-8 character split over two words */
	{ "Subject: =?UTF-8?B?w6?= =?UTF-8?Q?=A9?=\n", "", "\xc3\xa9", "", "" },
	{ "Subject: =?UTF-8?Q?a?=\n =?UTF-8?Q?b?=\n", "", "ab", "", "" },
	{ "Subject: =?UTF-8*de?Q?a?=\n", "", "a", "", "" },
	/* other charsets through iconv */
	{ "Subject: =?KOI8-R?B?8NLJ?= x\n", "", "\xd0\x9f\xd1\x80\xd0\xb8 x", "", "" },
	{ "Subject: =?windows-1252?Q?=80_=93hi=94?=\n", "",
	  "\xe2\x82\xac \xe2\x80\x9chi\xe2\x80\x9d", "", "" },
	{ "Subject: =?gb2312?B?1tDOxA==?=\n", "", "\xe4\xb8\xad\xe6\x96\x87", "", "" },
	{ "Subject: =?big5?B?pKSk5Q==?=\n", "", "\xe4\xb8\xad\xe6\x96\x87", "", "" },
	/* ISO-2022-JP's shift state and a Shift_JIS character go on into
	 * the next word of the charset */
	{ "Subject: =?ISO-2022-JP?B?GyRCRnw=?= =?ISO-2022-JP?B?S1w4bBsoQg==?=\n", "",
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "", "" },
	{ "Subject: =?shift_jis?B?kw==?=\n =?shift_jis?B?+pZ7?=\n", "", "\xe6\x97\xa5\xe6\x9c\xac",
	  "", "" },
	/* input the charset does not have, or cut short: U+FFFD */
	{ "Subject: =?shift_jis?Q?a=80b?=\n", "",
	  "a\xef\xbf\xbd"
	  "b",
	  "", "" },
	{ "Subject: =?euc-jp?Q?x=A4?=\n", "", "x\xef\xbf\xbd", "", "" },
	/* a charset iconv does not know, or a name that is none, stays */
	{ "Subject: =?x-no-such?Q?a?= b\n", "", "=?x-no-such?Q?a?= b", "", "" },
	{ "Subject: =?UTF-8//IGNORE?Q?a?=\n", "", "=?UTF-8//IGNORE?Q?a?=", "", "" },
	/* words that cannot be decoded are shown as they are (RFC 2047 6.3) */
	{ "Subject: =?utf-8?B?!!notbase64?= tail\n", "", "=?utf-8?B?!!notbase64?= tail", "", "" },
	{ "Subject: =?utf-8?B?w6k=x?= =?utf-8?B?w6k?=\n", "", "=?utf-8?B?w6k=x?= \xc3\xa9", "",
	  "" },
	{ "Subject: =?utf-8?B?w?=\n", "", "=?utf-8?B?w?=", "", "" },
	{ "Subject: =?utf-8?B?w6k===?=\n", "", "=?utf-8?B?w6k===?=", "", "" },
	{ "Subject: =?utf-8?B?w6k=?=\n", "", "\xc3\xa9", "", "" },
	/* From and To: display names and comments, not addresses (RFC 2047
	 * 5); quoted display names too, as mailers write them and readers
	 * decode them (decode_quoted_name()) */
	{ "From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@x>\n", "", "",
	  "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \xd0\x9f\xd0\xb5\xd1\x82\xd1\x80\xd0\xbe\xd0\xb2 "
	  "<ivan@x>",
	  "" },
	{ "From: \"=?utf-8?Q?a?=\" <a@x>\n", "", "", "\"a\" <a@x>", "" },
	{ "From: \"=?UTF-8?B?w6lsw6h2ZQ==?=\" <e@x>\n", "", "", "\"\xc3\xa9l\xc3\xa8ve\" <e@x>",
	  "" },
	{ "From: \"Ivan =?utf-8?Q?P=C3=A9?= \\\"x\\\"\" <i@x>\n", "", "",
	  "\"Ivan P\xc3\xa9 \\\"x\\\"\" <i@x>", "" },
	{ "From: \"=?utf-8?Q?Doe=2C_=22J=22_=5C?=\" <j@x>\n", "", "",
	  "\"Doe, \\\"J\\\" \\\\\" <j@x>", "" },
	{ "From: \"=?utf-8?Q?a?=\"@x\n", "", "", "\"=?utf-8?Q?a?=\"@x", "" },
	{ "From: <a@x> \"=?utf-8?Q?a?=\"\n", "", "", "<a@x> \"=?utf-8?Q?a?=\"", "" },
	{ "From: =?utf-8?Q?a?=@x\n", "", "", "=?utf-8?Q?a?=@x", "" },
	{ "From: <=?utf-8?Q?a?=@x> =?utf-8?Q?b?=\n", "", "",
	  "<=?utf-8?Q?a?=@x> =?utf-8?Q?b?=", "" },
	{ "From: ivan@x (=?utf-8?Q?Iv=C3=A1n?= (=?utf-8?Q?x?=))\n", "", "",
	  "ivan@x (Iv\xc3\xa1n (x))", "" },
	{ "From: =?utf-8?Q?A?= \"q\" =?utf-8?Q?B?= <a@x>, =?koi8-r?B?8NLJ?= <b@x>\n", "", "",
	  "A \"q\" B <a@x>, \xd0\x9f\xd1\x80\xd0\xb8 <b@x>", "" },
	{ "From: =?utf-8?Q?Doe=2C_J?= <j@x>\n", "", "", "Doe, J <j@x>", "" },
	{ "To: =?koi8-r?B?8NLJ?= <p@x>, \"=?utf-8?Q?q?=\" <q@x>\nCc: =?utf-8?Q?c?= <c@x>\n", "", "",
	  "", "\xd0\x9f\xd1\x80\xd0\xb8 <p@x>\n\"q\" <q@x>\nc <c@x>" },
	{ "To: tel:+1=?utf-8?Q?a?=, <sip:=?utf-8?Q?a?=@x>\n", "", "", "",
	  "tel:+1=?utf-8?Q?a?=\n<sip:=?utf-8?Q?a?=@x>" },
	/* unknown encodings and broken words stay as they are */
	{ "Subject: =?UTF-8?X?abc?=\n", "", "=?UTF-8?X?abc?=", "", "" },
	{ "Subject: =?UTF-8?Q?no end\n", "", "=?UTF-8?Q?no end", "", "" },
	{ "Subject: =?UTF-8?Q?a=ZZ?=\n", "", "a=ZZ", "", "" },
	{ "Subject: =??Q?a?=\n", "", "=??Q?a?=", "", "" },
	/* decoded control bytes and invalid UTF-8 are still cleaned */
	{ "Subject: =?UTF-8?Q?a=0Ab=FF?=\n", "", "a b\xc3\xbf", "", "" },
	{ "Subject: =?UTF-8?Q?x=00y?=\n", "", "xy", "", "" },
};

START_TEST(test_fields)
{
	const struct field_case *c = &field_cases[_i];
	struct msg_summary m;

	ck_assert_int_eq(msg_summary_parse(c->in, strlen(c->in), &m), 0);
	ck_assert_msg(strcmp(m.message_id, c->message_id) == 0, "case %d message-id: \"%s\"", _i,
		      m.message_id);
	ck_assert_msg(strcmp(m.subject, c->subject) == 0, "case %d subject: \"%s\"", _i, m.subject);
	ck_assert_msg(strcmp(m.from, c->from) == 0, "case %d from: \"%s\"", _i, m.from);
	ck_assert_msg(strcmp(m.to, c->to) == 0, "case %d to: \"%s\"", _i, m.to);
	msg_summary_free(&m);
}
END_TEST

START_TEST(test_nul_bytes)
{
	static const char in[] = "Subject: a\0b\r\nFr\0om: x\r\nFrom: y\r\n\r\n";
	struct msg_summary m;

	ck_assert_int_eq(msg_summary_parse(in, sizeof(in) - 1, &m), 0);
	ck_assert_str_eq(m.subject, "ab");
	ck_assert_str_eq(m.from, "y"); /* "Fr\0om" is no From */
	msg_summary_free(&m);
	ck_assert_int_eq(msg_summary_parse(NULL, 0, &m), 0);
	ck_assert_str_eq(m.type, "mail");
	msg_summary_free(&m);
}
END_TEST

struct type_case {
	const char *content_type;
	const char *type;
};

static const struct type_case type_cases[] = {
	{ NULL, "mail" },
	{ "Message/CPIM", "message" },
	{ "text/plain; charset=utf-8", "mail" },
	{ "Application/X-CPM-Session", "session-info" },
	{ "application/x-cpm-session ; foo=bar", "session-info" },
	{ "application/group-state-object+xml", "group-state" },
	{ "multipart/related; boundary=xyz; type=\"Application/X-CPM-File-Transfer\"",
	  "file-transfer" },
	{ "Multipart/Related;\r\n type=application/x-cpm-file-transfer;\r\n boundary=b",
	  "file-transfer" },
	{ "multipart/related; TYPE = \"application/x-cpm-file-transfer\"", "file-transfer" },
	{ "multipart/related; type=\"text/html\"", "mail" },
	{ "multipart/related; boundary=\"type=application/x-cpm-file-transfer\"", "mail" },
	{ "multipart/related", "mail" },
	{ "application/vnd.gsma.rcs-ft-http+xml", "file-transfer" },
	{ "message/imdn+xml", "imdn" },
	{ "multipart/mixed; type=\"application/x-cpm-file-transfer\"", "mail" },
	{ "application/x-cpm-sessionX", "mail" },
	{ "image/jpeg", "mail" },
	{ "", "mail" },
};

START_TEST(test_types)
{
	const struct type_case *c = &type_cases[_i];
	char in[512];
	struct msg_summary m;

	if (c->content_type)
		snprintf(in, sizeof(in), "From: a\r\nContent-Type: %s\r\n\r\n", c->content_type);
	else
		snprintf(in, sizeof(in), "From: a\r\n\r\n");
	m = parse(in);
	ck_assert_msg(strcmp(m.type, c->type) == 0, "case %d: %s", _i, m.type);
	msg_summary_free(&m);
}
END_TEST

START_TEST(test_sms_message_context)
{
	struct msg_summary m = parse("From: tel:+33600000001\r\n"
				     "To: tel:+33600000002\r\n"
				     "Message-Context: pager-message\r\n"
				     "Message-Correlator: =?utf-8?b?SGk=?=\r\n"
				     "Content-Type: Message/CPIM\r\n\r\n");

	ck_assert_str_eq(m.type, "message");
	ck_assert_str_eq(m.to, "tel:+33600000002");
	ck_assert_str_eq(m.context, "pager-message");
	ck_assert_str_eq(m.correlator, "=?utf-8?b?SGk=?=");
	ck_assert_str_eq(m.peer, "tel:+33600000001"); /* no direction: From */
	msg_summary_free(&m);
}
END_TEST

START_TEST(test_limits)
{
	size_t n = MSG_SUMMARY_MAX_HEADER + 1000;
	char *big = malloc(n + 64);
	struct msg_summary m;

	ck_assert_ptr_nonnull(big);
	/* A huge subject of 2-byte characters is cut at a character boundary. */
	strcpy(big, "Subject: ");
	for (size_t i = 9; i + 1 < n; i += 2) {
		big[i] = (char)0xc3;
		big[i + 1] = (char)0xa9;
	}
	big[n] = '\0';
	ck_assert_int_eq(msg_summary_parse(big, n, &m), 0);
	ck_assert_uint_le(strlen(m.subject), MSG_SUMMARY_MAX_FIELD);
	ck_assert_uint_ge(strlen(m.subject), MSG_SUMMARY_MAX_FIELD - 1);
	ck_assert_int_eq(strlen(m.subject) % 2, 0);
	msg_summary_free(&m);

	free(big);

	/* A field beyond MSG_SUMMARY_SCAN_HEADER is not looked at. */
	n = MSG_SUMMARY_SCAN_HEADER + 1000;
	big = malloc(n + 64);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', n);
	memcpy(big, "X-Pad: ", 7);
	memcpy(big + MSG_SUMMARY_SCAN_HEADER - 10, "\nFrom: late\n", 12);
	ck_assert_int_eq(msg_summary_parse(big, MSG_SUMMARY_SCAN_HEADER + 20, &m), 0);
	ck_assert_str_eq(m.from, "lat");
	msg_summary_free(&m);
	memset(big + MSG_SUMMARY_SCAN_HEADER - 10, 'x', 12);
	memcpy(big + MSG_SUMMARY_SCAN_HEADER, "\nFrom: late\n", 12);
	ck_assert_int_eq(msg_summary_parse(big, MSG_SUMMARY_SCAN_HEADER + 20, &m), 0);
	ck_assert_str_eq(m.from, "");
	msg_summary_free(&m);

	/* Many addresses: the list is cut at a whole line. */
	strcpy(big, "To: ");
	for (int i = 0; i < 2000; i++)
		sprintf(big + strlen(big), "user%d@example.org, ", i);
	m = parse(big);
	ck_assert_uint_le(strlen(m.to), MSG_SUMMARY_MAX_FIELD);
	ck_assert(m.to[strlen(m.to) - 1] == 'g');
	msg_summary_free(&m);
	free(big);
}
END_TEST

/* The fields after a huge one are found (up to MSG_SUMMARY_SCAN_HEADER):
 * a Message-ID after a 320 KB To: (before, only the first
 * MSG_SUMMARY_MAX_HEADER bytes were searched, and the message's
 * Message-ID was empty locally while the server showed it); a value
 * longer than MSG_SUMMARY_MAX_HEADER is read from its start. */
START_TEST(test_fields_after_huge_one)
{
	struct buf b = BUF_INIT(4u << 20);
	struct msg_summary m;
	char *line;
	size_t i;

	ck_assert_int_eq(buf_append_str(&b, "From: a@x\r\nTo: u0@example.org"), 0);
	for (i = 1; b.len < 320 * 1000; i++)
		ck_assert_int_eq(buf_printf(&b, ",\r\n u%zu@example.org", i), 0);
	ck_assert_int_eq(buf_append_str(&b, "\r\nMessage-ID: <after@x>\r\nSubject: "), 0);
	/* one line of 600 KB: longer than MSG_SUMMARY_MAX_HEADER (made
	 * whole and appended once: a call per byte took most of the test's
	 * time, past Check's 4 s on a loaded machine and under ASan) */
	line = malloc(600 * 1000);
	ck_assert_ptr_nonnull(line);
	for (i = 0; i < 600 * 1000; i++)
		line[i] = i % 100 ? 's' : ' ';
	ck_assert_int_eq(buf_append(&b, line, 600 * 1000), 0);
	free(line);
	ck_assert_int_eq(buf_append_str(&b, "\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
					    "Conversation-ID: c1\r\n\r\nbody\r\n"),
			 0);
	ck_assert_uint_gt(b.len, MSG_SUMMARY_MAX_HEADER + 600 * 1000);
	ck_assert_uint_lt(b.len, MSG_SUMMARY_SCAN_HEADER);
	ck_assert_int_eq(msg_summary_parse(b.data, b.len, &m), 0);
	ck_assert_str_eq(m.message_id, "<after@x>");
	ck_assert_str_eq(m.from, "a@x");
	ck_assert_str_eq(m.conversation_id, "c1");
	ck_assert_int_eq(m.date, 1767225600);
	ck_assert_uint_le(strlen(m.subject), MSG_SUMMARY_MAX_FIELD);
	ck_assert_uint_ge(strlen(m.subject), MSG_SUMMARY_MAX_FIELD - 1);
	ck_assert(strncmp(m.to, "u0@example.org\nu1@example.org\n", 30) == 0);
	ck_assert_uint_le(strlen(m.to), MSG_SUMMARY_MAX_FIELD);
	msg_summary_free(&m);
	buf_free(&b);
}
END_TEST

/* Every prefix of the sample, each in its own exact-size allocation so
 * that ASan sees any read past the end. */
START_TEST(test_every_prefix)
{
	size_t n = sizeof(sample) - 1;

	for (size_t len = 0; len <= n; len++) {
		char *copy = malloc(len ? len : 1);
		struct msg_summary m;
		int64_t t;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, sample, len);
		ck_assert_int_eq(msg_summary_parse(copy, len, &m), 0);
		ck_assert_ptr_nonnull(m.subject);
		msg_summary_free(&m);
		msg_header_length(copy, len);
		msg_parse_date(copy, len, &t);
		free(copy);
	}
}
END_TEST

/* The same for encoded-words of every kind, a byte at a time: each cut
 * leaves a word unfinished somewhere (its charset name, its text, a
 * character split between words, a shift state); the values stay valid
 * UTF-8, and the whole one decodes. */
START_TEST(test_every_prefix_encoded)
{
	static const char in[] =
		"From: =?utf-8?B?0JjQstCw0L0=?= \"q=?utf-8?Q?x?=\" (=?koi8-r?B?8NLJ?=) <i@x>\r\n"
		"To: =?ISO-2022-JP?B?GyRCRnw=?= =?ISO-2022-JP?B?S1w4bBsoQg==?= <j@x>,\r\n"
		" =?shift_jis?B?kw==?= =?shift_jis?B?+pZ7?= <k@x>\r\n"
		"Subject: =?windows-1252?Q?=93a=94?= =?utf-8?B?!!?= =?euc-jp?Q?=A4?=\r\n"
		"\r\n";
	size_t n = sizeof(in) - 1;

	for (size_t len = 0; len <= n; len++) {
		char *copy = malloc(len ? len : 1);
		struct msg_summary m;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, in, len);
		ck_assert_int_eq(msg_summary_parse(copy, len, &m), 0);
		ck_assert(cpmsync_utf8_valid(m.from, strlen(m.from)));
		ck_assert(cpmsync_utf8_valid(m.to, strlen(m.to)));
		ck_assert(cpmsync_utf8_valid(m.subject, strlen(m.subject)));
		if (len == n) {
			ck_assert_str_eq(m.from, "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \"qx\" "
						 "(\xd0\x9f\xd1\x80\xd0\xb8) <i@x>");
			ck_assert_str_eq(m.to, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e <j@x>\n"
					       "\xe6\x97\xa5\xe6\x9c\xac <k@x>");
			ck_assert_str_eq(m.subject, "\xe2\x80\x9c"
						    "a\xe2\x80\x9d =?utf-8?B?!!?= "
						    "\xef\xbf\xbd");
		}
		msg_summary_free(&m);
		free(copy);
	}
}
END_TEST

/* What a Store accepts as a message (msg_check_head(), msg_check_nul()). */
START_TEST(test_check_appendable)
{
	static const struct {
		const char *in;
		const char *why; /* NULL: accepted; else the start of the sentence */
	} cases[] = {
		{ "Subject: a\r\n\r\nbody", NULL },
		{ "Subject: a\n\nbody\n", NULL },
		{ "Subject: a\r\n folded\r\n\tagain\r\nFrom: b\r\n\r\nno: header\r\n", NULL },
		{ "Subject : obsolete space\r\n\r\n", NULL },
		{ "X-Only-Header: x", NULL },
		{ "\r\nheader-less body", NULL },
		{ "", NULL },
		{ "hello world\n", "line 1 (\"hello world\") is not a header field" },
		{ "Subject: a\r\nbody without an empty line\r\n",
		  "line 2 (\"body without an empty line\") is not" },
		{ " Subject: a\r\n\r\n", "line 1 (\" Subject: a\") is not" },
		{ "From alice@example.com  Mon Dec  7 07:00:00 2026\nSubject: a\n\n",
		  "line 1 (\"From alice@example.com  Mon Dec  7 07:00:00 202...\")" },
		{ ": no name\r\n\r\n", "line 1 (\": no name\")" },
		{ "Na\xc3\xa9me: 8-bit name\r\n\r\n", "line 1 (\"Na\xc3\xa9me: 8-bit name\")" },
		{ "\x1b[31m: x\r\n\r\n", "line 1 (\"\\x1b[31m: x\")" },
	};
	char why[320];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		size_t n = strlen(cases[i].in);
		int r = msg_check_head(cases[i].in, n, n, why, sizeof(why));

		if (!cases[i].why) {
			ck_assert_msg(r == 0, "case %zu refused: %s", i, why);
			continue;
		}
		ck_assert_msg(r == -EINVAL, "case %zu accepted", i);
		ck_assert_msg(strncmp(why, cases[i].why, strlen(cases[i].why)) == 0, "case %zu: %s",
			      i, why);
	}
	ck_assert_int_eq(msg_check_head("Subject: a\r\n\r\nbo\0dy", 19, 19, why, sizeof(why)),
			 -EINVAL);
	ck_assert_str_eq(why, "byte 16 is NUL: an IMAP message cannot hold NUL bytes (RFC 3501)");
	/* A head cut inside a line is not judged by the part it holds... */
	ck_assert_int_eq(msg_check_head("Subject: a\r\nLong-Na", 19, 500, why, sizeof(why)), 0);
	/* ...but the whole message is. */
	ck_assert_int_eq(msg_check_head("Subject: a\r\nLong-Na", 19, 19, why, sizeof(why)),
			 -EINVAL);
	ck_assert_int_eq(msg_check_nul("abc", 3, 1000, why, sizeof(why)), 0);
	ck_assert_int_eq(msg_check_nul("ab\0", 3, 1000, why, sizeof(why)), -EINVAL);
	ck_assert_str_eq(why, "byte 1002 is NUL: an IMAP message cannot hold NUL bytes (RFC 3501)");
}
END_TEST

START_TEST(test_header_length)
{
	static const struct {
		const char *in;
		size_t len;
	} cases[] = {
		{ "", 0 },
		{ "\r\n", 2 },
		{ "\n", 1 },
		{ "A: b\r\n\r\nbody", 8 },
		{ "A: b\n\nbody", 6 },
		{ "A: b\n\r\nbody", 7 },
		{ "A: b\r\n", 0 },
		{ "A: b\r\n\r", 0 },
		{ "A: b\r\n c\r\n\r\n", 12 },
		{ "A: b\r\r\n", 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		ck_assert_msg(msg_header_length(cases[i].in, strlen(cases[i].in)) == cases[i].len,
			      "case %zu", i);
	ck_assert_uint_eq(msg_header_length(NULL, 5), 0);
}
END_TEST

/*
 * msg_header_get() and msg_header_get2(): a name in any case, the first
 * field of a name; the same name asked twice fills the second only (the
 * last of the names that match a field takes it), as it always did.
 */
START_TEST(test_header_get)
{
	static const char h[] = "Content-type: text/plain\r\n"
				"CONTENT-TRANSFER-ENCODING: 7bit\r\n"
				"Content-Type: text/html\r\n";
	char *a = NULL, *b = NULL;

	ck_assert_int_eq(
		msg_header_get2(h, strlen(h), "content-type", &a, "Content-Transfer-Encoding", &b),
		0);
	ck_assert_str_eq(a, "text/plain");
	ck_assert_str_eq(b, "7bit");
	free(a);
	free(b);
	ck_assert_int_eq(msg_header_get2(h, strlen(h), "Content-Type", &a, "content-type", &b), 0);
	ck_assert_str_eq(a, "");
	ck_assert_str_eq(b, "text/plain");
	free(a);
	free(b);
	ck_assert_int_eq(msg_header_get(h, strlen(h), "ContenT-Transfer-Encoding", &a), 0);
	ck_assert_str_eq(a, "7bit");
	free(a);
	ck_assert_int_eq(msg_header_get(h, strlen(h), "Zontent-Type", &a), 0);
	ck_assert_str_eq(a, "");
	free(a);
}
END_TEST

struct date_case {
	const char *in;
	int r;
	int64_t t;
};

static const struct date_case date_cases[] = {
	{ "Tue, 1 Jul 2003 10:52:37 +0200", 0, 1057049557 },
	{ "1 Jul 2003 10:52:37 +0200", 0, 1057049557 },
	{ "Tue,1 Jul 2003 10:52:37 +0200", 0, 1057049557 },
	{ "  Tue ,  01  jul  2003  08:52:37  +0000  ", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 08:52:37 GMT", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 08:52:37 UT", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 08:52:37 Z", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 03:52:37 EST", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 04:52:37 EDT", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 01:52:37 PDT", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 08:52:37 -0000", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 08:52:37 A", 0, 1057049557 }, /* military: unknown */
	{ "Tue, 1 Jul 2003 08:52:37", 0, 1057049557 },	 /* no zone: UTC */
	{ "Tue, 1 Jul 2003 08:52:37+0000", 0, 1057049557 },
	{ "Tue, 1 Jul 03 10:52:37 +0200", 0, 1057049557 },
	{ "Tue, 1 Jul 103 10:52:37 +0200", 0, 1057049557 },
	{ "Thu, 1 Jul 99 00:00:00 +0000", 0, 930787200 },
	{ "Tue (comment), 1 (more (nested)) Jul 2003 10:52:37 +0200 (CEST)", 0, 1057049557 },
	{ "Tuesday, 1 July 2003 10:52:37 +0200", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 10:52 +0200", 0, 1057049520 },
	{ "Thu, 1 Jan 1970 00:00:00 +0000", 0, 0 },
	{ "Thu, 1 Jan 1970 00:00:00 +0100", 0, -3600 },
	{ "Sat, 29 Feb 2020 12:00:00 +0000", 0, 1582977600 },
	{ "Wed, 31 Dec 2098 23:59:60 +0000", 0, 4070908800 },
	{ "", -EINVAL, 0 },
	{ "garbage", -EINVAL, 0 },
	{ "Tue, 1 Jux 2003 10:52:37 +0200", -EINVAL, 0 },
	{ "Tue, 32 Jul 2003 10:52:37 +0200", -EINVAL, 0 },
	{ "Fri, 29 Feb 2019 10:52:37 +0200", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003 24:00:00 +0200", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003 10:60:00 +0200", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003 10:52:37 +02", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003 10:52:37 +0260", -EINVAL, 0 },
	/* Other alphabetic zones are "-0000" (RFC 5322 4.3): UTC. */
	{ "Sat, 5 Dec 2026 09:00:00 MSK", 0, 1796461200 },
	{ "Sat, 5 Dec 2026 09:00:00 CET", 0, 1796461200 },
	{ "Sat, 5 Dec 2026 09:00:00 cest", 0, 1796461200 },
	{ "Sat, 5 Dec 2026 09:00:00 AEDT (Sydney)", 0, 1796461200 },
	{ "Tue, 1 Jul 2003 08:52:37 XYZ", 0, 1057049557 },
	{ "Tue, 1 Jul 2003 08:52:37 J", -EINVAL, 0 },	   /* local time: no zone */
	{ "Tue, 1 Jul 2003 08:52:37 Europe", -EINVAL, 0 }, /* a word, not a zone */
	{ "Tue, 1 Jul 2003 08:52:37 MS2", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003 1052", -EINVAL, 0 },
	{ "Tue, 1 Jul 20031 10:52:37 +0200", -EINVAL, 0 },
	{ "Tue, 0 Jul 2003 10:52:37 +0200", -EINVAL, 0 },
	{ "Tue, 1 Jul 2003 10:52:37 +0200 a b c d e f g h i j k l", -EINVAL, 0 },
};

START_TEST(test_dates)
{
	const struct date_case *c = &date_cases[_i];
	int64_t t = 12345;
	int r = msg_parse_date(c->in, strlen(c->in), &t);

	ck_assert_msg(r == c->r, "case %d \"%s\": r=%d", _i, c->in, r);
	if (r == 0)
		ck_assert_msg(t == c->t, "case %d \"%s\": %lld", _i, c->in, (long long)t);
}
END_TEST

/* A date with a named zone, a byte at a time, each prefix in an
 * exact-size allocation: from "09:0" on, every prefix but "09:00:" is
 * the same UTC time ("M", "MS" and "MSK" are all taken as -0000), and
 * none is read past its end. */
START_TEST(test_date_zone_every_prefix)
{
	static const char in[] = "Sat, 5 Dec 2026 09:00:00 MSK";
	size_t from = strlen("Sat, 5 Dec 2026 09:0");

	for (size_t len = 0; len <= sizeof(in) - 1; len++) {
		char *copy = malloc(len ? len : 1);
		int64_t t = 12345;
		int r;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, in, len);
		r = msg_parse_date(copy, len, &t);
		if (len >= from && in[len - 1] != ':') {
			ck_assert_msg(r == 0, "prefix %zu: r=%d", len, r);
			ck_assert_msg(t == 1796461200, "prefix %zu: %lld", len, (long long)t);
		} else {
			ck_assert_msg(r == -EINVAL, "prefix %zu: r=%d", len, r);
		}
		free(copy);
	}
}
END_TEST

START_TEST(test_date_in_summary)
{
	struct msg_summary m = parse("Date: bogus\r\n\r\n");

	ck_assert_int_eq(m.date, 0);
	ck_assert(m.no_date);
	msg_summary_free(&m);
	m = parse("Subject: no date\r\n\r\n");
	ck_assert(m.no_date);
	msg_summary_free(&m);
	m = parse("Date: Thu, 1 Jan 1970 00:01:00\r\n +0000\r\n\r\n");
	ck_assert_int_eq(m.date, 60);
	ck_assert(!m.no_date);
	msg_summary_free(&m);
	/* The epoch itself is a date, not "unknown". */
	m = parse("Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n\r\n");
	ck_assert_int_eq(m.date, 0);
	ck_assert(!m.no_date);
	msg_summary_free(&m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("msg-summary");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_sample);
	tcase_add_loop_test(tc, test_fields, 0, (int)ARRAY_LEN(field_cases));
	tcase_add_test(tc, test_nul_bytes);
	tcase_add_loop_test(tc, test_types, 0, (int)ARRAY_LEN(type_cases));
	tcase_add_test(tc, test_sms_message_context);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_fields_after_huge_one);
	tcase_add_test(tc, test_every_prefix);
	tcase_add_test(tc, test_every_prefix_encoded);
	tcase_add_test(tc, test_header_length);
	tcase_add_test(tc, test_header_get);
	tcase_add_test(tc, test_check_appendable);
	tcase_add_loop_test(tc, test_dates, 0, (int)ARRAY_LEN(date_cases));
	tcase_add_test(tc, test_date_zone_every_prefix);
	tcase_add_test(tc, test_date_in_summary);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(suite)
