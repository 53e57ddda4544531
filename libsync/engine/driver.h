/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The engine's seam to the server, after isync's driver table: the
 * commands the engine issues are calls on a table of operations with typed
 * replies, and what the server says on its own (untagged data) comes back
 * through the engine_event_*() functions.  driver-imap.c implements the
 * table on imap-client and turns its untagged responses, streamed body
 * literals and connection state into those events (engine.c holds no
 * imap-client callback); tests/unit/test-engine-replay.c implements a
 * scripted one, so the engine's decisions are tested without a server.
 *
 * Through the table today: replay (engine-replay.c: every journal
 * operation, the verification of interrupted ones), SELECT, UNSELECT,
 * LOGOUT, the LISTs of the folder list (LIST-STATUS, the MAILBOXID LIST of
 * OBJECTID servers; the personal namespace they are relative to) and the
 * STATUS of each folder without LIST-STATUS, every UID FETCH of the
 * folder sync (changed flags with CHANGEDSINCE, and VANISHED for the
 * selected folder without SELECT; new messages; bodies, with their literal
 * limit), the EXISTS, EXPUNGE and VANISHED of the selected folder and the
 * SEARCH for expunges of a CONDSTORE resync, the FETCH of cached
 * annotations (engine-annotation.c); the FETCH data of new messages and
 * bodies comes as engine_event_fetch() with the body (struct engine_body)
 * the driver received.  The connection's life is on the table too:
 * connecting (greeting, login, capabilities), whether it is usable, its
 * error text and traffic, and its end (closed, or given back to the
 * session it came from).  Left on imap-client: the session's push paths
 * (session.c: IDLE, NOTIFY).
 *
 * Every operation returns 0 once the command is queued, then calls cb
 * exactly once, later (never from inside the call), or returns -errno
 * (and never calls cb).  Mailbox names are UTF-8 with '/' (the driver
 * encodes them).  reply and its strings are borrowed during cb.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap-client.h"
#include "imap/imap-resp.h"
#include "imap/imap-seqset.h"
#include "util/buf.h"

struct cpmsync_sync;

struct engine_reply {
	int r;		  /* 0; -CPMSYNC_E_SERVER: refused (NO/BAD); other: the connection failed */
	const char *text; /* the server's text, may be NULL */
	enum imap_code code;   /* the reply's response code, IMAP_CODE_NONE if none */
	const char *code_name; /* that code as the server wrote it ("NOPERM"), NULL if none */
	bool bad;	       /* the refusal was a BAD (not a NO) */
	uint32_t new_uid;      /* APPENDUID / COPYUID of exactly one message: its new UID, else 0 */
	const struct rangeset *modified; /* MODIFIED: UIDs not stored; NULL otherwise */
	/* Made here, not the server's answer: the operation was given up
	 * without being sent (too large, its content lost, a name the server
	 * cannot take ...); its failed operation's text says "not sent: "
	 * (CPMSYNC_FAILED_OP_NOT_SENT). */
	bool local;
};

typedef void (*engine_reply_fn)(const struct engine_reply *reply, void *userdata);

enum engine_flags_mode {
	ENGINE_FLAGS_SET,    /* FLAGS.SILENT */
	ENGINE_FLAGS_ADD,    /* +FLAGS.SILENT */
	ENGINE_FLAGS_REMOVE, /* -FLAGS.SILENT */
};

struct engine_select_params {
	bool condstore; /* SELECT ... (CONDSTORE) */
	bool qresync;	/* SELECT ... (QRESYNC (uidvalidity modseq [known_uids])) */
	uint32_t uidvalidity;
	uint64_t modseq;
	const char *known_uids; /* may be NULL */
};

struct engine_driver;

/* Modifiers and limits of a UID FETCH (fetch_ext). */
struct engine_fetch_params {
	uint64_t changedsince; /* (CHANGEDSINCE n): what changed above n; 0: none */
	bool vanished;	       /* and VANISHED: expunges as engine_event_vanished() */
	uint64_t max_literal;  /* a larger body is not read (no body in its FETCH); 0: any */
};

/* What a LIST "" "*" asks besides the names. */
enum engine_list_kind {
	ENGINE_LIST_NAMES,	   /* nothing: LIST "" "*" */
	ENGINE_LIST_STATUS,	   /* RETURN (SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT MESSAGES)) */
	ENGINE_LIST_STATUS_MODSEQ, /* the same with HIGHESTMODSEQ */
	ENGINE_LIST_MAILBOXID,	   /* RETURN (STATUS (UIDVALIDITY MAILBOXID)) */
};

/* One annotation value to store (ANNOTATE, RFC 5257). */
struct engine_annotation {
	const char *entry;
	bool shared;	   /* value.shared, else value.priv */
	const char *value; /* "": NIL (removes it) */
};

struct engine_driver_ops {
	bool (*has)(struct engine_driver *d, enum imap_cap cap);
	bool (*enabled)(struct engine_driver *d, enum imap_cap cap);
	/* Untagged data of the SELECT: engine_event_code() and _fetch(). */
	int (*select)(struct engine_driver *d, const char *mailbox,
		      const struct engine_select_params *p, engine_reply_fn cb, void *userdata);
	/* Leaves the selected folder without expunging (UNSELECT, or EXAMINE
	 * INBOX without it); no reply. */
	int (*unselect)(struct engine_driver *d);
	/* flags: a space-separated list (may be ""); internaldate: Unix time. */
	int (*append)(struct engine_driver *d, const char *mailbox, const char *flags,
		      int64_t internaldate, const void *data, size_t len, engine_reply_fn cb,
		      void *userdata);
	/* UID COPY, or UID MOVE with move (an untagged COPYUID comes as
	 * engine_event_code()). */
	int (*copy)(struct engine_driver *d, bool move, uint32_t uid, const char *mailbox,
		    engine_reply_fn cb, void *userdata);
	/* UID STORE uids [(UNCHANGEDSINCE n)] mode (flags); unchangedsince 0:
	 * none; cb may be NULL (no one waits for that reply). */
	int (*store)(struct engine_driver *d, const char *uids, enum engine_flags_mode mode,
		     const char *flags, uint64_t unchangedsince, engine_reply_fn cb,
		     void *userdata);
	/* UID EXPUNGE uids; uids NULL: EXPUNGE, every \Deleted message of
	 * the selected folder (for a server without UIDPLUS). */
	int (*expunge)(struct engine_driver *d, const char *uids, engine_reply_fn cb,
		       void *userdata);
	/* UID SEARCH UID from:* [HEADER Message-ID message_id]; the UIDs come
	 * as engine_event_search(). */
	int (*search)(struct engine_driver *d, uint32_t from_uid, const char *message_id,
		      engine_reply_fn cb, void *userdata);
	/* UID SEARCH [RETURN (ALL)] UID 1:last (ESEARCH when offered): every
	 * UID up to last; they come as engine_event_search(). */
	int (*search_upto)(struct engine_driver *d, uint32_t last, engine_reply_fn cb,
			   void *userdata);
	/* UID SEARCH DELETED; the UIDs come as engine_event_search(). */
	int (*search_deleted)(struct engine_driver *d, engine_reply_fn cb, void *userdata);
	/* UID FETCH uids (items); the data comes as engine_event_fetch(). */
	int (*fetch)(struct engine_driver *d, const char *uids, const char *items,
		     engine_reply_fn cb, void *userdata);
	/* The same with modifiers or a literal limit. */
	int (*fetch_ext)(struct engine_driver *d, const char *uids, const char *items,
			 const struct engine_fetch_params *p, engine_reply_fn cb, void *userdata);
	int (*create)(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		      void *userdata);
	int (*rename)(struct engine_driver *d, const char *from, const char *to, engine_reply_fn cb,
		      void *userdata);
	int (*delete)(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		      void *userdata);
	/* mailbox "": a server entry; value "": remove the entry (NIL). */
	int (*set_metadata)(struct engine_driver *d, const char *mailbox, const char *entry,
			    const char *value, engine_reply_fn cb, void *userdata);
	/* rights "": DELETEACL. */
	int (*set_acl)(struct engine_driver *d, const char *mailbox, const char *identifier,
		       const char *rights, engine_reply_fn cb, void *userdata);
	/* UID STORE uid ANNOTATION (entry (value.priv v value.shared v) ...):
	 * a[0..n), the values of one entry next to each other. */
	int (*store_annotations)(struct engine_driver *d, uint32_t uid,
				 const struct engine_annotation *a, size_t n, engine_reply_fn cb,
				 void *userdata);
	/* UID FETCH uids (ANNOTATION ((entries) (value.priv value.shared))):
	 * entries NULL-terminated, at least one; the values come as
	 * engine_event_fetch() with annotations.  cb may be NULL. */
	int (*fetch_annotations)(struct engine_driver *d, const char *uids,
				 const char *const *entries, engine_reply_fn cb, void *userdata);
	/* The personal namespace: base gets its prefix as a local name (""
	 * none), *shown the prefix as the server wrote it (also on failure);
	 * -errno when the prefix cannot be read. */
	int (*personal_namespace)(struct engine_driver *d, struct buf *base, const char **shown);
	/* The hierarchy delimiter names are sent with (0: flat, or not
	 * known); may be NULL. */
	char (*delimiter)(struct engine_driver *d);
	/* Whether a local name lies in a namespace the session hides
	 * (imap_ns_hidden_root(); name NULL: whether it hides any): LIST
	 * says nothing of it, and sending it would name a personal folder.
	 * May be NULL (none hidden). */
	bool (*hidden_root)(struct engine_driver *d, const char *name);
	/* Whether a local name lies in another user's namespace or a shared
	 * one, shown or hidden (imap_ns_foreign_root()): not the account's
	 * own, never made by it.  May be NULL (none). */
	bool (*foreign_root)(struct engine_driver *d, const char *name);
	/* LIST "" "*" [RETURN (...)]: each folder comes as engine_event_list()
	 * (not one in another namespace), each LIST-STATUS as
	 * engine_event_status(). */
	int (*list)(struct engine_driver *d, enum engine_list_kind kind, engine_reply_fn cb,
		    void *userdata);
	/* STATUS mailbox (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ); the
	 * data comes as engine_event_status(). */
	int (*status)(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		      void *userdata);
	/* LOGOUT; ends with engine_event_closed(). */
	void (*logout)(struct engine_driver *d);

	/* --- the connection's life --- */
	/* Connects (fd >= 0: over that connected socket, taken over), reads
	 * the greeting, logs in and learns the capabilities; ends with
	 * engine_event_ready() or engine_event_closed().  -errno: it could
	 * not start, error() may say why, and no event follows. */
	int (*connect)(struct engine_driver *d, int fd);
	/* Logged in and usable now. */
	bool (*ready)(struct engine_driver *d);
	/* Why the connection failed, "" when it has nothing to say. */
	const char *(*error)(struct engine_driver *d);
	/* The connection's mark that the server was checked against the
	 * store (engine-ident.c), false on a new connection; NULL (or a
	 * NULL op): no connection to mark, it is checked at every run. */
	bool *(*checked)(struct engine_driver *d);
	/* The connection's set of the folders (store ids) whose messages
	 * were checked against the store (engine-ident.c), empty on a new
	 * connection; NULL (or a NULL op): each is checked at every run. */
	struct rangeset *(*checked_folders)(struct engine_driver *d);
	/* Bytes received and sent on the connection so far (0 without one). */
	void (*traffic)(struct engine_driver *d, uint64_t *ret_in, uint64_t *ret_out);
	/* The run is over: with give_back the connection goes back to whom it
	 * came from (engine_driver_imap_adopt()), its events stopped;
	 * otherwise it is closed (what is queued completes, and its replies
	 * find the run ended).  No call on the connection follows. */
	void (*release)(struct engine_driver *d, bool give_back);
};

struct engine_driver {
	const struct engine_driver_ops *ops;
	struct cpmsync_sync *engine; /* set by the engine: where events go */
};

/* Body bytes kept in memory before spilling to a temporary file. */
#define ENGINE_BODY_MEM_MAX (1u << 20)

/* A streamed literal (BODY[] or BODY[HEADER]) being received. */
struct body_sink {
	bool active, complete;
	uint64_t size;	/* announced */
	struct buf mem; /* the first ENGINE_BODY_MEM_MAX bytes */
	int fd;		/* the whole literal, once it is larger (-1: none) */
	uint64_t written;
	int error;
	const char *tmp_dir;   /* the directory of fd (TMPDIR, else /tmp) */
	const char *error_dir; /* error came from the temporary file in tmp_dir */
};

/* The real driver, on its connection (client). */
struct engine_driver_imap {
	struct engine_driver base;
	struct imap_client *client; /* NULL: none (yet, or any more) */
	/* engine_driver_imap_adopt(): where a connection given back goes. */
	struct imap_client **owner;
	char delimiter;		    /* of the first LIST response that had one */
	struct body_sink sink;	    /* the body of the FETCH response being read */
	struct imap_resp_code code; /* scratch */
	/*
	 * RFC 7162 3.2.11: a SELECT while a mailbox is selected closes it,
	 * and a QRESYNC server marks where with an untagged OK [CLOSED]:
	 * what comes before it is of the mailbox closed, what comes after
	 * of the one selected.  mailbox_open: one may be selected now (a
	 * SELECT or EXAMINE sent and not refused, no UNSELECT since; true on
	 * an adopted connection, where the session may have one).
	 * before_closed: a SELECT was sent with QRESYNC enabled and one
	 * open, and neither its [CLOSED] nor its [UIDVALIDITY] (a server
	 * that sends no [CLOSED]) nor its answer came yet: its FETCH and
	 * VANISHED are the closed folder's, not given to the engine (see
	 * untagged_cb()).
	 */
	bool mailbox_open, before_closed;
};
void engine_driver_imap_init(struct engine_driver_imap *d);
/* Closes the connection if it still has one. */
void engine_driver_imap_fini(struct engine_driver_imap *d);
/* A new connection for account (not connected yet: ops->connect());
 * -errno: none. */
int engine_driver_imap_new(struct engine_driver_imap *d, struct cpmsync_loop *loop,
			   const struct cpmsync_account *account);
/* Takes over the authenticated connection *owner (set to NULL), which
 * ops->release() with give_back sets back; owner must stay valid until
 * then. */
void engine_driver_imap_adopt(struct engine_driver_imap *d, struct imap_client **owner);

/* --- events: what a driver reports to the engine --- */

enum {
	ENGINE_FETCH_FLAGS = 1u << 0,
	ENGINE_FETCH_MODSEQ = 1u << 1,
	ENGINE_FETCH_SIZE = 1u << 2,
	ENGINE_FETCH_DATE = 1u << 3,
	ENGINE_FETCH_BODYSTRUCTURE = 1u << 4,
	ENGINE_FETCH_OBJECTIDS = 1u << 5,  /* EMAILID, maybe THREADID (RFC 8474) */
	ENGINE_FETCH_ANNOTATION = 1u << 6, /* ANNOTATION with values (RFC 5257) */
};

/* One entry of a FETCH ANNOTATION response. */
struct engine_fetch_annotation {
	const char *entry; /* entry_len bytes */
	size_t entry_len;
	bool has_priv, has_shared; /* whether each attribute was there */
	const char *priv, *shared; /* its value, NULL: NIL (the server has none) */
	size_t priv_len, shared_len;
};

/* A BODY[] or BODY[HEADER] literal received whole. */
struct engine_body {
	bool full;	  /* the FETCH has BODY[] (else the header only) */
	uint64_t size;	  /* the size the server announced */
	const void *head; /* its first head_len bytes, at most ENGINE_BODY_MEM_MAX */
	size_t head_len;
	int fd;	      /* when larger: all of it in this file (-1: head is all) */
	uint64_t len; /* bytes received */
	int error;    /* keeping it failed (-errno): not to be stored */
	/* Not NULL: error came from a temporary file in this directory
	 * (TMPDIR), for the error text. */
	const char *error_dir;
};

/* One FETCH response with a UID. */
struct engine_fetch {
	uint32_t uid;
	unsigned present;  /* ENGINE_FETCH_* */
	const char *flags; /* space-separated, valid flags only */
	int flags_error;   /* FLAGS the driver could not read (-errno; not in present) */
	uint64_t modseq;
	uint64_t size;
	int64_t internaldate;
	const char *bodystructure;	/* as the server wrote it; NULL: too large */
	const char *emailid, *threadid; /* threadid NULL: none */
	const struct engine_body *body; /* NULL: none */
	const struct engine_fetch_annotation *annotations;
	size_t n_annotations;
};

void engine_event_fetch(struct cpmsync_sync *e, const struct engine_fetch *f);
/* The FETCH response of UID uid is over the line limit (a BODYSTRUCTURE
 * of thousands of MIME parts): true when the engine does without it (the
 * driver skips it whole and goes on; the engine asks again without
 * BODYSTRUCTURE), false when the connection is to fail as before. */
bool engine_event_fetch_too_long(struct cpmsync_sync *e, uint32_t uid);
/* UIDs lo..hi of a SEARCH (or ESEARCH ALL) answer. */
void engine_event_search(struct cpmsync_sync *e, uint32_t lo, uint32_t hi);
/* An untagged OK with UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ (value), NOMODSEQ,
 * or COPYUID (value: the one new UID; 0 when several). */
void engine_event_code(struct cpmsync_sync *e, enum imap_code code, uint64_t value);
/* VANISHED [(EARLIER)] uids (QRESYNC). */
void engine_event_vanished(struct cpmsync_sync *e, bool earlier, const struct rangeset *uids);
/* A command on the selected folder (UID FETCH, STORE, SEARCH, COPY, MOVE,
 * EXPUNGE) was answered (r as engine_reply.r, text the server's), before
 * its reply goes to its callback: VANISHED held (engine.c) are applied on
 * an OK, dropped on a refusal. */
void engine_event_selected_answered(struct cpmsync_sync *e, int r, const char *text);
/* EXISTS n; one EXPUNGE. */
void engine_event_exists(struct cpmsync_sync *e, uint32_t n);
void engine_event_expunge(struct cpmsync_sync *e);
/* The MAILBOXID response code of a SELECT (RFC 8474), len bytes of id. */
void engine_event_mailboxid(struct cpmsync_sync *e, const char *id, size_t len);
/* The PERMANENTFLAGS response code of a SELECT: flags, a set
 * (util/flags.h), and whether "\*" was in the list. */
void engine_event_permanent_flags(struct cpmsync_sync *e, const char *flags, bool new_keywords);
/* One folder of a LIST answer. */
struct engine_list {
	const char *name; /* the local name (UTF-8, '/'); NULL: it cannot be made */
	int name_error;	  /* then why: -EEXIST another folder's, -EILSEQ a control or
			   * bidirectional formatting character, other: unreadable */
	const char *raw;  /* the name as the server wrote it, raw_len bytes */
	size_t raw_len;
	unsigned attrs; /* IMAP_MBOX_* */
};
void engine_event_list(struct cpmsync_sync *e, const struct engine_list *l);

/* One STATUS response (or LIST-STATUS) of a folder the engine can name. */
struct engine_status {
	const char *name; /* local */
	unsigned present; /* IMAP_STATUS_ITEM_* */
	uint32_t uidvalidity, uidnext, messages;
	uint64_t highestmodseq;
	const char *mailboxid; /* mailboxid_len bytes */
	size_t mailboxid_len;
};
void engine_event_status(struct cpmsync_sync *e, const struct engine_status *st);

/* The server said what the driver cannot read (a malformed response): the
 * run fails with reason. */
void engine_event_error(struct cpmsync_sync *e, int r, const char *reason);
/* The connection is ready (logged in): the run starts. */
void engine_event_ready(struct cpmsync_sync *e);
/* The connection closed: after LOGOUT the run ends well, else it fails. */
void engine_event_closed(struct cpmsync_sync *e, int r, const char *reason);

/* What the engine takes now, so that a driver skips reading what would be
 * dropped (a LIST while the engine lists MAILBOXIDs, a VANISHED of another
 * folder, a body literal nobody asked for): ENGINE_TAKES_*. */
enum {
	ENGINE_TAKES_EVENTS = 1u << 0,	 /* any: none once the run ended */
	ENGINE_TAKES_LIST = 1u << 1,	 /* engine_event_list() */
	ENGINE_TAKES_VANISHED = 1u << 2, /* engine_event_vanished() */
	ENGINE_TAKES_BODY = 1u << 3,	 /* engine_fetch.body */
};
unsigned engine_event_takes(const struct cpmsync_sync *e);
/* Every untagged response, before the rest: to engine_set_observer()'s
 * function (engine-session.h), if any. */
struct imap_response;
void engine_event_observe(struct cpmsync_sync *e, const struct imap_response *resp);
