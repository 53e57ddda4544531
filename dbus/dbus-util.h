/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Small helpers of the D-Bus service with no connection and no session:
 * a growable string, the contract's error replies (the one place that
 * maps -errno / -CPMSYNC_E_* to D-Bus error names), argument checks,
 * object path escaping and message summary dicts.  Pure enough for unit
 * tests.
 *
 * Allocation failure aborts (cpm_oom()): libdbus reports OOM as FALSE
 * and the service treats that as fatal (style C5).
 */

#include <dbus/dbus.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/limits.h>
#include <cpmsync/store.h>

#define CPM_DBUS_ATTR_FORMAT(a, b) __attribute__((format(printf, a, b)))

#define CPM_ERROR_INVALID_ARGS	"org.freedesktop.DBus.Error.InvalidArgs"
#define CPM_ERROR_NOT_FOUND	"org.cpmsync.Error.NotFound"
#define CPM_ERROR_OFFLINE	"org.cpmsync.Error.Offline"
#define CPM_ERROR_NOT_SUPPORTED "org.cpmsync.Error.NotSupported"
#define CPM_ERROR_SERVER	"org.cpmsync.Error.Server"
#define CPM_ERROR_FAILED	"org.cpmsync.Error.Failed"

/* Limits on arguments (documented in the interface documents). */
#define CPM_MAX_IDS	       10000u		       /* entries of an ids array */
#define CPM_MAX_FLAGS	       256u		       /* entries of a flags array */
#define CPM_MAX_FLAG_LEN       256u		       /* bytes of one flag */
#define CPM_MAX_NAME_LEN       CPMSYNC_FOLDER_NAME_MAX /* folder names, metadata entries */
#define CPM_MAX_LIST_LIMIT     10000u		       /* ListMessages limit */
#define CPM_DEFAULT_LIST_LIMIT 1000u		       /* ListConversationsPage limit 0 */
#define CPM_MAX_METADATA       256u		       /* entries per Get/SetMetadata */
#define CPM_MAX_METADATA_VALUE CPMSYNC_METADATA_VALUE_MAX
#define CPM_MAX_PREVIEW_DIM    4096u
#define CPM_MAX_SIGNAL_ENTRIES 500u /* dicts / ids per Messages* signal */
/* Largest array D-Bus carries (DBUS_MAXIMUM_ARRAY_LENGTH). */
#define CPM_MAX_DBUS_ARRAY (64u * 1024u * 1024u)

_Noreturn void cpm_oom(void);
void *cpm_malloc(size_t n);
void *cpm_calloc(size_t n, size_t size);
void *cpm_realloc(void *p, size_t n);
char *cpm_strdup(const char *s);
char *cpm_strndup(const char *s, size_t n);
char *cpm_asprintf(const char *fmt, ...) CPM_DBUS_ATTR_FORMAT(1, 2);

/* A growable NUL-terminated string. */
struct cpm_str {
	char *s;
	size_t len, alloc;
};

void cpm_str_add(struct cpm_str *b, const char *s);
void cpm_str_addn(struct cpm_str *b, const char *s, size_t n);
void cpm_str_printf(struct cpm_str *b, const char *fmt, ...) CPM_DBUS_ATTR_FORMAT(2, 3);
/* Appends s with &, <, >, " escaped. */
void cpm_str_add_xml(struct cpm_str *b, const char *s);
/* Returns the string (to free) and resets b. */
char *cpm_str_steal(struct cpm_str *b);
void cpm_str_free(struct cpm_str *b);

/*
 * s when it is valid UTF-8 for D-Bus, else a malloc()ed copy with each
 * invalid byte replaced by U+FFFD, stored in *tmp (free it; NULL when s
 * was returned).
 */
const char *cpm_utf8(const char *s, char **tmp);

/* An empty method return to msg (OOM aborts). */
DBusMessage *cpm_reply(DBusMessage *msg);

/*
 * A list method's limit: NULL when at most CPM_MAX_LIST_LIMIT, else an
 * InvalidArgs reply to msg naming the bound.  0 stays 0: the contract's
 * "at most limit" (ListMessages, ListConversationMessages) is then none.
 */
DBusMessage *cpm_list_limit(DBusMessage *msg, dbus_uint32_t limit);
/* The same for ListConversationsPage (ours), where 0 means the default
 * page: *limit 0 becomes CPM_DEFAULT_LIST_LIMIT. */
DBusMessage *cpm_list_limit_or_default(DBusMessage *msg, dbus_uint32_t *limit);
/*
 * A method return to msg whose one argument, an array of a{sv}, is left
 * open in *array for the caller to fill; cpm_array_reply_close() closes it
 * (OOM aborts).
 */
DBusMessage *cpm_array_reply(DBusMessage *msg, DBusMessageIter *it, DBusMessageIter *array);
void cpm_array_reply_close(DBusMessageIter *it, DBusMessageIter *array);

/* Error replies.  Each returns a new error reply to msg (OOM aborts). */
DBusMessage *cpm_error(DBusMessage *msg, const char *name, const char *fmt, ...)
	CPM_DBUS_ATTR_FORMAT(3, 4);
DBusMessage *cpm_error_invalid_args(DBusMessage *msg, const char *fmt, ...)
	CPM_DBUS_ATTR_FORMAT(2, 3);
/* The contract's error name for r (-errno or -CPMSYNC_E_*). */
const char *cpm_error_name(int r);
/* An error reply for r, with detail as its text (or cpmsync_strerror(r)
 * when detail is NULL or ""). */
DBusMessage *cpm_error_from_code(DBusMessage *msg, int r, const char *detail);

/*
 * Argument checks.  Each returns NULL when the value is acceptable, or a
 * malloc()ed sentence naming the argument (arg) and the rule.
 */
char *cpm_check_name(const char *arg, const char *s, bool allow_empty);
/* A flag or keyword (atom characters); a '\' flag must be a system flag. */
char *cpm_check_flag(const char *arg, const char *flag);
/* Flags to set (Store's flags, SetFlags' add): \Recent is the server's. */
char *cpm_check_no_recent(const char *arg, const char *const *flags);
char *cpm_check_section(const char *arg, const char *section);
/* A body part, as Preview takes it: "" (the message's body) or "1", "1.2". */
char *cpm_check_part(const char *arg, const char *section);
char *cpm_check_rights(const char *arg, const char *rights);
char *cpm_check_metadata_entry(const char *arg, const char *entry);
/* An ACL identifier: cpm_check_name() and at most CPMSYNC_ACL_IDENTIFIER_MAX bytes. */
char *cpm_check_acl_identifier(const char *arg, const char *identifier);
char *cpm_check_account_name(const char *arg, const char *name);

/*
 * Reads an "as" argument at iter (which must be at an array of strings)
 * into a malloc()ed NULL-terminated vector of borrowed strings (valid as
 * long as the message), at most max entries, each checked as a flag when
 * flags is true or as a name otherwise.  Returns NULL (and *ret_strv) or
 * an error sentence.
 */
char *cpm_read_strv(DBusMessageIter *iter, const char *arg, unsigned max, bool flags,
		    const char ***ret_strv);
/* Reads an "at" argument: borrowed pointer into the message, at most max. */
char *cpm_read_ids(DBusMessageIter *iter, const char *arg, unsigned max, const uint64_t **ret_ids,
		   int *ret_n);

/*
 * Object path element for an account name: [A-Za-z0-9] kept, every other
 * byte ('_' included) as _XX (lower-case hex); "" gives "_".  One-to-one:
 * two names never share an element.  Returns a malloc()ed string.
 */
char *cpm_path_escape(const char *name);
/* The inverse; NULL when elem is not an element cpm_path_escape() makes. */
char *cpm_path_unescape(const char *elem);

/* Appends one summary dict (a{sv}) to an open aa{sv} container. */
void cpm_append_summary(DBusMessageIter *array, const struct cpmsync_message_info *m);
/* The same with Folder (o, folder_path; none when NULL): for listings of
 * several folders' messages (ListConversationMessages, LastMessage). */
void cpm_append_summary_in(DBusMessageIter *array, const struct cpmsync_message_info *m,
			   const char *folder_path);
/* The MessagesChanged dict: Id and the summary keys of the fields that
 * changed (enum cpmsync_change_field bits; none for annotations alone). */
void cpm_append_change(DBusMessageIter *array, const struct cpmsync_message_info *m,
		       uint32_t fields);

/* Dict helpers: one {sv} entry into an open a{sv} container. */
void cpm_dict_append(DBusMessageIter *dict, const char *key, int type, const void *value);
/* "as" from a separator-delimited string (empty pieces skipped). */
void cpm_dict_append_split(DBusMessageIter *dict, const char *key, const char *s, char sep);
/* Appends "as" from a separator-delimited string (empty pieces skipped). */
void cpm_append_split(DBusMessageIter *iter, const char *s, char sep);
/* Appends a string, replacing invalid UTF-8. */
void cpm_append_string(DBusMessageIter *iter, const char *s);
