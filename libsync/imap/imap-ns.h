/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Namespaces (RFC 2342): the one place where a server's mailbox names
 * become our local names and back.
 *
 * Local names are relative to the personal namespace's prefix: in Cyrus's
 * classic namespace (personal prefix "INBOX.") the server's "INBOX.Work.Sync"
 * is "Work/Sync" here, and "INBOX" stays "INBOX".  A server without
 * NAMESPACE has one personal namespace with the empty prefix (names map as
 * they are).
 *
 * Names in the other users' and shared namespaces are hidden, or, when the
 * map shows them, get a local root of their own that names the kind:
 * "#Users" for the first other users' namespace, "#Shared" for the
 * first shared one, "#Personal2" for a second personal namespace, and a
 * number after the second and later of each kind ("#Shared2").  So alt
 * Cyrus's "Other Users/bob/Work" and classic Cyrus's "user.bob.Work" are
 * both "#Users/bob/Work".  While they are shown, a personal folder
 * whose first level is one of these roots cannot be told from them and is
 * hidden instead (-EEXIST below).
 *
 * The prefixes are kept as the server sent them (modified UTF-7, or UTF-8
 * once UTF8=ACCEPT is enabled) and compared with the names as sent.
 */

#include <stdbool.h>
#include <stddef.h>

#include "imap/imap-resp.h"
#include "util/buf.h"

/* Limits on what NAMESPACE may announce (more is refused as malformed). */
#define IMAP_NS_MAX_ENTRIES 8	 /* per kind */
#define IMAP_NS_MAX_PREFIX  1024 /* bytes */

enum imap_ns_kind { IMAP_NS_PERSONAL, IMAP_NS_OTHER, IMAP_NS_SHARED, IMAP_NS_KIND_MAX };

struct imap_ns_prefix {
	char *prefix; /* as the server sent it, NUL-terminated */
	size_t len;
	char delimiter; /* 0: NIL (flat) */
};

struct imap_ns_map {
	struct imap_ns_prefix ns[IMAP_NS_KIND_MAX][IMAP_NS_MAX_ENTRIES];
	size_t n[IMAP_NS_KIND_MAX];
	bool known;	 /* from a NAMESPACE response; else the default */
	bool show_other; /* show the other users' and shared namespaces */
};

/* The map of a server without NAMESPACE: one personal namespace, prefix "". */
void imap_ns_map_init(struct imap_ns_map *m);
void imap_ns_map_free(struct imap_ns_map *m);

/*
 * Replaces m's namespaces (show_other kept) with those of a parsed NAMESPACE
 * response.  -CPMSYNC_E_PROTOCOL for an entry that does not parse, no
 * personal namespace, more than IMAP_NS_MAX_ENTRIES of a kind, a prefix
 * longer than IMAP_NS_MAX_PREFIX or holding a NUL; *ret_why (may be NULL)
 * then says which (a static string) and m is unchanged.  -ENOMEM.
 */
int imap_ns_map_set(struct imap_ns_map *m, const struct imap_namespace *ns, const char **ret_why);

/* The personal namespace's prefix as the server sent it ("" when none). */
const char *imap_ns_map_personal_prefix(const struct imap_ns_map *m);

/*
 * The personal namespace's prefix in our form, appended to out: "INBOX/"
 * for "INBOX." with the delimiter '.', "" for "" (and for the default
 * map).  A local name X is the server's name P X; this base B makes the
 * local name the server's whole name mapped as it is: B X.  0, or
 * imap_mailbox_to_utf8()'s errors.
 */
int imap_ns_personal_base(const struct imap_ns_map *m, bool utf8_mode, struct buf *out);

/*
 * A name as the server sent it (LIST, STATUS...) with the delimiter the
 * response gave (0: NIL) to our form, appended to out.  Returns 0,
 * -ENOENT for a name that is hidden (another namespace while they are
 * hidden, or a name outside every announced namespace), -EEXIST for a name
 * whose local form would be another's ("INBOX.INBOX" under the prefix
 * "INBOX.", or a personal folder named as a shown namespace's root), or
 * imap_mailbox_to_utf8()'s errors for the part below the prefix.
 */
int imap_ns_to_local(const struct imap_ns_map *m, const char *name, size_t len, char delimiter,
		     bool utf8_mode, struct buf *out);

/*
 * Whether the local name's first level is the root ("#Users", "#Shared",
 * ...) of a namespace the map knows but hides: a folder of another user
 * or a shared one, kept from when they were shown.  imap_ns_from_local()
 * would put it under the personal prefix, which is not where it is (a
 * personal folder so named, listed while they are hidden, is the one
 * exception, and only LIST tells it).  name NULL: whether the map hides
 * any namespace.
 */
bool imap_ns_hidden_root(const struct imap_ns_map *m, const char *name);

/*
 * Whether the local name's first level is the root ("#Users", "#Shared",
 * ...) of a namespace other than the first personal one, shown or hidden:
 * a folder of another user or a shared one, which this account does not
 * own (it cannot make it again once it is gone).
 */
bool imap_ns_foreign_root(const struct imap_ns_map *m, const char *name);

/*
 * Our form of a name to the server's, appended to out: under the
 * personal prefix (INBOX stays INBOX), or under a shown namespace's prefix
 * when the first level is its local root.  delimiter is the one LIST gave
 * (used when the namespace's own is unknown).  0, or
 * imap_mailbox_from_utf8()'s errors; -EINVAL for the bare root of a
 * namespace whose prefix is empty.
 */
int imap_ns_from_local(const struct imap_ns_map *m, const char *name, char delimiter,
		       bool utf8_mode, struct buf *out);
