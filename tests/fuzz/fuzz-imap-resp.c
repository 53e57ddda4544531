/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parses the input as server responses and runs every typed decoder over
 * each complete response: no decoder may crash, leak or read out of
 * bounds on anything the parser accepts.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap/imap-ns.h"
#include "imap/imap-parser.h"
#include "imap/imap-resp.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The namespace map of a NAMESPACE response, shown and hidden, over names
 * that hit its prefixes, their roots and neither, both ways. */
static void fuzz_namespace(const struct imap_namespace *ns)
{
	static const char *const names[] = {
		"INBOX",     "INBOX.a", "INBOX/a.b",	"user.bob.x", "Other Users/bob",
		"#Shared/x", "#Users",	"#Personal2/a", "a",	      ""
	};
	struct imap_ns_map m;

	imap_ns_map_init(&m);
	for (int show = 0; show < 2; show++) {
		m.show_other = show;
		if (imap_ns_map_set(&m, ns, NULL) < 0)
			break;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			struct buf out = BUF_INIT(1 << 16);

			imap_ns_personal_base(&m, show, &out);
			imap_ns_to_local(&m, names[i], strlen(names[i]), '.', show, &out);
			imap_ns_from_local(&m, names[i], '/', show, &out);
			/* Each prefix itself, and one level below it. */
			for (int k = 0; k < IMAP_NS_KIND_MAX; k++)
				for (size_t j = 0; j < m.n[k]; j++) {
					const struct imap_ns_prefix *p = &m.ns[k][j];
					struct buf nm = BUF_INIT(4096);

					imap_ns_to_local(&m, p->prefix, p->len, p->delimiter, show,
							 &out);
					buf_append_str(&nm, p->prefix);
					buf_append_str(&nm, "x");
					if (nm.data)
						imap_ns_to_local(&m, nm.data, nm.len, p->delimiter,
								 show, &out);
					buf_free(&nm);
				}
			buf_free(&out);
		}
	}
	imap_ns_map_free(&m);
}

static void decode_all(const struct imap_response *resp)
{
	struct imap_caps caps;
	struct imap_flags flags;
	struct imap_vanished van;
	struct imap_fetch fetch;
	struct imap_status_data st;
	struct imap_list list;
	struct imap_search search;
	struct imap_esearch esearch;
	struct imap_metadata md;
	struct imap_acl acl;
	struct imap_listrights lr;
	struct imap_namespace ns;
	struct imap_resp_code code;
	struct imap_nstr a, b;
	uint32_t n;

	imap_caps_init(&caps);
	imap_caps_parse_response(&caps, resp);
	imap_caps_parse_code(&caps, resp);
	imap_caps_free(&caps);
	imap_resp_exists(resp, &n);
	imap_resp_recent(resp, &n);
	imap_resp_expunge(resp, &n);
	imap_resp_flags(resp, &flags);
	imap_vanished_init(&van);
	imap_resp_vanished(resp, &van);
	imap_vanished_free(&van);
	if (imap_resp_fetch(resp, &fetch) == 0) {
		struct imap_annotation_entry an;

		if (fetch.bodystructure) {
			struct buf out = BUF_INIT(1 << 20);

			imap_arg_write(&out, fetch.bodystructure);
			buf_free(&out);
		}
		for (size_t i = 0; imap_fetch_annotation_get(&fetch, i, &an) == 0; i++)
			;
	}
	imap_resp_status(resp, &st);
	imap_resp_list(resp, &list);
	imap_search_init(&search);
	imap_resp_search(resp, &search);
	imap_search_free(&search);
	imap_esearch_init(&esearch);
	imap_resp_esearch(resp, &esearch);
	imap_esearch_free(&esearch);
	if (imap_resp_metadata(resp, &md) == 0) {
		struct imap_metadata_entry e;

		for (size_t i = 0; imap_metadata_get(&md, i, &e) == 0 && i < 64; i++)
			;
	}
	if (imap_resp_acl(resp, &acl) == 0)
		for (size_t i = 0; imap_acl_get(&acl, i, &a, &b) == 0 && i < 64; i++)
			;
	imap_resp_myrights(resp, &a, &b);
	imap_resp_listrights(resp, &lr);
	if (imap_resp_namespace(resp, &ns) == 0) {
		struct imap_ns_entry e;

		for (size_t i = 0; imap_ns_get(&ns.personal, i, &e) == 0 && i < 64; i++)
			;
		fuzz_namespace(&ns);
	}
	imap_resp_code_init(&code);
	if (imap_resp_code_parse(resp, &code) == 0 && code.code == IMAP_CODE_COPYUID) {
		struct imap_uidset_iter it;
		uint32_t uid;

		imap_uidset_iter_init(&it, &code.src_raw);
		/* Bounded: a range may name four billion UIDs. */
		for (int i = 0; i < 1000 && imap_uidset_iter_next(&it, &uid) > 0; i++)
			;
	}
	imap_resp_code_free(&code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser *parser;
	size_t off = 0;

	if (imap_parser_new(NULL, NULL, NULL, &parser) < 0)
		return 0;
	while (off < size) {
		const struct imap_response *resp = NULL;
		size_t used = 0;
		int r = imap_parser_feed(parser, data + off, size - off, &used, &resp);

		off += used;
		if (r != IMAP_PARSE_COMPLETE)
			break;
		decode_all(resp);
	}
	imap_parser_free(parser);
	return 0;
}
