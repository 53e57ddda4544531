/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util/msg-canon: the same object in other encodings has the same form
 * (line ends, folding, white space, field name case and order, transfer
 * encodings, boundaries); another object, even by one character of a
 * value or the text, has another.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "util/buf.h"
#include "util/msg-canon.h"

/* A chat object as an app writes it (CRLF). */
#define CHAT_HEAD "Date: Mon, 2 Mar 2026 09:15:00 +0000\r\n" CHAT_REST_HEAD
#define CHAT_REST_HEAD                                                                             \
	"From: tel:+15557654321\r\n"                                                               \
	"To: tel:+15551234567\r\n"                                                                 \
	"Message-ID: <chat-1@msg.example.net>\r\n"                                                 \
	"Content-Type: Message/CPIM\r\n"                                                           \
	"Conversation-ID: conv-1\r\n"                                                              \
	"IMDN-Message-ID: imdn-chat-1\r\n"                                                         \
	"Message-Direction: sent\r\n"                                                              \
	"\r\n"                                                                                     \
	"From: <tel:+15557654321>\r\n"                                                             \
	"To: <tel:+15551234567>\r\n"                                                               \
	"NS: imdn <urn:ietf:params:imdn>\r\n"                                                      \
	"imdn.Message-ID: imdn-chat-1\r\n"                                                         \
	"\r\n"
#define CHAT_TEXT "Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 at noon?\r\nok\r\n"
#define CHAT	  CHAT_HEAD CHAT_TEXT

static const struct {
	const char *what;
	const char *a, *b;
	bool same;
} cases[] = {
	{ "identical", CHAT, CHAT, true },
	{ "LF line ends", CHAT,
	  "Date: Mon, 2 Mar 2026 09:15:00 +0000\nFrom: tel:+15557654321\nTo: tel:+15551234567\n"
	  "Message-ID: <chat-1@msg.example.net>\nContent-Type: Message/CPIM\n"
	  "Conversation-ID: conv-1\nIMDN-Message-ID: imdn-chat-1\nMessage-Direction: sent\n\n"
	  "From: <tel:+15557654321>\nTo: <tel:+15551234567>\nNS: imdn <urn:ietf:params:imdn>\n"
	  "imdn.Message-ID: imdn-chat-1\n\n"
	  "Content-Type: text/plain; charset=utf-8\n\nCaf\xc3\xa9 at noon?\nok\n",
	  true },
	{ "folded, spaced, names in other case, fields in another order", CHAT,
	  "FROM:   tel:+15557654321\r\n"
	  "Date: Mon, 2 Mar 2026\r\n\t09:15:00 +0000\r\n"
	  "to: tel:+15551234567\r\n"
	  "Message-ID: <chat-1@msg.example.net>\r\n"
	  "Content-Type:   message/cpim\r\n"
	  "Conversation-ID: conv-1\r\n"
	  "IMDN-Message-ID:\r\n imdn-chat-1\r\n"
	  "Message-Direction: sent   \r\n"
	  "\r\n"
	  "From: <tel:+15557654321>\r\n"
	  "To: <tel:+15551234567>\r\n"
	  "NS: imdn <urn:ietf:params:imdn>\r\n"
	  "imdn.Message-ID: imdn-chat-1\r\n"
	  "\r\n"
	  "Content-Type: text/plain;\r\n charset=\"utf-8\"\r\n\r\nCaf\xc3\xa9 at noon?\r\nok",
	  true },
	{ "the text in base64", CHAT,
	  CHAT_HEAD
	  "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
	  "\r\nQ2Fmw6kgYXQgbm9vbj8NCm9r\r\n",
	  true },
	{ "the text in quoted-printable", CHAT,
	  CHAT_HEAD "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: Quoted-Printable\r\n"
		    "\r\nCaf=C3=A9 at =\r\nnoon?\r\nok\r\n",
	  true },
	{ "another text", CHAT,
	  CHAT_HEAD "Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 at one?\r\nok\r\n",
	  false },
	{ "the text in base64, one letter else", CHAT,
	  CHAT_HEAD
	  "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
	  "\r\nQ2Fmw6kgYXQgbm9vbj8NCm9s\r\n",
	  false },
	{ "a line more", CHAT,
	  CHAT_HEAD
	  "Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 at noon?\r\n\r\nok\r\n",
	  false },
	{ "another Date", CHAT, "Date: Mon, 2 Mar 2026 09:16:00 +0000\r\n" CHAT_REST_HEAD CHAT_TEXT,
	  false },
	{ "another charset", CHAT,
	  CHAT_HEAD
	  "Content-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xc3\xa9 at noon?\r\nok\r\n",
	  false },
	{ "a field more", CHAT, "Subject: hi\r\n" CHAT, false },
	{ "a CPIM field else", CHAT,
	  "Date: Mon, 2 Mar 2026 09:15:00 +0000\r\nFrom: tel:+15557654321\r\nTo: "
	  "tel:+15551234567\r\n"
	  "Message-ID: <chat-1@msg.example.net>\r\nContent-Type: Message/CPIM\r\n"
	  "Conversation-ID: conv-1\r\nIMDN-Message-ID: imdn-chat-1\r\nMessage-Direction: "
	  "sent\r\n\r\n"
	  "From: <tel:+15557654321>\r\nTo: <tel:+15550000000>\r\nNS: imdn "
	  "<urn:ietf:params:imdn>\r\n"
	  "imdn.Message-ID: imdn-chat-1\r\n\r\n"
	  "Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 at noon?\r\nok\r\n",
	  false },
	/* A file transfer: another boundary, the file in base64 wrapped
	 * otherwise, LF: the same; one byte of the file else: another. */
	{ "multipart, another boundary and wrapping",
	  "Message-ID: <ft@x>\r\nContent-Type: multipart/related; boundary=\"b1\";"
	  " type=\"Application/X-CPM-File-Transfer\"\r\n\r\npreamble\r\n--b1\r\n"
	  "Content-Type: Application/X-CPM-File-Transfer\r\n\r\n<file-transfer/>\r\n--b1\r\n"
	  "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB\r\nCAYAAAAfFcSJAAAADUlEQVR4nGNgYPgPAAEDAQAIicLsAAAAAElF"
	  "TkSuQmCC\r\n"
	  "--b1--\r\nepilogue\r\n",
	  "Message-ID: <ft@x>\nContent-Type: Multipart/Related; "
	  "type=Application/X-CPM-File-Transfer;"
	  "\n boundary=zz-other\n\n--zz-other\n"
	  "Content-Type: Application/X-CPM-File-Transfer\n\n<file-transfer/>\n--zz-other\n"
	  "Content-Type: image/png\nContent-Transfer-Encoding: BASE64\n\n"
	  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4\nnGNgYPgPAAEDAQAIicLsAAAAAElFTk"
	  "SuQmCC\n"
	  "--zz-other--\n",
	  true },
	{ "multipart, a byte of the file else",
	  "Message-ID: <ft@x>\r\nContent-Type: multipart/related; boundary=\"b1\"\r\n\r\n--b1\r\n"
	  "Content-Type: image/png\r\nContent-Transfer-Encoding: "
	  "base64\r\n\r\nAAECAw==\r\n--b1--\r\n",
	  "Message-ID: <ft@x>\r\nContent-Type: multipart/related; boundary=\"b2\"\r\n\r\n--b2\r\n"
	  "Content-Type: image/png\r\nContent-Transfer-Encoding: "
	  "base64\r\n\r\nAAECBA==\r\n--b2--\r\n",
	  false },
	/* A binary part's bytes count as bytes, CR LF among them. */
	{ "binary, CR LF in the bytes",
	  "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
	  "base64\r\n\r\nAQ0KAg==\r\n",
	  "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
	  "base64\r\n\r\nAQoC\r\n",
	  false },
	{ "multipart, a part more",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n",
	  "Content-Type: multipart/mixed; "
	  "boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\n\r\n--b--\r\n",
	  false },
};

/* The form of m (bytes: a binary part may hold NULs). */
static struct buf form(const char *m)
{
	struct buf b = BUF_INIT(1 << 20);

	ck_assert_int_eq(msg_canon(m, strlen(m), &b), 0);
	ck_assert_ptr_nonnull(b.data);
	return b;
}

START_TEST(test_same_or_not)
{
	struct buf a = form(cases[_i].a), b = form(cases[_i].b);
	bool same = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;

	ck_assert_msg(same == cases[_i].same, "%s: forms\n%s\n---\n%s", cases[_i].what, a.data,
		      b.data);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

/* Bounded by the buffer's max; nested to MSG_CANON_DEPTH levels, no more. */
START_TEST(test_bounds)
{
	struct buf small = BUF_INIT(16);
	struct buf b = BUF_INIT(1 << 20);
	char deep[4096] = "";

	ck_assert_int_eq(msg_canon(CHAT, strlen(CHAT), &small), -E2BIG);
	buf_free(&small);
	for (int i = 0; i < 40; i++)
		strcat(deep, "Content-Type: message/rfc822\r\n\r\n");
	strcat(deep, "\r\nx\r\n");
	ck_assert_int_eq(msg_canon(deep, strlen(deep), &b), 0);
	buf_free(&b);
	ck_assert_int_eq(msg_canon(NULL, 0, &b), -EINVAL);
}
END_TEST

static Suite *msg_canon_suite(void)
{
	Suite *suite = suite_create("msg-canon");
	TCase *tc = tcase_create("canon");

	tcase_add_loop_test(tc, test_same_or_not, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_bounds);
	suite_add_tcase(suite, tc);
	return suite;
}

TEST_MAIN(msg_canon_suite)
