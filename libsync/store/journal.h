/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The journal's operations, typed.  On disk journal.op stays TEXT with the
 * names below (store-schema.c documents each row's shape), so stores
 * written by earlier versions replay unchanged; in code an operation is an
 * enum journal_op, converted only here.
 *
 * Each operation's args column has one encoder and one decoder
 * (journal_args_encode() / journal_args_decode()), so that the string
 * formats live in this file only.  Decoding a row written by someone else
 * (an older version, a hand-edited store) never crashes: a malformed or
 * missing argument string gives -EBADMSG and a sentence saying what was
 * expected.
 *
 * Nothing here touches the database except journal_bind_ops(), which
 * binds the names into SQL that mentions operations (":op_<name>"
 * parameters) instead of spelling them as literals.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum journal_op {
	JOURNAL_OP_APPEND,	  /* folder_id, message_id (uid NULL, body stored) */
	JOURNAL_OP_FLAGS,	  /* folder_id, message_id */
	JOURNAL_OP_COPY,	  /* folder_id = destination, message_id = new row; args */
	JOURNAL_OP_MOVE,	  /* as copy */
	JOURNAL_OP_EXPUNGE,	  /* folder_id, message_id */
	JOURNAL_OP_CREATE_FOLDER, /* folder_id */
	JOURNAL_OP_RENAME_FOLDER, /* folder_id; args */
	JOURNAL_OP_DELETE_FOLDER, /* folder_id */
	JOURNAL_OP_SET_METADATA,  /* folder_id (0: server entry); args */
	JOURNAL_OP_SET_ACL,	  /* folder_id; args */
	JOURNAL_OP_ANNOTATION,	  /* set_annotation: folder_id, message_id; args once refused */
	_JOURNAL_OP_MAX,
};

/* The name stored in journal.op; NULL for a value out of range. */
const char *journal_op_to_string(enum journal_op op);
/* -EBADMSG (and *ret untouched) for a name no version ever wrote. */
int journal_op_from_string(const char *name, enum journal_op *ret);

/*
 * The contract's name of a row of op with args column args (NULL when
 * none), for failed operations: "store" for append, "delete-acl" for a
 * set_acl without rights, '-' for '_'; NULL for op out of range.
 */
const char *journal_op_contract_name(enum journal_op op, const char *args);

/*
 * An operation's arguments.  After journal_args_decode() the strings point
 * into buf_, owned by the struct (free with journal_args_free()); for
 * journal_args_encode() they are the caller's.
 */
struct journal_args {
	enum journal_op op;
	union {
		struct {
			int64_t src_id; /* the source message row */
		} copy;			/* JOURNAL_OP_COPY, JOURNAL_OP_MOVE */
		struct {
			/* the name given; replay renames to the current name
			 * unless another rename of the folder follows */
			const char *new_name;
		} rename; /* JOURNAL_OP_RENAME_FOLDER */
		struct {
			const char *entry;
			const char *value; /* "": remove the entry */
		} metadata;		   /* JOURNAL_OP_SET_METADATA */
		struct {
			const char *identifier;
			const char *rights; /* "": DELETEACL */
		} acl;			    /* JOURNAL_OP_SET_ACL */
	};
	char *buf_; /* what decode allocated */
};

/*
 * *ret: the args column for a (malloc'ed), or NULL for an operation that
 * has none.  -EINVAL for an argument the format cannot carry (a metadata
 * entry or ACL identifier with a newline, a missing string), -ENOMEM.
 */
int journal_args_encode(const struct journal_args *a, char **ret);

/*
 * Parses the args column s (NULL when the column is NULL) of a row of
 * operation op into *ret.  -EBADMSG when s does not have op's format; then
 * *ret_why (when not NULL) says what was expected (a static string) and
 * *ret is zeroed.  -ENOMEM.  Operations without arguments accept anything
 * (their args were never read).
 */
int journal_args_decode(enum journal_op op, const char *s, struct journal_args *ret,
			const char **ret_why);
void journal_args_free(struct journal_args *a);

/*
 * What an attempt row records before a non-idempotent command (APPEND,
 * COPY, MOVE) is sent: the destination's UIDNEXT then.  Encoded into buf
 * (size at least JOURNAL_ATTEMPT_MAX); decoding -EBADMSG for anything else.
 */
#define JOURNAL_ATTEMPT_MAX 32
void journal_attempt_encode(uint32_t uidnext, char *buf, size_t size);
int journal_attempt_decode(const char *s, uint32_t *ret_uidnext);

/*
 * What an attempt row of a create_folder records before its CREATE is
 * sent: the name sent, since the folder may be renamed or deleted locally
 * while the command is in flight ("name=<name>").  Encoding: *ret
 * malloc'ed, -ENOMEM.  Decoding: *ret_name points into s; -EBADMSG for
 * anything else (NULL, another format, an empty name).
 */
int journal_create_attempt_encode(const char *name, char **ret);
int journal_create_attempt_decode(const char *s, const char **ret_name);

/*
 * What an attempt row of a flags row records before its STORE is sent:
 * the flag sets its STOREs set since it was last answered, newest last
 * ("flags=<set>" and "\n<set>" for each earlier one, "" for no flags, at
 * most JOURNAL_FLAGS_MARKS).  A STORE that reaches the server while its
 * answer is lost (the run killed) leaves its set there; the next sync
 * tells it from another client's change by this mark (store-sync.c), and
 * a later local change back to the recorded server flags is still sent
 * (engine-replay.c).  A set is a sorted, space-separated list of flags,
 * without a newline.
 *
 * journal_flags_attempt_add(): mark (NULL: none, or one of another format)
 * with set added (kept when it is the newest already); *ret malloc'ed,
 * -ENOMEM.  journal_flags_attempt_has(): set is one of mark's.
 * journal_flags_attempt_only(): every set of mark is set (true for no
 * mark): no STORE left other flags on the server.
 */
#define JOURNAL_FLAGS_MARKS 4
int journal_flags_attempt_add(const char *mark, const char *set, char **ret);
bool journal_flags_attempt_has(const char *mark, const char *set);
bool journal_flags_attempt_only(const char *mark, const char *set);
/*
 * What the server may hold after the STOREs of mark, from base (the
 * server flags recorded): *ret_all the flags base and every set of mark
 * have (there for sure), *ret_any those any of them has (maybe there).
 * A STORE split into +FLAGS and -FLAGS parts may have reached the server
 * in part: a delta from all to a set, and from any less it, gets there
 * from any of them (engine-replay.c).  Both malloc'ed; -ENOMEM, -EINVAL.
 */
int journal_flags_attempt_bounds(const char *mark, const char *base, char **ret_all,
				 char **ret_any);

#ifdef SQLITE_VERSION_NUMBER
/*
 * Binds every parameter named ":op_<name>" of st to the operation's name
 * (":op_rename_folder" -> 'rename_folder').  -EINVAL for a name that is no
 * operation (a typo in SQL shows on the first run of the statement, with
 * the name in store_error()).  Call after binding the numbered parameters;
 * in the SQL, named parameters must come after every ?NNN (SQLite numbers
 * a named one after the largest index seen so far, so a later ?NNN could
 * share its index): -EINVAL otherwise.  Where the operation has to come
 * first (UPDATE ... SET op = ... WHERE ...), use journal_bind_op().
 */
struct store;
int journal_bind_ops(struct store *s, sqlite3_stmt *st);
/* Binds op's name to the numbered parameter index. */
void journal_bind_op(sqlite3_stmt *st, int index, enum journal_op op);
#endif
