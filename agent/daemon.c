/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon: wiring only.  Sessions (libcpmsync) do the syncing, the
 * service (dbus/) the bus, outbox.c the drop folder, config-watch.c the
 * reloads.  This file keeps the account list in step with the
 * configuration and routes events between them.
 *
 * Start-up order matters: store, sessions, D-Bus objects, outbox, and the
 * bus name last, so that a client activated by the name finds everything.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <cpmsync/conversation.h>
#include <cpmsync/cpmsync.h>
#include <cpmsync/ops.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "config-watch.h"
#include "config-write.h"
#include "daemon.h"
#include "log.h"
#include "netwatch.h"
#include "outbox.h"
#include "removed.h"
#include "service.h"
#include "util.h"

struct daemon;

struct daemon_account {
	struct daemon *d;
	const struct config_account *conf; /* in d->cfg */
	struct cpmsync_session *session;
	char *password_error;
	/*
	 * password_command runs on the loop (password_job_start()): while it
	 * runs, password_cb answers -EINPROGRESS and the connection waits;
	 * its result is kept for the next password_cb, once.
	 */
	struct password_job *pw_job;
	bool pw_ready;
	int pw_r;
	char *pw;	      /* pw_r == 0 */
	bool cpm_root_stored; /* the store has conf's cpm_root (store_cpm_root()) */
};

struct daemon {
	struct cpmsync_loop *loop;
	struct cpmsync_store *store;
	struct config *cfg;
	char *config_path;
	/* The store's path: the configuration's at the start (a database
	 * changed in the file needs a restart). */
	char *database;
	struct daemon_account **accounts;
	size_t n_accounts;
	struct cpm_service *svc;
	struct outbox *outbox;
	struct config_watch *watch;
	struct netwatch *netwatch;
	struct cpmsync_loop_source *signal_src;
	struct cpmsync_loop_source *store_check_src;
	/* The store's PRAGMA data_version when store_check_cb() last read it
	 * (other_writers_check()); has_data_version: read once. */
	uint64_t data_version;
	bool has_data_version;
	int signal_fd;
	/* Manager1.RemoveAccount in progress: its data goes next. */
	const char *dropping;
	/* One whose saved changes are being synced to disk: its data goes
	 * once they are (removal_done()). */
	struct removal *removing;
};

struct removal {
	char *name;
	char *dir;
	struct removed_saved saved;
	pthread_t thread;
	int efd;
	struct cpmsync_loop_source *src;
	/* removed_sync()'s, read after the eventfd said it is done */
	int r;
	char *error;
	/* the configuration named the account again meanwhile: reloaded after */
	bool readd;
};

static int make_dirs(const char *dir)
{
	_cleanup_free_ char *p = strdup(dir);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Accounts */

static void password_forget(struct daemon_account *da)
{
	da->pw_job = password_job_cancel(da->pw_job);
	if (da->pw) {
		explicit_bzero(da->pw, strlen(da->pw));
		free(da->pw);
		da->pw = NULL;
	}
	da->pw_ready = false;
}

static void password_failed(struct daemon_account *da, int r, char *err)
{
	free(da->password_error);
	da->password_error = err;
	log_error("%s: %s", da->conf->name, err ? err : strerror(-r));
}

static void password_job_done(int r, char *password, char *error, void *userdata)
{
	struct daemon_account *da = userdata;

	da->pw_job = NULL;
	da->pw_ready = true;
	da->pw_r = r;
	da->pw = password;
	if (r < 0)
		password_failed(da, r, error);
	else
		free(error);
	log_debug("%s: password_command finished", da->conf->name);
	/* The connection waiting for it asks password_cb again. */
	cpmsync_session_password_ready(da->session);
}

/* Why the account has no password, for the library's error (LastError):
 * a copy of password_error, or NULL. */
static char *password_reason(const struct daemon_account *da)
{
	return da->password_error ? strdup(da->password_error) : NULL;
}

static int password_cb(const struct cpmsync_account *account, char **ret_password,
		       char **ret_reason, void *userdata)
{
	struct daemon_account *da = userdata;
	char *err = NULL;
	int r;

	(void)account;
	if (!da->conf->password_command) {
		r = config_account_password(da->conf, ret_password, &err);
		if (r < 0) {
			password_failed(da, r, err);
			*ret_reason = password_reason(da);
			return r;
		}
		free(da->password_error);
		da->password_error = NULL;
		return 0;
	}
	/* The command's result, once. */
	if (da->pw_ready) {
		r = da->pw_r;
		*ret_password = TAKE_PTR(da->pw);
		da->pw_ready = false;
		if (r == 0) {
			free(da->password_error);
			da->password_error = NULL;
		} else {
			*ret_reason = password_reason(da);
		}
		return r;
	}
	if (da->pw_job)
		return -EINPROGRESS;
	/* Never on the loop's time: the connection waits, the rest goes on. */
	r = password_job_start(da->d->loop, da->conf->password_command, 0, password_job_done, da,
			       &da->pw_job, &err);
	if (r < 0) {
		password_failed(da, r, err);
		*ret_reason = password_reason(da);
		return r;
	}
	log_debug("%s: running password_command", da->conf->name);
	return -EINPROGRESS;
}

static void settings_of(struct daemon_account *da, struct cpmsync_account *ret)
{
	config_account_to_settings(da->conf, ret);
	/* The reason goes to LastError too, not only to the log. */
	ret->password_cb = NULL;
	ret->password_reason_cb = password_cb;
	ret->password_userdata = da;
}

static void session_changed(struct cpmsync_session *s, void *userdata)
{
	struct daemon_account *da = userdata;

	if (da->d->svc)
		cpm_service_account_changed(da->d->svc, s);
}

static void session_progress(struct cpmsync_session *s, const char *folder, uint32_t done,
			     uint32_t total, void *userdata)
{
	struct daemon_account *da = userdata;

	if (da->d->svc)
		cpm_service_sync_progress(da->d->svc, s, folder, done, total);
}

/*
 * The store keeps the account's CPM root for its conversations; it takes
 * it once it knows the account (after a first sync or local change), so
 * this is tried at start, on reloads and after each sync until it took.
 * Without D-Bus (--once, --no-dbus) this is the only way it gets there;
 * with it, the service also tries after local changes.
 */
static void store_cpm_root(struct daemon_account *da)
{
	if (!da->cpm_root_stored)
		da->cpm_root_stored =
			cpmsync_store_set_cpm_root(da->d->store, da->conf->name,
						   config_account_cpm_root(da->conf)) >= 0;
}

/* The plural ending of a count's noun: "1 folder", "2 folders". */
#define PLURAL_S(n) ((n) == 1 ? "" : "s")

static void session_synced(struct cpmsync_session *s, int r, const char *reason,
			   const struct cpmsync_sync_stats *st, void *userdata)
{
	struct daemon_account *da = userdata;

	if (r < 0 && r != -CPMSYNC_E_CANCELED)
		log_warning("%s: sync failed: %s", cpmsync_session_name(s), reason);
	if (r == 0 && (st->messages_added || st->messages_changed || st->messages_removed ||
		       st->ops_replayed || st->ops_failed))
		log_info("%s: synced: %u folder%s synced, %u unchanged, %u message%s added, "
			 "%u changed, %u removed, %u local change%s sent, %u kept",
			 cpmsync_session_name(s), st->folders_synced, PLURAL_S(st->folders_synced),
			 st->folders_skipped, st->messages_added, PLURAL_S(st->messages_added),
			 st->messages_changed, st->messages_removed, st->ops_replayed,
			 PLURAL_S(st->ops_replayed), st->ops_failed);
	else if (r == 0 || r == -CPMSYNC_E_CANCELED)
		/* (A failure is the warning above, once; -v shows its traffic.) */
		log_debug("%s: sync %s (%llu bytes in, %llu out)", cpmsync_session_name(s),
			  r == 0 ? "done" : "canceled", (unsigned long long)st->bytes_in,
			  (unsigned long long)st->bytes_out);
	store_cpm_root(da);
	if (da->d->svc)
		cpm_service_account_synced(da->d->svc, s, r);
	/* Outbox files become removable (or failed) as their APPENDs land. */
	if (da->d->outbox && r != -CPMSYNC_E_CANCELED)
		outbox_rescan(da->d->outbox);
}

static const struct cpmsync_session_callbacks session_callbacks = {
	.changed = session_changed,
	.progress = session_progress,
	.synced = session_synced,
};

static struct daemon_account *find_account(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_accounts; i++)
		if (str_eq(d->accounts[i]->conf->name, name))
			return d->accounts[i];
	return NULL;
}

static int add_account(struct daemon *d, const struct config_account *conf)
{
	struct daemon_account *da, **v;
	struct cpmsync_account settings;
	struct cpmsync_session_options opts = { 0 };
	int r;

	v = realloc(d->accounts, (d->n_accounts + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	d->accounts = v;
	da = calloc(1, sizeof(*da));
	if (!da)
		return -ENOMEM;
	da->d = d;
	da->conf = conf;
	settings_of(da, &settings);
	opts.poll_interval_ms = config_account_poll_interval_ms(conf);
	r = cpmsync_session_new(d->loop, d->store, &settings, &opts, &session_callbacks, da,
				&da->session);
	if (r < 0) {
		log_error("%s: cannot start: %s", conf->name, cpmsync_strerror(r));
		free(da);
		return r;
	}
	d->accounts[d->n_accounts++] = da;
	store_cpm_root(da);
	if (d->svc) {
		/* With its settings: InterfacesAdded carried an empty Host and
		 * User, the values only in a PropertiesChanged right after. */
		r = cpm_service_add_account(d->svc, da->session, conf->host, conf->user,
					    config_account_cpm_root(conf));
		if (r < 0)
			log_error("%s: cannot export on D-Bus: %s", conf->name,
				  cpmsync_strerror(r));
	}
	log_info("%s: account added (%s@%s)", conf->name, conf->user, conf->host);
	return 0;
}

/* Ends account i's session: why says so in the log (NULL: the caller
 * says it); its data stays in the store either way. */
static void remove_account_at(struct daemon *d, size_t i, const char *why)
{
	struct daemon_account *da = d->accounts[i];
	_cleanup_free_ char *name = strdup(cpmsync_session_name(da->session));

	if (d->svc && name)
		cpm_service_remove_account(d->svc, name);
	cpmsync_session_free(da->session);
	password_forget(da);
	free(da->password_error);
	free(da);
	d->accounts[i] = d->accounts[--d->n_accounts];
	if (why)
		log_info("%s: %s", name ? name : "?", why);
}

/* ------------------------------------------------------------------ */
/* Configuration */

static void outbox_start(struct daemon *d);

/* Applies a new configuration (taken over): accounts added, removed or
 * changed; the rest untouched. */
/*
 * An account gone from the file keeps its data in the store (a section
 * renamed or removed by mistake must lose nothing), and with it the
 * changes it had not sent: said, as they would otherwise wait unseen.
 */
static void note_left_behind(struct daemon *d, const char *name)
{
	uint32_t queued = 0, failed = 0;

	if (d->dropping && str_eq(d->dropping, name))
		return;
	if (cpmsync_store_pending_operations(d->store, name, &queued) < 0 ||
	    cpmsync_store_failed_count(d->store, name, &failed) < 0 || (!queued && !failed))
		return;
	log_warning("%s: removed from the configuration with %" PRIu32
		    " local change(s) not yet sent and %" PRIu32
		    " failed operation(s): they stay in the store for an account of that "
		    "name, to be sent if it comes back; D-Bus Manager1.RemoveAccount drops them",
		    name, queued, failed);
}

static void apply_config(struct daemon *d, struct config *cfg)
{
	struct config *old = d->cfg;

	if (old && !str_eq(old->database, cfg->database) && !str_eq(d->database, cfg->database))
		log_warning(
			"%s: database changed to %s; restart cpm-syncd to use it (still using %s)",
			cfg->path, cfg->database, d->database);
	/* Gone from the file. */
	for (size_t i = d->n_accounts; i-- > 0;)
		if (!config_find_account(cfg, d->accounts[i]->conf->name)) {
			/* RemoveAccount's (d->dropping) goes on to drop its
			 * data, and hook_remove_account() says so, once. */
			bool dropping =
				d->dropping && str_eq(d->dropping, d->accounts[i]->conf->name);

			note_left_behind(d, d->accounts[i]->conf->name);
			remove_account_at(d, i,
					  dropping ? NULL
						   : "account removed from the configuration (its"
						     " data stays in the store)");
		}
	/* Kept or changed: repoint at the new configuration. */
	for (size_t i = 0; i < d->n_accounts; i++) {
		struct daemon_account *da = d->accounts[i];
		const struct config_account *now = config_find_account(cfg, da->conf->name);
		bool same = config_account_equal(da->conf, now);
		bool root_changed =
			!str_eq(config_account_cpm_root(da->conf), config_account_cpm_root(now));
		unsigned poll_ms = config_account_poll_interval_ms(now);
		bool poll_changed = config_account_poll_interval_ms(da->conf) != poll_ms;

		da->conf = now;
		if (!same) {
			struct cpmsync_account settings;

			/* A command of the old settings, or its result: not for these. */
			password_forget(da);
			settings_of(da, &settings);
			log_info("%s: settings changed, reconnecting", now->name);
			cpmsync_session_set_account(da->session, &settings);
			if (d->svc)
				cpm_service_set_account_details(d->svc, now->name, now->host,
								now->user);
		}
		if (root_changed) {
			da->cpm_root_stored = false;
			store_cpm_root(da);
		}
		/* Applied without reconnecting (not in config_account_equal()). */
		if (poll_changed) {
			log_info("%s: poll interval now %u s", now->name, poll_ms / 1000);
			cpmsync_session_set_poll_interval(da->session, poll_ms);
		}
		if (d->svc)
			cpm_service_set_account_cpm_root(d->svc, now->name,
							 config_account_cpm_root(now));
	}
	d->cfg = cfg;
	/* Logged by the loader; kept for Manager1.ConfigWarnings too. */
	cpm_service_set_config_warnings(d->svc, cfg->warnings, cfg->n_warnings);
	/* New in the file; one whose removal is not done yet comes after it
	 * (its data, in the store still, is not for it). */
	for (size_t i = 0; i < cfg->n_accounts; i++) {
		if (find_account(d, cfg->accounts[i].name))
			continue;
		if (d->removing && str_eq(d->removing->name, cfg->accounts[i].name)) {
			log_info("%s: added once its removal is done", d->removing->name);
			d->removing->readd = true;
			continue;
		}
		add_account(d, &cfg->accounts[i]);
	}
	if (old && !str_eq(old->outbox, cfg->outbox)) {
		log_info("outbox moved to %s", cfg->outbox);
		d->outbox = outbox_free(d->outbox);
		outbox_start(d);
	} else if (d->outbox) {
		outbox_rescan(d->outbox);
	}
	config_free(old);
}

/*
 * A password file changed: an account that stopped after a refused login
 * (State error) tries again with it, without a restart.  Others read the
 * file at their next login anyway.
 */
static void password_file_changed(const char *path, void *userdata)
{
	struct daemon *d = userdata;

	for (size_t i = 0; i < d->n_accounts; i++) {
		struct daemon_account *da = d->accounts[i];

		if (!da->conf->password_file || !str_eq(da->conf->password_file, path) ||
		    cpmsync_session_get_state(da->session) != CPMSYNC_SESSION_ERROR)
			continue;
		log_info("%s: %s changed, logging in again", da->conf->name, path);
		cpmsync_session_sync_now(da->session);
	}
}

/* The configured accounts' password files, watched with the configuration. */
static void watch_password_files(struct daemon *d)
{
	_cleanup_free_ const char **paths = NULL;
	size_t n = 0;

	if (!d->watch)
		return;
	paths = xcalloc(d->n_accounts + 1, sizeof(*paths));
	for (size_t i = 0; i < d->n_accounts; i++)
		if (d->accounts[i]->conf->password_file)
			paths[n++] = d->accounts[i]->conf->password_file;
	config_watch_set_files(d->watch, paths, n, password_file_changed);
}

/*
 * Manager1.ConfigError for a file that names another database than the
 * store in use (NULL when it names that one): the daemon keeps its store
 * until a restart, and says so until then.
 */
static char *database_changed(const struct daemon *d)
{
	const struct config *c = d->cfg;
	_cleanup_free_ char *where = NULL;

	if (str_eq(d->database, c->database))
		return NULL;
	where = c->database_line ? xasprintf("%s:%u", c->path, c->database_line) : xstrdup(c->path);
	return xasprintf("%s: database changed from %s to %s: restart cpm-syncd to use it", where,
			 d->database, c->database);
}

static int reload(struct daemon *d)
{
	struct config *cfg = NULL;
	char *err = NULL;
	int r;

	r = config_load(d->config_path, &cfg, &err);
	if (r < 0) {
		_cleanup_free_ char *why =
			err ? err : xasprintf("%s: %s", d->config_path, strerror(-r));

		/* One line, and Manager1.ConfigError until a good reload. */
		log_error("%s; keeping the last good configuration", why);
		if (d->svc)
			cpm_service_set_config_error(d->svc, why);
		return r;
	}
	for (size_t i = 0; i < cfg->n_warnings; i++)
		log_warning("%s", cfg->warnings[i]);
	apply_config(d, cfg);
	if (d->svc) {
		_cleanup_free_ char *why = database_changed(d);

		cpm_service_set_config_error(d->svc, why);
	}
	log_info("configuration reloaded");
	watch_password_files(d);
	return 0;
}

static void config_changed(void *userdata)
{
	struct daemon *d = userdata;

	log_debug("%s changed, reloading", d->config_path);
	reload(d);
}

static int hook_add_account(void *userdata, const char *name,
			    const struct cpmsync_account_settings *settings,
			    const struct cpm_account_pems *pems, char **ret_error)
{
	struct daemon *d = userdata;
	struct config_account_pems files = {
		.ca = pems ? pems->ca : NULL,
		.ca_len = pems ? pems->ca_len : 0,
		.client = pems ? pems->client : NULL,
		.client_len = pems ? pems->client_len : 0,
	};
	int r;

	if (d->removing && str_eq(d->removing->name, name)) {
		if (ret_error)
			*ret_error =
				xasprintf("account '%s' is being removed (its unsent changes are "
					  "being written to disk); try again when that is done",
					  name);
		return -EBUSY;
	}
	r = config_write_add_account(d->config_path, name, settings, &files, ret_error);
	if (r < 0)
		return r;
	r = reload(d);
	if (r < 0 || !find_account(d, name)) {
		if (ret_error && !*ret_error)
			*ret_error =
				strdup("the configuration was written but could not be loaded");
		return r < 0 ? r : -EIO;
	}
	return 0;
}

/* RemoveAccount's one line when the journal held something: what was
 * dropped with the account's data, each kind said only when there is
 * one, and where it was saved. */
static void log_removed_with(const char *name, uint32_t unsent, uint32_t failed, uint32_t in_flight,
			     const struct removed_saved *saved)
{
	char what[256] = "";
	_cleanup_free_ char *where = NULL;
	size_t n = 0;

	if (unsent)
		n += (size_t)snprintf(what + n, sizeof(what) - n,
				      "%" PRIu32 " local change(s) it had not sent", unsent);
	if (failed)
		n += (size_t)snprintf(what + n, sizeof(what) - n,
				      "%s%" PRIu32 " failed operation(s)",
				      n ? (in_flight ? ", " : " and ") : "", failed);
	if (in_flight)
		snprintf(what + n, sizeof(what) - n,
			 "%s%" PRIu32 " it had sent without its answer yet (on the server, maybe)",
			 n ? " and " : "", in_flight);
	if (saved->directory)
		where = xasprintf(
			", saved in %s (%" PRIu32 " new message(s) as .eml files, the %" PRIu32
			" change(s) listed in unsent.txt%s)",
			saved->directory, saved->messages, saved->changes,
			saved->unreadable ? "; the content of some could not be read, see there"
					  : "");
	log_warning("%s: removed from the configuration, and its data from the store, with %s%s",
		    name, what, where ? where : "");
}

/*
 * Where RemoveAccount saves unsent changes: $XDG_DATA_HOME/cpmsync/removed,
 * else beside the database.
 */
static char *removed_dir(const struct daemon *d)
{
	_cleanup_free_ char *data = config_default_data_dir();
	_cleanup_free_ char *db = NULL;
	char *slash;

	if (data)
		return xasprintf("%s/removed", data);
	db = xstrdup(d->database);
	slash = strrchr(db, '/');
	if (slash)
		*slash = '\0';
	return xasprintf("%s/removed", slash && *db ? db : ".");
}

/*
 * The account's data, gone from the configuration and with its session
 * ended, dropped from the store, and one line saying what went and where
 * its unsent changes are (saved, synced to disk already).  Returns
 * whether it went; if not, the files are removed when discard.
 */
static bool drop_data(struct daemon *d, const char *name, struct removed_saved *saved, bool discard)
{
	uint32_t dropped = 0, queued = 0, failed = 0, in_flight = 0;
	bool counted;
	int rs;

	/* What the journal held, told apart: a change sent whose answer
	 * had not come (an APPEND stalled after its APPENDUID) may be on
	 * the server, and is no change "not sent".  Counted before the
	 * removal, with the session gone: nothing moves them meanwhile. */
	counted = cpmsync_store_pending_operations(d->store, name, &queued) >= 0 &&
		  cpmsync_store_failed_count(d->store, name, &failed) >= 0 &&
		  cpmsync_store_in_flight_count(d->store, name, &in_flight) >= 0;
	rs = cpmsync_store_remove_account(d->store, name, &dropped);
	if (rs < 0) {
		log_warning("%s: removed from the configuration, but its data stays in the"
			    " store: %s",
			    name, cpmsync_store_error(d->store));
		/* Nothing dropped: the store keeps what was saved. */
		if (discard)
			removed_discard(saved);
		return false;
	}
	if (dropped && counted)
		log_removed_with(name, queued - in_flight, failed, in_flight, saved);
	else if (dropped) /* not told apart: a store error above */
		log_removed_with(name, dropped, 0, 0, saved);
	else
		log_info("%s: removed from the configuration, and its data from the store", name);
	return true;
}

static void removal_free(struct removal *rm)
{
	cpmsync_loop_source_remove(rm->src);
	if (rm->efd >= 0)
		close(rm->efd);
	removed_saved_clear(&rm->saved);
	free(rm->error);
	free(rm->dir);
	free(rm->name);
	free(rm);
}

static void *removal_thread(void *userdata)
{
	struct removal *rm = userdata;
	uint64_t one = 1;

	rm->r = removed_sync(&rm->saved, rm->dir, &rm->error);
	/* The loop's side reads rm after pthread_join() (removal_finish()). */
	while (write(rm->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	return NULL;
}

/* The sync is done (or, at exit, waited for): the data goes if it
 * worked; else it stays, and the files too (what the caller was told). */
static void removal_finish(struct daemon *d)
{
	struct removal *rm = d->removing;
	bool readd = rm->readd;

	pthread_join(rm->thread, NULL);
	d->removing = NULL;
	if (rm->r < 0)
		log_warning("%s: removed from the configuration, but its data stays in the store:"
			    " its unsent changes saved in %s: %s",
			    rm->name, rm->saved.directory, rm->error);
	else
		drop_data(d, rm->name, &rm->saved, false);
	removal_free(rm);
	if (readd)
		reload(d);
}

static void removal_done(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	(void)src;
	(void)fd;
	(void)events;
	removal_finish(userdata);
}

/* Syncs saved on a thread, the data dropped after (removal_done());
 * saved is taken over on success. */
static int removal_start(struct daemon *d, const char *name, const char *dir,
			 struct removed_saved *saved)
{
	struct removal *rm = xcalloc(1, sizeof(*rm));
	pthread_attr_t attr;
	int r;

	rm->name = xstrdup(name);
	rm->dir = xstrdup(dir);
	rm->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rm->efd < 0 || cpmsync_loop_add_fd(d->loop, rm->efd, CPMSYNC_LOOP_IN, removal_done, d,
					       NULL, &rm->src) < 0) {
		removal_free(rm);
		return -ENOMEM;
	}
	rm->saved = *saved;
	r = pthread_attr_init(&attr);
	if (r == 0) {
		r = pthread_create(&rm->thread, &attr, removal_thread, rm);
		pthread_attr_destroy(&attr);
	}
	if (r != 0) {
		rm->saved = (struct removed_saved){ 0 };
		removal_free(rm);
		return -r;
	}
	*saved = (struct removed_saved){ 0 };
	d->removing = rm;
	return 0;
}

static int hook_remove_account(void *userdata, const char *name,
			       struct cpm_account_saved *ret_saved, char **ret_error)
{
	struct daemon *d = userdata;
	struct daemon_account *da = find_account(d, name);
	struct removed_saved saved = { 0 };
	_cleanup_free_ char *dir = removed_dir(d);
	int r;

	if (!da) {
		if (ret_error)
			*ret_error = strdup("no such account");
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (d->removing) {
		if (ret_error)
			*ret_error =
				xasprintf("the removal of account '%s' is not done yet (its "
					  "unsent changes are being written to disk); try again "
					  "when it is",
					  d->removing->name);
		return -EBUSY;
	}
	/*
	 * Its unsent changes first, written: they go with its data, and
	 * would be lost.  Nothing moves them meanwhile (no loop iteration
	 * before its session ends); if they cannot be written, nothing is
	 * removed.  Syncing them to disk, an fsync() a file (4.4 s for 1,000
	 * new messages on ext4), is done on a thread, the loop serving
	 * other clients meanwhile; the data goes once it is done
	 * (removal_done()), and the account, gone from the configuration,
	 * from D-Bus and with its session ended, cannot change them.
	 */
	{
		_cleanup_free_ char *who = xasprintf("%s@%s", da->conf->user, da->conf->host);
		char *why = NULL;

		r = removed_save_unsynced(d->store, name, who, dir, time(NULL), &saved, &why);
		if (r < 0) {
			if (ret_error)
				*ret_error = xasprintf("%s; nothing was removed", why);
			free(why);
			return r;
		}
	}
	r = config_write_remove_account(d->config_path, name, ret_error);
	if (r < 0) {
		removed_discard(&saved);
		removed_saved_clear(&saved);
		return r;
	}
	d->dropping = name;
	r = reload(d);
	d->dropping = NULL;
	if (r < 0 || find_account(d, name)) {
		removed_discard(&saved);
		removed_saved_clear(&saved);
		return r;
	}
	/* Its session is gone: its data goes too.  Kept, a later account
	 * of the same name (another user's, say) would take it over, and
	 * send its queued changes to that mailbox. */
	if (!saved.directory) {
		drop_data(d, name, &saved, true);
		return r;
	}
	if (ret_saved)
		*ret_saved = (struct cpm_account_saved){
			.directory = xstrdup(saved.directory),
			.messages = saved.messages,
			.changes = saved.changes,
		};
	if (removal_start(d, name, dir, &saved) == 0)
		return r;
	/* No thread: synced here, as before. */
	{
		char *why = NULL;

		if (removed_sync(&saved, dir, &why) < 0) {
			log_warning("%s: removed from the configuration, but its data stays in the"
				    " store: its unsent changes saved in %s: %s",
				    name, saved.directory, why);
			free(why);
		} else {
			drop_data(d, name, &saved, false);
		}
	}
	removed_saved_clear(&saved);
	return r;
}

/* Type=dbus: a daemon nobody can reach is of no use; systemd restarts it
 * (Restart=on-failure) and the store is consistent at any point. */
static void hook_bus_lost(void *userdata)
{
	struct daemon *d = userdata;

	log_error("lost the connection to the session bus; stopping");
	cpmsync_loop_quit(d->loop, 1);
}

/* A failed D-Bus call that changes something (Store, SetFlags,
 * CreateFolder, AddAccount ...): logged like a failed outbox file, the
 * caller alone gets the error otherwise. */
static void hook_call_failed(void *userdata, const char *account, const char *what,
			     const char *reason)
{
	(void)userdata;
	if (account)
		log_warning("%s: %s failed: %s", account, what, reason);
	else
		log_warning("%s failed: %s", what, reason);
}

static const struct cpm_service_hooks service_hooks = {
	.add_account = hook_add_account,
	.remove_account = hook_remove_account,
	.bus_lost = hook_bus_lost,
	.call_failed = hook_call_failed,
};

/* ------------------------------------------------------------------ */
/* Outbox */

static bool outbox_account_known(void *userdata, const char *account)
{
	return find_account(userdata, account) != NULL;
}

static void outbox_stored(void *userdata, const char *account)
{
	struct daemon_account *da = find_account(userdata, account);

	if (da)
		cpmsync_session_changed_locally(da->session);
}

static const char *outbox_cpm_root(void *userdata, const char *account)
{
	struct daemon_account *da = find_account(userdata, account);

	return da ? config_account_cpm_root(da->conf) : NULL;
}

static bool outbox_folder_synced(void *userdata, const char *account, const char *folder)
{
	struct daemon_account *da = find_account(userdata, account);

	return !da || cpmsync_session_syncs_folder(da->session, folder);
}

static const struct outbox_callbacks outbox_callbacks = {
	.account_known = outbox_account_known,
	.stored = outbox_stored,
	.cpm_root = outbox_cpm_root,
	.folder_synced = outbox_folder_synced,
};

static void outbox_start(struct daemon *d)
{
	char *err = NULL;
	int r;

	r = make_dirs(d->cfg->outbox);
	if (r < 0) {
		log_error("cannot create the outbox %s: %s", d->cfg->outbox, strerror(-r));
		return;
	}
	if (outbox_new(d->loop, d->store, d->cfg->outbox, &outbox_callbacks, d, &d->outbox, &err) <
	    0) {
		log_error("outbox: %s", err ? err : "cannot watch it");
		free(err);
	}
}

/* ------------------------------------------------------------------ */
/* Network changes and resumes */

static void network_changed(const char *why, void *userdata)
{
	struct daemon *d = userdata;

	log_info("%s: checking the accounts' connections", why);
	for (size_t i = 0; i < d->n_accounts; i++)
		cpmsync_session_network_changed(d->accounts[i]->session, why);
}

static void netwatch_start(struct daemon *d)
{
	char *warning = NULL;
	int r;

	r = netwatch_new(d->loop, network_changed, d, &d->netwatch, &warning);
	if (r < 0)
		log_warning("network changes and resumes from suspend are not watched: %s; a "
			    "dead connection is found by the wait's refresh instead",
			    strerror(-r));
	if (warning)
		log_warning("%s", warning);
	free(warning);
}

/* ------------------------------------------------------------------ */
/* Signals */

static void signal_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct daemon *d = userdata;
	struct signalfd_siginfo si;

	(void)src;
	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			log_info("SIGHUP: reloading %s", d->config_path);
			reload(d);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("%s: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			cpmsync_loop_quit(d->loop, 0);
			break;
		default:
			break;
		}
	}
}

static int setup_signals(struct daemon *d)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->signal_fd < 0)
		return -errno;
	return cpmsync_loop_add_fd(d->loop, d->signal_fd, CPMSYNC_LOOP_IN, signal_cb, d, NULL,
				   &d->signal_src);
}

/* ------------------------------------------------------------------ */

static void daemon_free(struct daemon *d)
{
	/* A removal's sync waited for: its data goes as it would have. */
	if (d->removing) {
		d->removing->readd = false;
		removal_finish(d);
	}
	d->watch = config_watch_free(d->watch);
	d->netwatch = netwatch_free(d->netwatch);
	d->outbox = outbox_free(d->outbox);
	d->svc = cpm_service_free(d->svc);
	/* At exit: "account removed" read as if its data went. */
	while (d->n_accounts)
		remove_account_at(d, d->n_accounts - 1, "account stopped");
	free(d->accounts);
	cpmsync_loop_source_remove(d->signal_src);
	cpmsync_loop_source_remove(d->store_check_src);
	if (d->signal_fd >= 0)
		close(d->signal_fd);
	cpmsync_loop_free(d->loop);
	cpmsync_store_close(d->store);
	config_free(d->cfg);
	free(d->config_path);
	free(d->database);
}

/*
 * The store's file removed or replaced under the daemon (a user "starting
 * over" with rm): whatever it accepted from then on would be lost with the
 * file at the next start.  Every write already fails then (store.h
 * cpmsync_store_check_file()); the daemon stops too, so that the next
 * start (systemd's Restart=on-failure, or D-Bus activation) makes a new
 * store and syncs it again.  Checked every STORE_CHECK_MS, and by each
 * write.  The same timer looks for other processes' writes
 * (other_writers_check()).
 */
#define STORE_CHECK_MS 2000

/*
 * Another process wrote the store: an app that links libcpmsync and calls
 * its operations (cpmsync/ops.h) journals its changes beside ours, and
 * nothing else tells the daemon.  Without this they went out at the next
 * sync only: the next poll, minutes away, or never while push waits on a
 * server with no news.  PRAGMA data_version moves with other connections'
 * commits only (not the daemon's own), so an account with pending
 * operations after such a commit replays now, within STORE_CHECK_MS; one
 * backing off after a failure keeps waiting (changed_locally()).
 */
static void other_writers_check(struct daemon *d)
{
	uint64_t stamp[2];

	/* Their changes to messages, folders and conversations, signalled:
	 * the drain takes them when data_version moved (store-changes.c);
	 * every time, so that a take that failed (a lock held past the busy
	 * timeout) is tried again. */
	if (d->svc)
		cpm_service_others_wrote(d->svc);
	else if (cpmsync_store_forget_changes(d->store) < 0)
		log_debug("could not drop the changes other processes recorded: %s",
			  cpmsync_store_error(d->store));
	if (cpmsync_store_content_stamp(d->store, stamp) < 0)
		return;
	if (d->has_data_version && stamp[0] == d->data_version)
		return;
	if (!d->has_data_version) {
		d->has_data_version = true;
		d->data_version = stamp[0];
		return;
	}
	d->data_version = stamp[0];
	for (size_t i = 0; i < d->n_accounts; i++) {
		struct daemon_account *da = d->accounts[i];
		uint32_t n = 0;

		if (cpmsync_store_pending_operations(d->store, da->conf->name, &n) < 0 || !n)
			continue;
		log_debug("%s: the store was written by another process; %" PRIu32
			  " pending operation%s to send",
			  da->conf->name, n, n == 1 ? "" : "s");
		if (d->svc)
			cpm_service_account_changed(d->svc, da->session);
		cpmsync_session_changed_locally(da->session);
	}
}

static void store_check_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct daemon *d = userdata;

	(void)src;
	if (cpmsync_store_check_file(d->store) != -CPMSYNC_E_STORE_GONE) {
		other_writers_check(d);
		return;
	}
	log_error("%s; stopping, so that a new start makes a new store and syncs it again",
		  cpmsync_store_error(d->store));
	cpmsync_loop_quit(d->loop, 1);
}

int daemon_run(const struct daemon_options *opt, struct config *cfg)
{
	struct daemon d = { .signal_fd = -1 };
	_cleanup_free_ char *dbdir = NULL;
	char *err = NULL, *slash;
	int r, status = 1;

	d.config_path = realpath(cfg->path, NULL);
	if (!d.config_path)
		d.config_path = strdup(cfg->path);
	dbdir = strdup(cfg->database);
	d.database = strdup(cfg->database);
	if (!d.config_path || !dbdir || !d.database) {
		config_free(cfg);
		return 1;
	}
	slash = strrchr(dbdir, '/');
	if (slash && slash != dbdir)
		*slash = '\0';
	r = make_dirs(dbdir);
	if (r < 0) {
		log_error("cannot create %s: %s", dbdir, strerror(-r));
		goto out_cfg;
	}
	r = cpmsync_store_open(cfg->database, CPMSYNC_STORE_DAEMON, &d.store, &err);
	if (r < 0) {
		log_error("cannot open the store: %s", err ? err : cpmsync_strerror(r));
		free(err);
		goto out_cfg;
	}
	r = cpmsync_loop_new(&d.loop);
	if (r < 0) {
		log_error("cannot create the event loop: %s", cpmsync_strerror(r));
		goto out;
	}
	r = setup_signals(&d);
	if (r < 0) {
		log_error("cannot set up signal handling: %s", strerror(-r));
		goto out;
	}
	r = cpmsync_loop_add_timer(d.loop, STORE_CHECK_MS, STORE_CHECK_MS, store_check_cb, &d, NULL,
				   &d.store_check_src);
	if (r < 0) {
		log_error("cannot set up a timer: %s", cpmsync_strerror(r));
		goto out;
	}
	if (!opt->no_dbus) {
		_cleanup_free_ char *db_abs = realpath(d.database, NULL);

		r = cpm_service_new(d.loop, d.store, opt->bus_address, cpmsync_version(),
				    &service_hooks, &d, &d.svc, &err);
		if (r < 0) {
			log_error("cannot connect to D-Bus: %s", err ? err : cpmsync_strerror(r));
			free(err);
			goto out;
		}
		cpm_service_set_files(d.svc, d.config_path, db_abs ? db_abs : d.database);
	}
	apply_config(&d, cfg);
	cfg = NULL;
	outbox_start(&d);
	if (config_watch_new(d.loop, d.config_path, config_changed, &d, &d.watch, &err) < 0) {
		log_warning("configuration changes will not be noticed: %s",
			    err ? err : "cannot watch the file");
		free(err);
		err = NULL;
	}
	watch_password_files(&d);
	netwatch_start(&d);
	if (d.svc) {
		r = cpm_service_start(d.svc, &err);
		if (r < 0) {
			log_error("%s", err ? err : "cannot own org.cpmsync");
			free(err);
			goto out;
		}
	}
	log_info("cpm-syncd %s running: %zu account(s), store %s", cpmsync_version(), d.n_accounts,
		 d.cfg->database);
	status = cpmsync_loop_run(d.loop);
out:
	config_free(cfg);
	daemon_free(&d);
	return status;
out_cfg:
	config_free(cfg);
	free(d.config_path);
	free(d.database);
	return 1;
}
