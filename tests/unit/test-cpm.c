/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CPM objects (util/cpm-object.c, util/cpm-xml.c): the exact fields read
 * from every object of tests/data/cpm/, the malformed ones with their
 * errors, every prefix of every object (a body cut anywhere), and the XML
 * limits (a 10 MB entity bomb, depth, DOCTYPE).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/utf8.h>

#include "testlib.h"
#include "util/cpm-object.h"
#include "util/cpm-xml.h"
#include "util/msg-summary.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char *read_all(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *d;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	d = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(fread(d, 1, (size_t)n, f), n);
	fclose(f);
	d[n] = '\0';
	*ret_len = (size_t)n;
	return d;
}

/* tests/data/cpm/name: $CPMSYNC_TEST_DATA/cpm, else tests/data found
 * upwards from the current directory or from the test binary. */
static char *corpus_file(const char *name, size_t *ret_len)
{
	const char *env = getenv("CPMSYNC_TEST_DATA");
	char dir[PATH_MAX], path[PATH_MAX + 128];
	char *d;
	ssize_t n;

	if (env) {
		snprintf(path, sizeof(path), "%s/cpm/%s", env, name);
		return read_all(path, ret_len);
	}
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			if (!getcwd(dir, sizeof(dir)))
				continue;
		} else {
			n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
			if (n <= 0)
				continue;
			dir[n] = '\0';
		}
		for (;;) {
			char *slash;

			snprintf(path, sizeof(path), "%s/tests/data/cpm/%s", dir, name);
			if ((d = read_all(path, ret_len)))
				return d;
			slash = strrchr(dir, '/');
			if (!slash || slash == dir)
				break;
			*slash = '\0';
		}
	}
	ck_abort_msg("tests/data/cpm/%s not found", name);
	return NULL;
}

struct expect {
	const char *file;
	const char *type, *direction, *context, *in_reply_to, *peer, *snippet, *imdn_ref, *status,
		*participants, *file_name, *file_type;
	unsigned long long file_size;
	const char *error; /* substring of s.error; "" for none */
	const char *check; /* substring of cpm_object_check()'s error; "" for ok */
	const char *conversation_id, *contribution_id, *imdn_message_id;
};

#define C1   "6a1f0c7e-1to1-4d2b-9e3f-15551234567"
#define GRP  "b9d3e6a0-group-47c1-8d2e-6f0a11c0ffee"
#define BOB  "tel:+15551234567"
#define DAVE "tel:+15559876543"

static const struct expect corpus[] = {
	{ "chat-1to1-sent.eml", "message", "sent", "", "", BOB,
	  "Hello Bob, are we still on for lunch?", "", "", "", "", "", 0, "", "", C1, "c1-0001",
	  "Xs7xHq1to1a" },
	{ "chat-1to1-received-qp.eml", "message", "received", "", "c1-0001", BOB,
	  "Yes! Caf\xc3\xa9 at noon, see you there.", "", "", "", "", "", 0, "", "", C1, "c1-0002",
	  "Bq2ReplY0002" },
	{ "chat-1to1-received-base64.eml", "message", "received", "", "", BOB,
	  "Gr\xc3\xbc\xc3\x9f"
	  "e aus K\xc3\xb6ln \xf0\x9f\x8e\x89 Zweite Zeile",
	  "", "", "", "", "", 0, "", "", C1, "c1-0003", "Cz3b64Text03" },
	{ "imdn-delivered.eml", "imdn", "received", "", "", BOB, "", "Xs7xHq1to1a", "delivered", "",
	  "", "", 0, "", "", C1, "c1-0001", "RpT0001dlvd" },
	{ "imdn-displayed.eml", "imdn", "received", "", "", BOB, "", "Xs7xHq1to1a", "displayed", "",
	  "", "", 0, "", "", C1, "c1-0001", "RpT0002dspl" },
	{ "imdn-failed.eml", "imdn", "received", "", "", BOB, "", "Cz3b64Text03", "failed", "", "",
	  "", 0, "", "", C1, "", "RpT0003fail" },
	{ "group-session-1-info.eml", "session-info", "sent", "", "",
	  "sip:conf-factory@ims.example.net", "", "", "", BOB "\n" DAVE "\nsip:carol@example.net",
	  "", "", 0, "", "", GRP, "grp-sess-0001", "" },
	{ "group-session-1-msg.eml", "message", "received", "", "", DAVE,
	  "Count me in. Meet at the trailhead at 8?", "", "", "", "", "", 0, "", "", GRP,
	  "grp-sess-0001", "GrpMsg0001" },
	{ "group-session-2-info.eml", "session-info", "received", "", "grp-sess-0001", BOB, "", "",
	  "", "tel:+15557654321\n" DAVE, "", "", 0, "", "", GRP, "grp-sess-0002", "" },
	{ "group-session-2-msg.eml", "message", "sent", "", "", "sip:conf-factory@ims.example.net",
	  "Photos from Saturday are up!", "", "", "", "", "", 0, "", "", GRP, "grp-sess-0002",
	  "GrpMsg0002" },
	{ "group-state.eml", "group-state", "", "", "", "sip:conf-factory@ims.example.net", "", "",
	  "", "tel:+15557654321\n" BOB "\n" DAVE, "", "", 0, "", "", GRP, "grp-sess-0002", "" },
	{ "ft-http.eml", "file-transfer", "received", "", "", BOB, "", "", "", "", "IMG_2041.jpg",
	  "image/jpeg", 183524, "", "", C1, "c1-0010", "FtHttp0010" },
	{ "ft-cpm-multipart.eml", "file-transfer", "sent", "", "", BOB, "", "", "", BOB,
	  "trip report.pdf", "application/pdf", 2048, "", "", C1, "c1-0011", "" },
	{ "sms-sent.eml", "message", "sent", "pager-message", "", "tel:+15550001111",
	  "On my way, 10 minutes.", "", "", "", "", "", 0, "", "", "", "", "" },
	{ "mms-received.eml", "message", "received", "multimedia-message", "", "tel:+15550001111",
	  "I parked on level 3, next to the lift.", "", "", "", "", "", 0, "", "", "", "", "" },
	{ "media.eml", "media", "received", "", "", BOB, "", "", "", "", "", "", 0, "", "", C1,
	  "c1-0012", "" },
	{ "mail.eml", "mail", "", "", "", "news@example.org", "", "", "", "", "", "", 0, "",
	  "neither Conversation-ID nor Message-Context", "", "", "" },
	/* Malformed. */
	{ "bad-imdn-truncated.eml", "imdn", "received", "", "", BOB, "", "", "", "", "", "", 0,
	  "IMDN report XML not well-formed at line 5", "not well-formed", C1, "", "RpTtrunc" },
	/* Charsets through iconv; ideographic spaces trimmed too. */
	{ "chat-koi8-r.eml", "message", "received", "", "", BOB,
	  "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "", "", "", "", "", 0, "", "", C1, "",
	  "" },
	{ "chat-shift-jis.eml", "message", "received", "", "", BOB,
	  "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf\xe3\x80\x81\xe4\xb8\x96"
	  "\xe7\x95\x8c",
	  "", "", "", "", "", 0, "", "", C1, "", "" },
	{ "bad-charset.eml", "message", "received", "", "", BOB, "", "", "", "", "", "", 0,
	  "unknown charset \"x-no-such-charset\"", "x-no-such-charset", C1, "", "" },
	{ "bad-utf8.eml", "message", "received", "", "", BOB, "Caf\xc3\xa9 cr\xc3\xa8me", "", "",
	  "", "", "", 0, "declared utf-8 is not valid UTF-8", "not valid UTF-8", C1, "", "" },
	{ "bad-no-cpm-headers.eml", "message", "", "", "", BOB, "Where is my Conversation-ID?", "",
	  "", "", "", "", 0, "", "neither Conversation-ID nor Message-Context", "", "", "" },
	{ "bad-imdn-unknown.eml", "imdn", "received", "", "", BOB, "", "NoSuchMessage999",
	  "displayed", "", "", "", 0, "", "", C1, "", "RpTnobody" },
	{ "bad-imdn-no-status.eml", "imdn", "received", "", "", BOB, "", "", "", "", "", "", 0,
	  "IMDN report without a <status>", "without a <status>", C1, "", "" },
	{ "bad-xml-bomb-small.eml", "group-state", "", "", "", "sip:conf-factory@ims.example.net",
	  "", "", "", "", "", "", 0, "DOCTYPE", "DOCTYPE", GRP, "grp-sess-0002", "" },
	{ "bad-direction.eml", "message", "", "pager-message", "", BOB,
	  "Direction is not a CPM value.", "", "", "", "", "", 0,
	  "Message-Direction \"outgoing\" is neither sent nor received", "outgoing", "", "", "" },
	{ "bad-cpim-no-content.eml", "message", "received", "", "", BOB, "", "", "", "", "", "", 0,
	  "CPIM body without the empty line after its headers", "CPIM body", C1, "", "" },
	{ "bad-session-no-contribution.eml", "session-info", "", "", "", "tel:+15557654321", "", "",
	  "", BOB, "", "", 0, "", "needs a Contribution-ID", GRP, "", "" },
};

static void assert_substr(const char *what, const char *have, const char *want, const char *file)
{
	if (!*want)
		ck_assert_msg(!*have, "%s: %s should be empty, is \"%s\"", file, what, have);
	else
		ck_assert_msg(strstr(have, want), "%s: %s \"%s\" lacks \"%s\"", file, what, have,
			      want);
}

START_TEST(test_corpus)
{
	const struct expect *e = &corpus[_i];
	struct msg_summary m;
	char *data, *err = NULL;
	size_t len;
	int r;

	data = corpus_file(e->file, &len);
	ck_assert_int_eq(msg_summary_parse(data, len, &m), 0);
#define EQ(f, v)                                                                                   \
	ck_assert_msg(strcmp(m.f, v) == 0, "%s: " #f " is \"%s\", not \"%s\"", e->file, m.f, v)
	EQ(type, e->type);
	EQ(direction, e->direction);
	EQ(context, e->context);
	EQ(in_reply_to, e->in_reply_to);
	EQ(peer, e->peer);
	EQ(snippet, e->snippet);
	EQ(imdn_ref, e->imdn_ref);
	EQ(status, e->status);
	EQ(participants, e->participants);
	EQ(file_name, e->file_name);
	EQ(file_type, e->file_type);
	EQ(conversation_id, e->conversation_id);
	EQ(contribution_id, e->contribution_id);
	EQ(imdn_message_id, e->imdn_message_id);
#undef EQ
	ck_assert_uint_eq(m.file_size, e->file_size);
	assert_substr("error", m.error, e->error, e->file);
	r = cpm_object_check(&m, &err);
	if (*e->check) {
		ck_assert_int_eq(r, -EINVAL);
		assert_substr("check", err, e->check, e->file);
	} else {
		ck_assert_msg(r == 0, "%s: check says %s", e->file, err);
	}
	free(err);
	msg_summary_free(&m);
	free(data);
}
END_TEST

/*
 * Every prefix of every object, each in an allocation of exactly its size
 * (ASan sees any read past the end): the body cut anywhere, even inside a
 * UTF-8 sequence, a base64 quantum or an XML tag.  Nothing fails, every
 * string is valid UTF-8, and a prefix that is the header alone gives the
 * no error for an object that has none.
 */
START_TEST(test_every_prefix)
{
	const struct expect *e = &corpus[_i];
	char *data;
	size_t len;

	data = corpus_file(e->file, &len);
	for (size_t n = 0; n <= len; n++) {
		char *copy = malloc(n ? n : 1);
		struct msg_summary m;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, data, n);
		ck_assert_int_eq(msg_summary_parse(copy, n, &m), 0);
		ck_assert(cpmsync_utf8_valid(m.snippet, strlen(m.snippet)));
		ck_assert(cpmsync_utf8_valid(m.participants, strlen(m.participants)));
		ck_assert(cpmsync_utf8_valid(m.error, strlen(m.error)));
		ck_assert(strlen(m.snippet) <= CPM_SNIPPET_CHARS * 4);
		if (n == msg_header_length(data, len) && !*e->error)
			ck_assert_msg(!*m.error, "%s header only: %s", e->file, m.error);
		msg_summary_free(&m);
		free(copy);
	}
	free(data);
}
END_TEST

/* A billion-laughs document of 10 MB: refused by size before expat runs. */
START_TEST(test_xml_bomb_10mb)
{
	size_t cap = 10u * 1024 * 1024, n = 0;
	char *bomb = malloc(cap + 1), *err = NULL;
	struct cpm_xml x;
	struct timespec t0, t1;
	int r;

	ck_assert_ptr_nonnull(bomb);
	n += (size_t)sprintf(bomb, "<?xml version=\"1.0\"?>\n<!DOCTYPE imdn [\n"
				   " <!ENTITY a \"aaaaaaaaaaaaaaaa\">\n");
	while (n + 64 < cap)
		n += (size_t)sprintf(bomb + n, " <!ENTITY b%zu \"&a;&a;&a;&a;&a;&a;&a;&a;\">\n", n);
	n += (size_t)sprintf(bomb + n, "]>\n<imdn>&b1;</imdn>\n");
	ck_assert_uint_gt(n, 10u * 1000 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = cpm_xml_parse(CPM_XML_IMDN, bomb, n, &x, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_eq(r, -E2BIG);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "over the limit"), "%s", err);
	/* Not a timing assertion: a sanity bound far above the microseconds it takes. */
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
	free(err);

	/* The same inside a whole object: the summary names it. */
	{
		static const char head[] = "Content-Type: message/imdn+xml\r\n"
					   "Conversation-ID: c\r\n\r\n";
		char *obj = malloc(sizeof(head) + n);
		struct msg_summary m;

		ck_assert_ptr_nonnull(obj);
		memcpy(obj, head, sizeof(head) - 1);
		memcpy(obj + sizeof(head) - 1, bomb, n);
		ck_assert_int_eq(msg_summary_parse(obj, sizeof(head) - 1 + n, &m), 0);
		ck_assert_str_eq(m.type, "imdn");
		ck_assert_msg(strstr(m.error, "over the limit"), "%s", m.error);
		ck_assert_str_eq(m.imdn_ref, "");
		msg_summary_free(&m);
		free(obj);
	}
	free(bomb);
}
END_TEST

/* A small bomb fits the size limit: the DOCTYPE stops it at once. */
START_TEST(test_xml_doctype_refused)
{
	static const char doc[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE x [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\n"
		"<imdn><message-id>&b;</message-id>"
		"<delivery-notification><status><delivered/></status>"
		"</delivery-notification></imdn>";
	struct cpm_xml x;
	char *err = NULL;

	ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, doc, strlen(doc), &x, &err), -EBADMSG);
	ck_assert_msg(strstr(err, "DOCTYPE"), "%s", err);
	free(err);
}
END_TEST

/*
 * The parser is kept from one parse to the next (XML_ParserReset): nothing
 * of a document, whole, stopped by a handler or broken off, is left for the
 * next one -- namespace prefixes, line numbers, open elements, values.
 */
START_TEST(test_xml_parser_reused)
{
	static const char good[] =
		"<?xml version=\"1.0\"?>\n<i:imdn xmlns:i=\"urn:ietf:params:xml:ns:imdn\">"
		"<i:message-id>m-1</i:message-id><i:delivery-notification><i:status>"
		"<i:delivered/></i:status></i:delivery-notification></i:imdn>";
	static const char doctype[] = "<!DOCTYPE x [<!ENTITY a \"a\">]>\n<imdn/>";
	static const char cut[] = "<imdn>\n<message-id>m-2</message-id>\n<status><displ";
	static const char undeclared[] = "<i:imdn><i:message-id>m-3</i:message-id></i:imdn>";
	static const char ft[] = "<file-object><sdp>a=file-selector:name:\"a.jpg\" "
				 "type:image/jpeg size:10</sdp></file-object>";
	struct cpm_xml x;
	char *err = NULL;

	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, good, strlen(good), &x, &err), 0);
		ck_assert_str_eq(x.message_id, "m-1");
		ck_assert_str_eq(x.status, "delivered");
		ck_assert_str_eq(x.notification, "delivery");
		cpm_xml_free(&x);

		ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, doctype, strlen(doctype), &x, &err),
				 -EBADMSG);
		ck_assert_str_eq(err, "XML with a DOCTYPE (x) is refused: no CPM format has one");
		free(err);

		ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, cut, strlen(cut), &x, &err), -EBADMSG);
		ck_assert_str_eq(err, "IMDN report XML not well-formed at line 3: unclosed token");
		free(err);

		/* The prefix i of the first document is not bound any more. */
		ck_assert_int_eq(
			cpm_xml_parse(CPM_XML_IMDN, undeclared, strlen(undeclared), &x, &err),
			-EBADMSG);
		ck_assert_str_eq(err, "IMDN report XML not well-formed at line 1: unbound prefix");
		free(err);

		ck_assert_int_eq(cpm_xml_parse(CPM_XML_FT_CPM, ft, strlen(ft), &x, &err), 0);
		ck_assert_str_eq(x.file_name, "a.jpg");
		ck_assert_str_eq(x.file_type, "image/jpeg");
		ck_assert_uint_eq(x.file_size, 10);
		cpm_xml_free(&x);
	}
}
END_TEST

/*
 * An XML declaration of the usual forms is not handed to expat
 * (cpm-xml.c plain_declaration()): the results are those of expat reading
 * it.  The same report with each form, with another one and with none;
 * the line of an error; and what only expat may judge, left to it: a
 * second declaration, a processing instruction, a comment first, bytes
 * that read as UTF-16, and a declaration that is not one of the forms.
 * (These pass without the skip too: they guard that it changes nothing.)
 */
START_TEST(test_xml_declaration_skipped)
{
	static const char *const decls[] = {
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>",
		"<?xml version=\"1.0\"?>\r\n  ",
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n",
		"",
	};
	static const char body[] = "<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\">"
				   "<message-id>m-\xc3\xa9</message-id><display-notification>"
				   "<status><displayed/></status></display-notification></imdn>";
	static const struct {
		const char *doc;
		size_t len;
		const char *err;
	} bad[] = {
#define D "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		{ D "<?xml version=\"1.0\"?><imdn/>", 0,
		  "IMDN report XML not well-formed at line 1: XML or text declaration not at start"
		  " of entity" },
		{ D "\n<imdn>\n<message-id>m-2</message-id>\n<status><displ", 0,
		  "IMDN report XML not well-formed at line 4: unclosed token" },
		{ D "<\0i\0m\0d\0n\0/\0>\0", sizeof(D "<\0i\0m\0d\0n\0/\0>\0") - 1,
		  "IMDN report XML not well-formed at line 1: not well-formed (invalid token)" },
		{ D "<imdn/><imdn/>", 0,
		  "IMDN report XML not well-formed at line 1: junk after"
		  " document element" },
		{ D "\n<i:imdn><i:message-id>m</i:message-id></i:imdn>", 0,
		  "IMDN report XML not well-formed at line 2: unbound prefix" },
#undef D
	};
	struct cpm_xml x;
	char *err = NULL;

	for (size_t i = 0; i < sizeof(decls) / sizeof(decls[0]); i++) {
		char doc[512];
		bool latin1 = strstr(decls[i], "8859") != NULL;

		snprintf(doc, sizeof(doc), "%s%s", decls[i], body);
		ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, doc, strlen(doc), &x, &err), 0);
		ck_assert_str_eq(x.message_id, latin1 ? "m-\xc3\x83\xc2\xa9" : "m-\xc3\xa9");
		ck_assert_str_eq(x.status, "displayed");
		ck_assert_str_eq(x.notification, "display");
		cpm_xml_free(&x);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].doc);

		ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, bad[i].doc, len, &x, &err), -EBADMSG);
		ck_assert_str_eq(err, bad[i].err);
		free(err);
	}
	/* A processing instruction or a comment after it: as expat reads them. */
	{
		static const char pi[] = "<?xml version=\"1.0\"?><?x y?><!-- c --><imdn>"
					 "<message-id>m</message-id><status><delivered/>"
					 "</status></imdn>";

		ck_assert_int_eq(cpm_xml_parse(CPM_XML_IMDN, pi, strlen(pi), &x, &err), 0);
		ck_assert_str_eq(x.message_id, "m");
		ck_assert_str_eq(x.status, "delivered");
		cpm_xml_free(&x);
	}
}
END_TEST

START_TEST(test_xml_depth)
{
	char doc[4096];
	size_t n = 0;
	struct cpm_xml x;
	char *err = NULL;

	for (int i = 0; i < CPM_XML_MAX_DEPTH + 1; i++)
		n += (size_t)sprintf(doc + n, "<a>");
	for (int i = 0; i < CPM_XML_MAX_DEPTH + 1; i++)
		n += (size_t)sprintf(doc + n, "</a>");
	ck_assert_int_eq(cpm_xml_parse(CPM_XML_SESSION, doc, n, &x, &err), -E2BIG);
	ck_assert_msg(strstr(err, "nested deeper"), "%s", err);
	free(err);

	/* One level less is fine. */
	n = 0;
	for (int i = 0; i < CPM_XML_MAX_DEPTH; i++)
		n += (size_t)sprintf(doc + n, "<a>");
	for (int i = 0; i < CPM_XML_MAX_DEPTH; i++)
		n += (size_t)sprintf(doc + n, "</a>");
	ck_assert_int_eq(cpm_xml_parse(CPM_XML_SESSION, doc, n, &x, &err), 0);
	cpm_xml_free(&x);
}
END_TEST

/* Participants: bounded count, duplicates and URI parameters dropped. */
START_TEST(test_xml_participants)
{
	struct cpm_xml x;
	char *err = NULL, *doc;
	size_t n = 0;

	ck_assert_int_eq(cpm_xml_parse(CPM_XML_SESSION,
				       "<session><invited-participants>tel:+1;user=phone, "
				       "tel:+1 ; Bob &lt;sip:bob@x;transport=tcp&gt;"
				       "</invited-participants></session>",
				       strlen("<session><invited-participants>tel:+1;user=phone, "
					      "tel:+1 ; Bob &lt;sip:bob@x;transport=tcp&gt;"
					      "</invited-participants></session>"),
				       &x, &err),
			 0);
	ck_assert_str_eq(x.participants, "tel:+1\nsip:bob@x;transport=tcp");
	cpm_xml_free(&x);

	doc = malloc(CPM_XML_MAX);
	ck_assert_ptr_nonnull(doc);
	n += (size_t)sprintf(doc, "<groupstate>");
	for (int i = 0; i < CPM_XML_MAX_PARTICIPANTS + 50; i++)
		n += (size_t)sprintf(doc + n, "<participant comm-addr=\"tel:+%d\"/>", i);
	n += (size_t)sprintf(doc + n, "</groupstate>");
	ck_assert_int_eq(cpm_xml_parse(CPM_XML_GROUP_STATE, doc, n, &x, &err), 0);
	{
		unsigned lines = 1;

		for (const char *p = x.participants; *p; p++)
			lines += *p == '\n';
		ck_assert_uint_eq(lines, CPM_XML_MAX_PARTICIPANTS);
	}
	cpm_xml_free(&x);
	free(doc);
}
END_TEST

/* Encodings expat knows without a DTD; one it does not is named. */
START_TEST(test_xml_encodings)
{
	static const char latin1[] =
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
		"<file><file-info type=\"file\"><file-name>caf\xe9.txt</file-name>"
		"<file-size>12</file-size></file-info></file>";
	static const char koi[] = "<?xml version=\"1.0\" encoding=\"KOI8-R\"?><file/>";
	struct cpm_xml x;
	char *err = NULL;

	ck_assert_int_eq(cpm_xml_parse(CPM_XML_FT_HTTP, latin1, strlen(latin1), &x, &err), 0);
	ck_assert_str_eq(x.file_name, "caf\xc3\xa9.txt");
	ck_assert_uint_eq(x.file_size, 12);
	cpm_xml_free(&x);
	ck_assert_int_eq(cpm_xml_parse(CPM_XML_FT_HTTP, koi, strlen(koi), &x, &err), -EBADMSG);
	ck_assert_msg(strstr(err, "encoding"), "%s", err);
	free(err);
}
END_TEST

START_TEST(test_xml_bad_size)
{
	static const char doc[] = "<file><file-info><file-size>12kB</file-size></file-info></file>";
	struct cpm_xml x;
	char *err = NULL;

	ck_assert_int_eq(cpm_xml_parse(CPM_XML_FT_HTTP, doc, strlen(doc), &x, &err), -EBADMSG);
	ck_assert_msg(strstr(err, "<file-size> \"12kB\" is not a number"), "%s", err);
	free(err);
}
END_TEST

/* Snippet: 200 characters (not bytes), trimmed, line breaks as spaces. */
START_TEST(test_snippet_bounds)
{
	char obj[8192];
	size_t n;
	struct msg_summary m;

	n = (size_t)sprintf(obj, "Content-Type: text/plain; charset=utf-8\r\n"
				 "Message-Context: pager-message\r\n\r\n \r\n\t");
	for (int i = 0; i < 300; i++)
		n += (size_t)sprintf(obj + n, "\xc3\xa9");
	ck_assert_int_eq(msg_summary_parse(obj, n, &m), 0);
	ck_assert_uint_eq(strlen(m.snippet), 2 * CPM_SNIPPET_CHARS);
	msg_summary_free(&m);

	n = (size_t)sprintf(obj, "Content-Type: text/plain; charset=utf-16\r\n"
				 "Message-Context: pager-message\r\n\r\n");
	memcpy(obj + n, "\xff\xfeH\0i\0\n\0!\0 \0", 12);
	ck_assert_int_eq(msg_summary_parse(obj, n + 12, &m), 0);
	ck_assert_str_eq(m.snippet, "Hi !");
	msg_summary_free(&m);

	n = (size_t)sprintf(obj, "Content-Type: text/plain; charset=windows-1252\r\n"
				 "Content-Transfer-Encoding: x-uuencode\r\n"
				 "Message-Context: pager-message\r\n\r\nabc");
	ck_assert_int_eq(msg_summary_parse(obj, n, &m), 0);
	ck_assert_str_eq(m.snippet, "");
	ck_assert_str_eq(m.error, "text: unknown Content-Transfer-Encoding \"x-uuencode\"");
	msg_summary_free(&m);

	n = (size_t)sprintf(obj, "Content-Type: text/plain; charset=windows-1252\r\n"
				 "Message-Context: pager-message\r\n\r\n\x80 5 \x93ok\x94");
	ck_assert_int_eq(msg_summary_parse(obj, n, &m), 0);
	ck_assert_str_eq(m.snippet, "\xe2\x82\xac 5 \xe2\x80\x9cok\xe2\x80\x9d");
	msg_summary_free(&m);
}
END_TEST

/*
 * Snippet of ASCII text, read eight bytes at a time while all are
 * printable: a control character (31), DEL (127) or a UTF-8 byte at any
 * place of such a group is seen there (a control or DEL as a space), the
 * printable bounds (32, 126) are kept, and the text is cut at exactly
 * CPM_SNIPPET_CHARS characters.
 */
START_TEST(test_snippet_ascii_runs)
{
	static const struct {
		char c;
		const char *as;
	} odd[] = { { '\x1f', " " }, { '\x7f', " " }, { ' ', " " }, { '~', "~" } };
	char obj[1024], want[64];
	struct msg_summary m;
	size_t n, h;

	h = (size_t)sprintf(obj, "Content-Type: text/plain; charset=utf-8\r\n"
				 "Message-Context: pager-message\r\n\r\n");
	for (size_t k = 0; k < sizeof(odd) / sizeof(odd[0]); k++) {
		for (size_t at = 1; at < 17; at++) { /* 0: a blank first goes */
			n = h + (size_t)sprintf(obj + h, "abcdefghijklmnopqrstuvwx");
			obj[h + at] = odd[k].c;
			memcpy(want, "abcdefghijklmnopqrstuvwx", 25);
			want[at] = odd[k].as[0];
			ck_assert_int_eq(msg_summary_parse(obj, n, &m), 0);
			ck_assert_msg(strcmp(m.snippet, want) == 0, "byte %d at %zu: \"%s\"",
				      odd[k].c, at, m.snippet);
			msg_summary_free(&m);
		}
	}
	/* A UTF-8 character inside a group of eight. */
	n = h + (size_t)sprintf(obj + h, "abc\xc3\xa9"
					 "defghijklm");
	ck_assert_int_eq(msg_summary_parse(obj, n, &m), 0);
	ck_assert_str_eq(m.snippet, "abc\xc3\xa9"
				    "defghijklm");
	msg_summary_free(&m);
	/* 203 printable characters: the first 200 are kept. */
	n = h;
	for (int i = 0; i < 203; i++)
		obj[n++] = (char)('a' + i % 26);
	ck_assert_int_eq(msg_summary_parse(obj, n, &m), 0);
	ck_assert_uint_eq(strlen(m.snippet), CPM_SNIPPET_CHARS);
	ck_assert_int_eq(memcmp(m.snippet, obj + h, CPM_SNIPPET_CHARS), 0);
	msg_summary_free(&m);
}
END_TEST

/* Snippet: a byte order mark and Unicode whitespace go at both ends (the
 * contract's "whitespace trimmed"), not inside; a byte sequence the
 * charset does not have is U+FFFD. */
START_TEST(test_snippet_unicode_trim)
{
	static const struct {
		const char *ct, *body, *snippet;
	} cases[] = {
		/* BOM, NBSP, U+3000, U+2003, NEL ... text ... U+2003 U+3000 NBSP */
		{ "utf-8",
		  "\xef\xbb\xbf\xc2\xa0\xe3\x80\x80\xe2\x80\x83\xc2\x85 hi\xc2\xa0there "
		  "\xe2\x80\x83\xe3\x80\x80\xc2\xa0",
		  "hi\xc2\xa0there" },
		{ "utf-8", "\xef\xbb\xbf", "" },
		{ "utf-8", "\xe2\x80\xa8x\xe2\x80\xa9", "x" },
		/* not whitespace: kept (U+200B ZERO WIDTH SPACE, U+00AD) */
		{ "utf-8", "\xe2\x80\x8bx\xc2\xad", "\xe2\x80\x8bx\xc2\xad" },
		/* the BOM of UTF-16 text, and a BOM after it */
		{ "utf-16", "\xfe\xff\xfe\xff\x00x", "x" },
		/* Shift_JIS: 0x80 is none of its bytes; a lead byte cut at the end */
		{ "shift_jis",
		  "a\x80"
		  "b\x93",
		  "a\xef\xbf\xbd"
		  "b\xef\xbf\xbd" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char obj[512];
		size_t n, blen = strlen(cases[i].body);
		struct msg_summary m;

		if (strcmp(cases[i].ct, "utf-16") == 0)
			blen = 6;
		n = (size_t)snprintf(obj, sizeof(obj),
				     "Content-Type: text/plain; charset=%s\r\n"
				     "Message-Context: pager-message\r\n\r\n",
				     cases[i].ct);
		memcpy(obj + n, cases[i].body, blen);
		ck_assert_int_eq(msg_summary_parse(obj, n + blen, &m), 0);
		ck_assert_msg(strcmp(m.snippet, cases[i].snippet) == 0, "case %zu: \"%s\"", i,
			      m.snippet);
		msg_summary_free(&m);
	}
}
END_TEST

/* What iconv gives is checked: glibc's UTF-8 decoder (reached through
 * "UTF-8*", a charset with an RFC 2231 language suffix) passes a code
 * point past U+10FFFF, which is no UTF-8 (found by fuzz-cpm). */
START_TEST(test_snippet_iconv_checked)
{
	static const char obj[] = "Content-Type: text/plain; charset=\"UTF-8*\"\r\n"
				  "Message-Context: pager-message\r\n\r\n"
				  "a\xf4\x90\x80\x80"
				  "b";
	struct msg_summary m;

	ck_assert_int_eq(msg_summary_parse(obj, sizeof(obj) - 1, &m), 0);
	ck_assert_str_eq(m.snippet, "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
				    "b");
	msg_summary_free(&m);
}
END_TEST

/* An error quoting a value cuts it at 40 bytes: never inside a UTF-8
 * sequence (found by fuzz-cpm: the quoted value was 39 bytes and an
 * ISO-8859-1 byte taken as a 2-byte character). */
START_TEST(test_error_text_utf8)
{
	static const char in[] =
		"Message-Context: pager-message\r\n"
		"Message-Direction: 123456789012345678901234567890123456789\xff\r\n"
		"\r\n";
	struct msg_summary m;
	char *err = NULL;

	ck_assert_int_eq(msg_summary_parse(in, sizeof(in) - 1, &m), 0);
	ck_assert(cpmsync_utf8_valid(m.error, strlen(m.error)));
	ck_assert_str_eq(m.error, "Message-Direction \"123456789012345678901234567890123456789?\""
				  " is neither sent nor received");
	ck_assert_int_eq(cpm_object_check(&m, &err), -EINVAL);
	ck_assert(cpmsync_utf8_valid(err, strlen(err)));
	free(err);
	msg_summary_free(&m);
}
END_TEST

START_TEST(test_status_rank)
{
	ck_assert_int_eq(cpm_status_rank("displayed"), 3);
	ck_assert_int_eq(cpm_status_rank("delivered"), 2);
	ck_assert_int_eq(cpm_status_rank("failed"), 1);
	ck_assert_int_eq(cpm_status_rank("forbidden"), 1);
	ck_assert_int_eq(cpm_status_rank("error"), 1);
	ck_assert_int_eq(cpm_status_rank("processed"), 0);
	ck_assert_int_eq(cpm_status_rank(""), 0);
	ck_assert_int_eq(cpm_status_rank(NULL), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cpm");
	TCase *tc = tcase_create("parse");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_corpus, 0, (int)ARRAY_LEN(corpus));
	tcase_add_loop_test(tc, test_every_prefix, 0, (int)ARRAY_LEN(corpus));
	tcase_add_test(tc, test_xml_bomb_10mb);
	tcase_add_test(tc, test_xml_doctype_refused);
	tcase_add_test(tc, test_xml_parser_reused);
	tcase_add_test(tc, test_xml_declaration_skipped);
	tcase_add_test(tc, test_xml_depth);
	tcase_add_test(tc, test_xml_participants);
	tcase_add_test(tc, test_xml_encodings);
	tcase_add_test(tc, test_xml_bad_size);
	tcase_add_test(tc, test_snippet_bounds);
	tcase_add_test(tc, test_snippet_ascii_runs);
	tcase_add_test(tc, test_snippet_unicode_trim);
	tcase_add_test(tc, test_snippet_iconv_checked);
	tcase_add_test(tc, test_error_text_utf8);
	tcase_add_test(tc, test_status_rank);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(suite)
