/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The CPM folder model (cpmsync/cpm-folders.h): folder classification and
 * the filing decision (util/cpm-file.h).  No I/O, no store.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/cpm-folders.h>
#include <cpmsync/limits.h>
#include <cpmsync/utf8.h>

#include "util/cpm-file.h"

static const char *const kind_names[_CPMSYNC_FOLDER_KIND_MAX] = {
	[CPMSYNC_FOLDER_USER] = "user",
	[CPMSYNC_FOLDER_CONVERSATION_HISTORY] = "conversation-history",
	[CPMSYNC_FOLDER_SESSION_HISTORY] = "session-history",
};

const char *cpmsync_folder_kind_name(enum cpmsync_folder_kind kind)
{
	if ((unsigned)kind >= _CPMSYNC_FOLDER_KIND_MAX)
		return "user";
	return kind_names[kind];
}

void cpmsync_cpm_classify_folder(const char *root, const char *name, const char *special_use,
				 struct cpmsync_cpm_folder *ret)
{
	const char *rel, *slash;
	size_t root_len;

	*ret = (struct cpmsync_cpm_folder){ .kind = CPMSYNC_FOLDER_USER,
					    .conversation_id = "",
					    .contribution_id = "" };
	if (!name || !*name || (special_use && *special_use) || strcasecmp(name, "INBOX") == 0)
		return;
	root = root ? root : "";
	root_len = strlen(root);
	if (root_len) {
		if (strncmp(name, root, root_len) != 0 || name[root_len] != '/')
			return;
		rel = name + root_len + 1;
	} else {
		rel = name;
	}
	if (!*rel)
		return;
	slash = strchr(rel, '/');
	if (!slash) {
		ret->kind = CPMSYNC_FOLDER_CONVERSATION_HISTORY;
		ret->conversation_id = rel;
		ret->conversation_id_len = strlen(rel);
		return;
	}
	if (slash == rel || !slash[1] || strchr(slash + 1, '/'))
		return;
	ret->kind = CPMSYNC_FOLDER_SESSION_HISTORY;
	ret->conversation_id = rel;
	ret->conversation_id_len = (size_t)(slash - rel);
	ret->contribution_id = slash + 1;
	ret->contribution_id_len = strlen(slash + 1);
}

/* Valid UTF-8 without control characters. */
static bool clean_utf8(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t k = cpmsync_utf8_decode(s + i, n - i, NULL);

		if (k == 0 || u[i] < 0x20 || u[i] == 0x7f)
			return false;
		i += k;
	}
	return true;
}

bool cpmsync_cpm_root_valid(const char *s, const char **ret_why)
{
	const char *why = NULL;
	size_t n = s ? strlen(s) : 0;

	if (!s)
		why = "is missing";
	else if (n > CPMSYNC_FOLDER_NAME_MAX)
		why = "is longer than a folder name may be";
	else if (n && (s[0] == '/' || s[n - 1] == '/' || strstr(s, "//")))
		why = "has an empty level (a '/' at either end or two in a row)";
	else if (!clean_utf8(s, n))
		why = "is not valid UTF-8 or contains a control character";
	else if (strcasecmp(s, "INBOX") == 0)
		why = "cannot be INBOX";
	if (why && ret_why)
		*ret_why = why;
	return !why;
}

char *cpm_address_of(const char *value, char *buf, size_t len)
{
	const char *s = value ? value : "", *e, *lt, *gt;
	size_t n;

	e = strchr(s, '\n');
	if (!e)
		e = s + strlen(s);
	lt = memchr(s, '<', (size_t)(e - s));
	if (lt && (gt = memchr(lt, '>', (size_t)(e - lt)))) {
		s = lt + 1;
		e = gt;
	}
	while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	n = (size_t)(e - s);
	if (len == 0)
		return buf;
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return buf;
}

void cpm_file_target_free(struct cpm_file_target *t)
{
	if (!t)
		return;
	free(t->folder);
	for (size_t i = 0; i < t->n_create; i++)
		free(t->create[i]);
	free(t->create);
	*t = (struct cpm_file_target){ 0 };
}

/* NULL when v can be one level of a folder name, else why not. */
static const char *level_problem(const char *v)
{
	size_t n = strlen(v);

	if (strchr(v, '/'))
		return "contains '/'";
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return "is '.' or '..'";
	if (strpbrk(v, "*%"))
		return "contains '*' or '%' (IMAP LIST wildcards)";
	if (!clean_utf8(v, n))
		return "is not valid UTF-8 or contains a control character";
	return NULL;
}

static char *join(const char *root, const char *a, const char *b)
{
	size_t n = strlen(root) + strlen(a) + (b ? strlen(b) : 0) + 3;
	char *s = malloc(n);

	if (!s)
		return NULL;
	snprintf(s, n, "%s%s%s%s%s", root, *root ? "/" : "", a, b ? "/" : "", b ? b : "");
	return s;
}

/*
 * The peer's URI scheme in lower case ("TEL:+1555" is "tel:+1555": schemes
 * are case-insensitive, RFC 3986 3.1), so that one peer written both ways
 * has one folder.  A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
 * before the first ':'; anything else is left as it is.
 */
static void lower_scheme(char *peer)
{
	size_t i = 0;

	if (!isalpha((unsigned char)peer[0]))
		return;
	while (isalnum((unsigned char)peer[i]) || peer[i] == '+' || peer[i] == '-' ||
	       peer[i] == '.')
		i++;
	if (peer[i] != ':')
		return;
	for (size_t k = 0; k < i; k++)
		peer[k] = (char)tolower((unsigned char)peer[k]);
}

int cpm_file_decide(const char *root, const struct cpm_file_object *o, cpm_folder_exists_fn exists,
		    void *userdata, struct cpm_file_target *ret, char *why_buf, size_t why_len)
{
	char peer[CPMSYNC_FOLDER_NAME_MAX + 1];
	struct cpm_file_target t = { 0 };
	const char *problem, *what;
	char *folder = NULL;

	*ret = (struct cpm_file_target){ 0 };
	root = root ? root : "";
#define WHY(...)                                                                                   \
	do {                                                                                       \
		if (why_len)                                                                       \
			snprintf(why_buf, why_len, __VA_ARGS__);                                   \
		return -EINVAL;                                                                    \
	} while (0)
	if (o->is_state) {
		if (!*o->conversation_id || !*o->contribution_id)
			WHY("content: a session-info or group-state object needs both "
			    "Conversation-ID and Contribution-ID");
	} else if (!*o->conversation_id && !*o->context) {
		WHY("content: not a CPM object: it has neither Conversation-ID nor "
		    "Message-Context");
	}
	if (*o->conversation_id) {
		if ((problem = level_problem(o->conversation_id)))
			WHY("content: the Conversation-ID \"%.200s\" %s", o->conversation_id,
			    problem);
		if (*o->contribution_id && (problem = level_problem(o->contribution_id)))
			WHY("content: the Contribution-ID \"%.200s\" %s", o->contribution_id,
			    problem);
		if (o->is_state) {
			folder = join(root, o->conversation_id, o->contribution_id);
		} else {
			if (*o->contribution_id) {
				folder = join(root, o->conversation_id, o->contribution_id);
				if (folder && !exists(folder, userdata)) {
					free(folder);
					folder = NULL;
				} else if (!folder) {
					return -ENOMEM;
				}
			}
			if (!folder)
				folder = join(root, o->conversation_id, NULL);
		}
	} else {
		bool sent = strcasecmp(o->direction, "sent") == 0;

		what = sent ? "To" : "From";
		cpm_address_of(sent ? o->to : o->from, peer, sizeof(peer));
		if (!*peer)
			WHY("content: a message with Message-Context and no Conversation-ID is "
			    "filed "
			    "by its peer, but %s is empty",
			    what);
		if ((problem = level_problem(peer)))
			WHY("content: the peer address (%s) \"%.200s\" %s", what, peer, problem);
		/* The scheme in lower case, unless the folder exists as written
		 * (made by another client): then into that one. */
		folder = join(root, peer, NULL);
		if (folder && !exists(folder, userdata)) {
			lower_scheme(peer);
			free(folder);
			folder = join(root, peer, NULL);
		}
	}
#undef WHY
	if (!folder)
		return -ENOMEM;
	if (strlen(folder) > CPMSYNC_FOLDER_NAME_MAX) {
		free(folder);
		if (why_len)
			snprintf(why_buf, why_len,
				 "content: its folder name would be longer than %d bytes",
				 CPMSYNC_FOLDER_NAME_MAX);
		return -EINVAL;
	}
	t.folder = folder;
	/* Every missing level, parents first. */
	t.create = calloc(8, sizeof(*t.create));
	if (!t.create)
		goto oom;
	for (char *p = folder;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;

			*p = 0;
			if (!exists(folder, userdata)) {
				if (t.n_create % 8 == 0 && t.n_create) {
					char **n = realloc(t.create,
							   (t.n_create + 8) * sizeof(*t.create));
					if (!n) {
						*p = c;
						goto oom;
					}
					t.create = n;
				}
				t.create[t.n_create] = strdup(folder);
				if (!t.create[t.n_create]) {
					*p = c;
					goto oom;
				}
				t.n_create++;
			}
			*p = c;
			if (!c)
				break;
		}
	}
	*ret = t;
	return 0;
oom:
	cpm_file_target_free(&t);
	return -ENOMEM;
}
