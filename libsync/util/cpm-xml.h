/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The XML bodies of CPM objects, read with libexpat (cpm-xml.c):
 *
 *   CPM_XML_IMDN        message/imdn+xml (RFC 5438 7.2): the original's
 *                       <message-id> and the disposition status
 *   CPM_XML_SESSION     Application/X-CPM-Session (the session-info
 *                       object): <session-type>, <invited-participants>
 *   CPM_XML_GROUP_STATE application/group-state-object+xml: <participant
 *                       comm-addr=...> of <groupstate>
 *   CPM_XML_FT_HTTP     application/vnd.gsma.rcs-ft-http+xml (RCS FT over
 *                       HTTP): the <file-info type="file"> name, size,
 *                       content type
 *   CPM_XML_FT_CPM      Application/X-CPM-File-Transfer (the descriptor of
 *                       a CPM file-transfer history object): the first
 *                       <file-object>'s <sdp> a=file-selector (RFC 5547)
 *                       name, size, type, and <invited-participants>.
 *                       The descriptor need not have a single root
 *                       element (the published example has none), so it
 *                       is read inside a synthetic one.
 *
 * Element names are matched without their namespace (expat runs in
 * namespace mode, so a prefixed and an unprefixed element are the same).
 *
 * Limits: input over CPM_XML_MAX bytes is refused before parsing; a
 * document with a DOCTYPE (and so any entity declaration: no CPM format
 * has a DTD) is refused as soon as it is seen, which is what stops
 * entity-expansion bombs; elements may nest CPM_XML_MAX_DEPTH deep; text
 * kept per value is cut at CPM_XML_MAX_TEXT bytes; at most
 * CPM_XML_MAX_PARTICIPANTS participants are kept.
 */

#include <stddef.h>
#include <stdint.h>

#define CPM_XML_MAX		 (64u * 1024)
#define CPM_XML_MAX_DEPTH	 32
#define CPM_XML_MAX_TEXT	 1024
#define CPM_XML_MAX_PARTICIPANTS 256

enum cpm_xml_kind {
	CPM_XML_IMDN,
	CPM_XML_SESSION,
	CPM_XML_GROUP_STATE,
	CPM_XML_FT_HTTP,
	CPM_XML_FT_CPM,
};

struct cpm_xml {
	/* IMDN */
	char *message_id;   /* the original's IMDN Message-ID */
	char *status;	    /* "delivered", "displayed", "processed", "stored",
			     * "failed", "forbidden", "error"; "" if none */
	char *notification; /* "delivery", "display", "processing" */
	/* session-info, group-state, CPM FT: addresses, one per '\n' line */
	char *participants;
	char *session_type; /* <session-type> / group-type, as written */
	/* file transfer */
	char *file_name;
	char *file_type;
	uint64_t file_size;
};

/*
 * Parses len bytes of kind.  Returns 0 and fills *ret (every string
 * allocated, valid UTF-8 without control characters, "" when absent), or
 * a negative errno and sets *ret_error (malloc()ed) to a sentence naming
 * what was wrong: -E2BIG (too large, too deep), -EBADMSG (not well-formed,
 * a DOCTYPE, a missing required element such as the IMDN <message-id> or
 * status), -ENOMEM.  *ret holds nothing to free on failure.
 */
int cpm_xml_parse(enum cpm_xml_kind kind, const char *data, size_t len, struct cpm_xml *ret,
		  char **ret_error);
void cpm_xml_free(struct cpm_xml *x);

/*
 * Makes s valid UTF-8 in place: a byte that does not start a well-formed
 * sequence (e.g. one cut by a "%.40s" in an error text) becomes '?'.
 * Returns s.
 */
char *cpm_utf8_fix(char *s);
