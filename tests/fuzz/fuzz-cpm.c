/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: arbitrary bytes as a CPM object (util/cpm-object.c and
 * util/cpm-xml.c behind msg_summary_parse()), and the first byte choosing
 * one of the XML formats for the rest fed to cpm_xml_parse() directly.
 * Nothing may fail but for -ENOMEM; every string is valid UTF-8 without
 * NUL, bounded; the type is one of the contract's; an error is a sentence.
 * Seeds: tests/data/cpm/ (copied into corpus/fuzz-cpm).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/utf8.h>

#include "util/cpm-object.h"
#include "util/cpm-xml.h"
#include "util/msg-summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ok(const char *v, size_t max)
{
	assert(v);
	assert(strlen(v) <= max);
	assert(cpmsync_utf8_valid(v, strlen(v)));
}

static const char *const types[] = { "message",	    "file-transfer", "media", "session-info",
				     "group-state", "imdn",	     "mail" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_summary m;
	struct cpm_xml x;
	char *err = NULL;
	bool known = false;
	int r;

	r = msg_summary_parse(data, size, &m);
	if (r < 0) {
		assert(r == -ENOMEM);
		return 0;
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		known |= strcmp(m.type, types[i]) == 0;
	assert(known);
	ok(m.direction, 8);
	assert(!*m.direction || !strcmp(m.direction, "sent") || !strcmp(m.direction, "received"));
	ok(m.context, MSG_SUMMARY_MAX_FIELD);
	ok(m.peer, MSG_SUMMARY_MAX_FIELD);
	ok(m.snippet, CPM_SNIPPET_CHARS * 4);
	for (const char *p = m.snippet; *p; p++)
		assert((unsigned char)*p >= 0x20 || *p == '\t');
	ok(m.imdn_ref, CPM_XML_MAX_TEXT);
	ok(m.status, CPM_XML_MAX_TEXT);
	ok(m.participants, CPM_XML_MAX_PARTICIPANTS * (CPM_XML_MAX_TEXT + 1));
	ok(m.file_name, CPM_XML_MAX_TEXT);
	ok(m.error, 4096);
	if (!strcmp(m.type, "imdn") && !*m.error && size)
		assert(!*m.imdn_ref == !*m.status);
	r = cpm_object_check(&m, &err);
	assert(r == 0 || r == -ENOMEM || (r == -EINVAL && err && *err));
	free(err);
	msg_summary_free(&m);

	if (size) {
		enum cpm_xml_kind k = (enum cpm_xml_kind)(data[0] % 5);

		err = NULL;
		r = cpm_xml_parse(k, (const char *)data + 1, size - 1, &x, &err);
		if (r == 0) {
			ok(x.message_id, CPM_XML_MAX_TEXT);
			ok(x.status, CPM_XML_MAX_TEXT);
			ok(x.participants, CPM_XML_MAX_PARTICIPANTS * (CPM_XML_MAX_TEXT + 1));
			ok(x.file_name, CPM_XML_MAX_TEXT);
			ok(x.file_type, CPM_XML_MAX_TEXT);
			if (k == CPM_XML_IMDN)
				assert(*x.message_id && *x.status);
			cpm_xml_free(&x);
		} else {
			assert(r == -ENOMEM || r == -E2BIG || r == -EBADMSG);
			assert(r == -ENOMEM || (err && *err));
		}
		free(err);
	}
	return 0;
}
