/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Namespaces (RFC 2342): server names to local names and back (imap-ns.h).
 */
#include "imap/imap-ns.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>

#include "imap/imap-utf7.h"
#include "util/macro.h"

static const char *const kind_root[IMAP_NS_KIND_MAX] = {
	[IMAP_NS_PERSONAL] = "#Personal",
	[IMAP_NS_OTHER] = "#Users",
	[IMAP_NS_SHARED] = "#Shared",
};

static void restore(struct buf *out, size_t len)
{
	out->len = len;
	if (out->data)
		out->data[len] = '\0';
}

static void clear(struct imap_ns_map *m)
{
	for (int k = 0; k < IMAP_NS_KIND_MAX; k++) {
		for (size_t i = 0; i < m->n[k]; i++)
			free(m->ns[k][i].prefix);
		m->n[k] = 0;
	}
}

void imap_ns_map_init(struct imap_ns_map *m)
{
	*m = (struct imap_ns_map){ 0 };
	/* The personal namespace with the empty prefix; its delimiter is
	 * LIST's.  A static "" would be freed by clear(): n stays 0 and
	 * personal_prefix() falls back to "". */
}

void imap_ns_map_free(struct imap_ns_map *m)
{
	clear(m);
	m->known = false;
}

int imap_ns_map_set(struct imap_ns_map *m, const struct imap_namespace *ns, const char **ret_why)
{
	const struct imap_ns_list *lists[IMAP_NS_KIND_MAX] = { &ns->personal, &ns->other,
							       &ns->shared };
	struct imap_ns_map next = { .known = true, .show_other = m->show_other };
	const char *why = NULL;
	int r = 0;

	if (ns->personal.count == 0)
		why = "no personal namespace";
	for (int k = 0; !why && k < IMAP_NS_KIND_MAX; k++) {
		if (lists[k]->count > IMAP_NS_MAX_ENTRIES) {
			why = "more namespaces of a kind than the limit";
			break;
		}
		for (size_t i = 0; i < lists[k]->count; i++) {
			struct imap_ns_entry e;
			struct imap_ns_prefix *p = &next.ns[k][i];

			if (imap_ns_get(lists[k], i, &e) < 0 || !e.prefix.str) {
				why = "an entry that does not parse";
				break;
			}
			if (e.prefix.len > IMAP_NS_MAX_PREFIX) {
				why = "a prefix longer than the limit";
				break;
			}
			if (memchr(e.prefix.str, '\0', e.prefix.len)) {
				why = "a prefix holding a NUL";
				break;
			}
			p->prefix = strndup(e.prefix.str, e.prefix.len);
			if (!p->prefix) {
				r = -ENOMEM;
				break;
			}
			p->len = e.prefix.len;
			p->delimiter = e.delimiter;
			next.n[k]++;
		}
		if (r < 0)
			break;
	}
	if (why || r < 0) {
		clear(&next);
		if (ret_why)
			*ret_why = why;
		return r < 0 ? r : -CPMSYNC_E_PROTOCOL;
	}
	clear(m);
	*m = next;
	return 0;
}

const char *imap_ns_map_personal_prefix(const struct imap_ns_map *m)
{
	return m->n[IMAP_NS_PERSONAL] ? m->ns[IMAP_NS_PERSONAL][0].prefix : "";
}

int imap_ns_personal_base(const struct imap_ns_map *m, bool utf8_mode, struct buf *out)
{
	const struct imap_ns_prefix *p;
	size_t start = out->len, n;
	bool level;
	int r;

	if (!m->known || m->n[IMAP_NS_PERSONAL] == 0 || m->ns[IMAP_NS_PERSONAL][0].len == 0)
		return 0;
	p = &m->ns[IMAP_NS_PERSONAL][0];
	n = p->len;
	level = p->delimiter && p->prefix[n - 1] == p->delimiter;
	if (level)
		n--;
	if (n == 0)
		return -EINVAL; /* a prefix that is only the delimiter */
	r = imap_mailbox_to_utf8(p->prefix, n, p->delimiter ? p->delimiter : '/', utf8_mode, out);
	if (r >= 0 && level)
		r = buf_append_char(out, '/');
	if (r < 0)
		restore(out, start);
	return r;
}

/* Does name start with the prefix?  The top level INBOX in any case. */
static bool starts_with(const char *name, size_t len, const char *prefix, size_t plen)
{
	if (len < plen)
		return false;
	if (plen >= 5 && strncasecmp(prefix, "INBOX", 5) == 0 &&
	    (plen == 5 || !isalnum((unsigned char)prefix[5]))) {
		/* INBOX followed by the delimiter: the INBOX part in any case. */
		if (strncasecmp(name, "INBOX", 5) != 0)
			return false;
		return memcmp(name + 5, prefix + 5, plen - 5) == 0;
	}
	return memcmp(name, prefix, plen) == 0;
}

struct match {
	int kind; /* -1: none */
	size_t index;
	bool root;	  /* the name is the prefix without its final delimiter */
	const char *rest; /* below the prefix */
	size_t rest_len;
};

/* The namespace with the longest prefix that holds name. */
static struct match find(const struct imap_ns_map *m, const char *name, size_t len)
{
	struct match best = { .kind = -1 };
	size_t best_len = 0;

	if (!m->known) {
		best.kind = IMAP_NS_PERSONAL;
		best.rest = name;
		best.rest_len = len;
		return best;
	}
	for (int k = 0; k < IMAP_NS_KIND_MAX; k++)
		for (size_t i = 0; i < m->n[k]; i++) {
			const struct imap_ns_prefix *p = &m->ns[k][i];
			bool root = false;

			if (starts_with(name, len, p->prefix, p->len))
				root = false;
			else if (p->len > 0 && p->delimiter &&
				 p->prefix[p->len - 1] == p->delimiter && len == p->len - 1 &&
				 starts_with(name, len, p->prefix, len))
				root = true;
			else
				continue;
			if (best.kind >= 0 && p->len <= best_len)
				continue;
			best = (struct match){ .kind = k,
					       .index = i,
					       .root = root,
					       .rest = root ? name + len : name + p->len,
					       .rest_len = root ? 0 : len - p->len };
			best_len = p->len;
		}
	return best;
}

/* The local root of a namespace other than the first personal one. */
static void root_name(int kind, size_t index, char *buf, size_t size)
{
	if (index == 0)
		snprintf(buf, size, "%s", kind_root[kind]);
	else
		snprintf(buf, size, "%s%zu", kind_root[kind], index + 1);
}

/* Is the first level of the local name the root of a namespace the map
 * knows (shown or not)?  *ret_kind / *ret_index say which. */
static bool is_root(const struct imap_ns_map *m, const char *name, size_t level_len, int *ret_kind,
		    size_t *ret_index)
{
	char root[32];

	if (!m->known || level_len == 0 || name[0] != '#')
		return false;
	for (int k = 0; k < IMAP_NS_KIND_MAX; k++)
		for (size_t i = k == IMAP_NS_PERSONAL ? 1 : 0; i < m->n[k]; i++) {
			root_name(k, i, root, sizeof(root));
			if (strlen(root) == level_len && memcmp(root, name, level_len) == 0) {
				*ret_kind = k;
				*ret_index = i;
				return true;
			}
		}
	return false;
}

/* The same for a shown namespace. */
static bool is_shown_root(const struct imap_ns_map *m, const char *name, size_t level_len,
			  int *ret_kind, size_t *ret_index)
{
	return m->show_other && is_root(m, name, level_len, ret_kind, ret_index);
}

bool imap_ns_hidden_root(const struct imap_ns_map *m, const char *name)
{
	int kind;
	size_t index;

	if (m->show_other || !m->known)
		return false;
	if (!name)
		return m->n[IMAP_NS_PERSONAL] > 1 || m->n[IMAP_NS_OTHER] > 0 ||
		       m->n[IMAP_NS_SHARED] > 0;
	return is_root(m, name, strcspn(name, "/"), &kind, &index);
}

bool imap_ns_foreign_root(const struct imap_ns_map *m, const char *name)
{
	int kind;
	size_t index;

	return name && is_root(m, name, strcspn(name, "/"), &kind, &index);
}

int imap_ns_to_local(const struct imap_ns_map *m, const char *name, size_t len, char delimiter,
		     bool utf8_mode, struct buf *out)
{
	size_t start = out->len;
	struct match mt;
	char root[32];
	int kind;
	size_t index;
	int r;

	if (len == 5 && strncasecmp(name, "INBOX", 5) == 0)
		return imap_mailbox_to_utf8(name, len, delimiter, utf8_mode, out);
	mt = find(m, name, len);
	if (mt.kind < 0)
		return -ENOENT;
	if (mt.kind == IMAP_NS_PERSONAL && mt.index == 0) {
		if (mt.root)
			return -ENOENT; /* "INBOX" is above; another root is no folder */
		r = imap_mailbox_to_utf8(mt.rest, mt.rest_len, delimiter, utf8_mode, out);
		if (r < 0)
			return r;
		/* "INBOX.INBOX" would be INBOX. */
		if (mt.rest != name && streq(out->data + start, "INBOX")) {
			restore(out, start);
			return -EEXIST;
		}
		if (is_shown_root(m, out->data + start, strcspn(out->data + start, "/"), &kind,
				  &index)) {
			restore(out, start);
			return -EEXIST;
		}
		return 0;
	}
	if (!m->show_other)
		return -ENOENT;
	root_name(mt.kind, mt.index, root, sizeof(root));
	r = buf_append_str(out, root);
	if (r >= 0 && mt.rest_len > 0) {
		r = buf_append_char(out, '/');
		if (r >= 0)
			r = imap_mailbox_to_utf8(mt.rest, mt.rest_len, delimiter, utf8_mode, out);
	}
	if (r < 0)
		restore(out, start);
	return r;
}

int imap_ns_from_local(const struct imap_ns_map *m, const char *name, char delimiter,
		       bool utf8_mode, struct buf *out)
{
	size_t start = out->len;
	size_t level = strcspn(name, "/");
	const struct imap_ns_prefix *p;
	int kind;
	size_t index;
	int r;

	if (is_shown_root(m, name, level, &kind, &index)) {
		p = &m->ns[kind][index];
		if (!name[level]) {
			/* The namespace's root: its prefix without the final delimiter. */
			size_t n = p->len;

			if (n > 0 && p->delimiter && p->prefix[n - 1] == p->delimiter)
				n--;
			if (n == 0)
				return -EINVAL;
			return buf_append(out, p->prefix, n);
		}
		r = buf_append(out, p->prefix, p->len);
		if (r >= 0)
			r = imap_mailbox_from_utf8(name + level + 1, strlen(name + level + 1),
						   p->delimiter ? p->delimiter : delimiter,
						   utf8_mode, out);
		if (r < 0)
			restore(out, start);
		return r;
	}
	if (!m->known || m->n[IMAP_NS_PERSONAL] == 0 || strcasecmp(name, "INBOX") == 0)
		return imap_mailbox_from_utf8(name, strlen(name), delimiter, utf8_mode, out);
	p = &m->ns[IMAP_NS_PERSONAL][0];
	r = buf_append(out, p->prefix, p->len);
	if (r >= 0)
		r = imap_mailbox_from_utf8(name, strlen(name),
					   p->delimiter ? p->delimiter : delimiter, utf8_mode, out);
	if (r < 0)
		restore(out, start);
	return r;
}
