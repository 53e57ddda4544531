/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpm-syncd: the sync daemon.  This file is glue only: options, the
 * configuration, and the library's loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/store.h>
#include <cpmsync/sync.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "util.h"

struct options {
	const char *config_path;
	bool once;
	const char *once_account;
	bool check;
	const char *check_account;
	bool no_dbus;
	bool verbose;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: cpm-syncd [--config FILE] [--once [ACCOUNT] | --check [ACCOUNT]] "
		   "[--no-dbus] [-v|--verbose]\n"
		   "\n"
		   "Keeps the accounts of cpmsync.conf in sync with their IMAP message stores.\n"
		   "\n"
		   "  -c, --config FILE   configuration file (default "
		   "$XDG_CONFIG_HOME/cpmsync/cpmsync.conf)\n"
		   "      --once [ACCT]   sync every account once, both ways, then exit; an\n"
		   "                      account set offline (Online off) is left out, unless\n"
		   "                      named as ACCT (then only ACCT is synced)\n"
		   "      --check [ACCT]  connect, secure and log in to each account (or ACCT),\n"
		   "                      print the server's capabilities, change nothing; an\n"
		   "                      account set offline is skipped, unless named as ACCT\n"
		   "      --no-dbus       do not connect to D-Bus\n"
		   "  -v, --verbose       debug logging (passwords are never logged)\n"
		   "  -h, --help          this text\n"
		   "      --version       print the version\n");
}

/* Returns 0, or 2 after printing a usage error; 1 for --help/--version. */
static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_ONCE = 256, OPT_CHECK, OPT_NO_DBUS, OPT_VERSION };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "no-dbus", no_argument, NULL, OPT_NO_DBUS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config_path = optarg;
			break;
		case OPT_ONCE:
			o->once = true;
			/* As --check: an optional separate ACCOUNT word. */
			if (optind < argc && argv[optind][0] != '-')
				o->once_account = argv[optind++];
			break;
		case OPT_CHECK:
			o->check = true;
			/* --check takes an optional separate ACCOUNT word. */
			if (optind < argc && argv[optind][0] != '-')
				o->check_account = argv[optind++];
			break;
		case OPT_NO_DBUS:
			o->no_dbus = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("cpm-syncd %s\n", cpmsync_version());
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cpm-syncd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (o->once && o->check) {
		fprintf(stderr, "cpm-syncd: --once and --check cannot be combined\n");
		return 2;
	}
	return 0;
}

static struct config *load_config(const char *path_opt)
{
	_cleanup_free_ char *def = NULL;
	struct config *cfg = NULL;
	char *err = NULL;
	const char *path = path_opt;
	int r;

	if (!path) {
		def = config_default_path();
		if (!def) {
			log_error("cannot find the configuration: HOME is not set");
			return NULL;
		}
		path = def;
	}
	r = config_load(path, &cfg, &err);
	if (r < 0) {
		if (err)
			log_error("%s", err);
		else
			log_error("%s: %s", path, strerror(-r));
		free(err);
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_warnings; i++)
		log_warning("%s", cfg->warnings[i]);
	return cfg;
}

struct check_state {
	const struct config_account *account;
	bool done;
	bool ok;
};

static void check_done(int r, const char *capabilities, const char *reason, void *userdata)
{
	struct check_state *st = userdata;

	st->done = true;
	st->ok = r == 0;
	if (r == 0) {
		printf("%s: ok %s\n", st->account->name, capabilities);
	} else if (r == -CPMSYNC_E_AUTH && st->account->password_error) {
		/* The password could not even be read: say why. */
		printf("%s: %s\n", st->account->name, st->account->password_error);
	} else {
		printf("%s: %s\n", st->account->name, reason);
	}
	fflush(stdout);
}

/*
 * The store, read-only, to learn which accounts the user set offline; NULL
 * when there is none yet (nothing was set offline), or after a warning
 * when it cannot be read (then every account is checked: --check is what
 * one runs when things do not work).  --check takes no lock: a running
 * daemon keeps writing meanwhile.
 */
static struct cpmsync_store *check_open_store(const char *database)
{
	struct cpmsync_store *store = NULL;
	char *err = NULL;
	int r;

	if (access(database, F_OK) < 0 && errno == ENOENT)
		return NULL;
	r = cpmsync_store_open(database, CPMSYNC_STORE_READONLY, &store, &err);
	if (r < 0) {
		log_warning("cannot read from the store which accounts are set offline, so each"
			    " is checked: %s",
			    err ? err : cpmsync_strerror(r));
		free(err);
		return NULL;
	}
	return store;
}

/*
 * --check: every account, one after the other; 0 if all were ok.  As with
 * --once (run_once()), an account the user set offline is left out,
 * named on standard output as skipped, and is no failure; named (only),
 * it is checked all the same.
 */
static int run_check(struct config *cfg, const char *only)
{
	struct cpmsync_store *store = NULL;
	struct cpmsync_loop *loop = NULL;
	int failed = 0, checked = 0, skipped = 0, r;

	if (only && !config_find_account(cfg, only)) {
		printf("%s: no such account in %s\n", only, cfg->path);
		return 1;
	}
	r = cpmsync_loop_new(&loop);
	if (r < 0) {
		log_error("cannot create the event loop: %s", cpmsync_strerror(r));
		return 1;
	}
	if (cfg->n_accounts)
		store = check_open_store(cfg->database);
	for (size_t i = 0; i < cfg->n_accounts; i++) {
		struct config_account *a = &cfg->accounts[i];
		struct check_state st = { .account = a };
		struct cpmsync_account settings;
		bool online = true;

		if (only && strcmp(a->name, only) != 0)
			continue;
		if (store && cpmsync_store_get_online(store, a->name, &online) < 0) {
			log_warning(
				"%s: cannot read whether it is set offline, so it is checked: %s",
				a->name, cpmsync_store_error(store));
			online = true;
		}
		if (!online && !only) {
			printf("%s: skipped: set offline (Online is off); `cpm-syncd --check %s` "
			       "checks it all the same\n",
			       a->name, a->name);
			fflush(stdout);
			skipped++;
			continue;
		}
		if (!online)
			log_warning("%s: Online is off; checked as named (it stays off)", a->name);
		checked++;
		config_account_to_settings(a, &settings);
		r = cpmsync_account_check(loop, &settings, check_done, &st, NULL);
		if (r < 0) {
			printf("%s: %s\n", a->name, cpmsync_strerror(r));
			failed++;
			continue;
		}
		while (!st.done) {
			r = cpmsync_loop_iterate(loop, -1);
			if (r < 0) {
				log_error("event loop failed: %s", cpmsync_strerror(r));
				cpmsync_loop_free(loop);
				cpmsync_store_close(store);
				return 1;
			}
		}
		if (!st.ok)
			failed++;
	}
	cpmsync_loop_free(loop);
	cpmsync_store_close(store);
	if (checked == 0 && skipped == 0) {
		printf("no accounts in %s\n", cfg->path);
		return 1;
	}
	return failed ? 1 : 0;
}

/* mkdir -p for the database's directory, private to the user. */
static int make_parent_dirs(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * One daemon per store: an advisory lock (flock) on DATABASE.lock beside
 * the database, held until we exit.  `cpmctl dump` reads without it.
 *
 * The one refused names the holder's pid, which it learns from a POSIX
 * record lock (F_GETLK) the holder takes beside the flock: nothing is
 * written into the file.  Writing our pid into it cost every run, a
 * no-change `--once` included, 8-20 KiB of the disk writes the kernel
 * charges (a truncate, a page and the inode; tests/bench/bench-sync.sh).
 * flock stays the lock that excludes, so a daemon of an older cpmsync
 * (flock and the pid in the file, which we still read then) and a newer
 * one still exclude each other.  Returns the lock's fd, or -1 after logging
 * why.
 */
static long lock_holder(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char buf[32];
	ssize_t n;

	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		return (long)fl.l_pid;
	/* No record lock: an older cpm-syncd, which wrote its pid. */
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return strtol(buf, NULL, 10);
}

static int lock_store(const char *database)
{
	_cleanup_free_ char *path = NULL;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct stat sb;
	int fd, r;

	r = make_parent_dirs(database);
	if (r < 0) {
		log_error("cannot create the directory of %s: %s", database, strerror(-r));
		return -1;
	}
	path = xasprintf("%s.lock", database);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_error("cannot open the store's lock %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		long pid;

		r = errno;
		if (r != EWOULDBLOCK) {
			log_error("cannot lock the store's lock %s: %s", path, strerror(r));
		} else {
			char who[32] = "";

			pid = lock_holder(fd);
			if (pid > 0)
				snprintf(who, sizeof(who), " (pid %ld)", pid);
			log_error("the store %s is in use by another cpm-syncd%s; one daemon per "
				  "store (cpmctl sync asks the running one to sync)",
				  database, who);
		}
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_SETLK, &fl) < 0)
		log_warning("cannot take the record lock on %s (a daemon refused will not "
			    "name our pid): %s",
			    path, strerror(errno));
	/* An older cpm-syncd's pid, once: it would name a process long gone. */
	if (fstat(fd, &sb) == 0 && sb.st_size > 0 && ftruncate(fd, 0) < 0)
		log_warning("cannot empty %s: %s", path, strerror(errno));
	return fd;
}

struct once_state {
	const struct config_account *account;
	bool done;
	bool ok;
};

/* The plural ending of a count's noun: "1 folder", "2 folders". */
#define PLURAL_S(n) ((n) == 1 ? "" : "s")

static void once_done(int r, const char *reason, const struct cpmsync_sync_stats *st,
		      void *userdata)
{
	struct once_state *os = userdata;

	os->done = true;
	os->ok = r == 0;
	if (r == -CPMSYNC_E_AUTH && os->account->password_error)
		log_error("%s: %s", os->account->name, os->account->password_error);
	else if (r < 0)
		log_error("%s: %s", os->account->name, reason);
	log_info("%s: %s: %u folder%s synced, %u unchanged, %u message%s added, %u changed, "
		 "%u removed, %llu body bytes, %u local change%s sent, %u kept; "
		 "%llu bytes in, %llu bytes out",
		 os->account->name, r == 0 ? "done" : "failed", st->folders_synced,
		 PLURAL_S(st->folders_synced), st->folders_skipped, st->messages_added,
		 PLURAL_S(st->messages_added), st->messages_changed, st->messages_removed,
		 (unsigned long long)st->body_bytes, st->ops_replayed, PLURAL_S(st->ops_replayed),
		 st->ops_failed, (unsigned long long)st->bytes_in,
		 (unsigned long long)st->bytes_out);
}

/*
 * --once: every account, one after the other; 0 if all succeeded.  An
 * account the user set offline (Account1.Online false, `cpmctl online
 * ACCOUNT off`, kept in the store) is left out, as the daemon leaves it
 * unconnected: "no network at all" holds for a cron job too.  Named
 * (only), it is synced all the same: that is the user asking for it; the
 * switch stays off.
 */
static int run_once(struct config *cfg, const char *only)
{
	struct cpmsync_store *store = NULL;
	struct cpmsync_loop *loop = NULL;
	char *err = NULL;
	int failed = 0, r;

	if (cfg->n_accounts == 0) {
		log_error("no accounts in %s", cfg->path);
		return 1;
	}
	if (only && !config_find_account(cfg, only)) {
		log_error("%s: no such account in %s", only, cfg->path);
		return 1;
	}
	r = make_parent_dirs(cfg->database);
	if (r < 0) {
		log_error("cannot create the directory of %s: %s", cfg->database, strerror(-r));
		return 1;
	}
	/* One run of many: the WAL is checkpointed when it is long, as in
	 * the daemon, not at every exit (libsync/store/store.c).  It holds
	 * the daemon's lock: no daemon runs to signal its changes, which
	 * record nothing for one (CPMSYNC_STORE_DAEMON). */
	r = cpmsync_store_open(cfg->database, CPMSYNC_STORE_KEEP_WAL | CPMSYNC_STORE_DAEMON, &store,
			       &err);
	if (r < 0) {
		log_error("cannot open the store: %s", err ? err : cpmsync_strerror(r));
		free(err);
		return 1;
	}
	/* What apps recorded for a daemon's signals: nobody takes it here
	 * (cpmsync_store_forget_changes()); a run from cron would let it grow. */
	if (cpmsync_store_forget_changes(store) < 0)
		log_debug("could not drop the changes other processes recorded: %s",
			  cpmsync_store_error(store));
	r = cpmsync_loop_new(&loop);
	if (r < 0) {
		log_error("cannot create the event loop: %s", cpmsync_strerror(r));
		cpmsync_store_close(store);
		return 1;
	}
	for (size_t i = 0; i < cfg->n_accounts; i++) {
		struct config_account *a = &cfg->accounts[i];
		struct once_state os = { .account = a };
		struct cpmsync_account settings;
		bool online = true;

		if (only && strcmp(a->name, only) != 0)
			continue;
		r = cpmsync_store_get_online(store, a->name, &online);
		if (r < 0) {
			log_error("%s: %s", a->name, cpmsync_store_error(store));
			failed++;
			continue;
		}
		if (!online && !only) {
			log_warning("%s: not synced: set offline (Online is off); `cpmctl online %s"
				    " on` turns it on, `cpm-syncd --once %s` syncs it once",
				    a->name, a->name, a->name);
			continue;
		}
		if (!online)
			log_warning("%s: Online is off; synced once as named (it stays off)",
				    a->name);
		config_account_to_settings(a, &settings);
		r = cpmsync_sync_once(loop, store, &settings, once_done, &os, NULL);
		if (r < 0) {
			log_error("%s: %s", a->name, cpmsync_strerror(r));
			failed++;
			continue;
		}
		while (!os.done) {
			r = cpmsync_loop_iterate(loop, -1);
			if (r < 0) {
				log_error("event loop failed: %s", cpmsync_strerror(r));
				failed++;
				break;
			}
		}
		if (!os.ok)
			failed++;
	}
	cpmsync_loop_free(loop);
	cpmsync_store_close(store);
	return failed ? 1 : 0;
}

/*
 * glibc's heap kept, not given back and faulted in again at every call.
 * SQLite allocates and frees a few hundred KiB for every statement that
 * opens a savepoint or an ephemeral table, e.g. the IMDN trigger
 * (store-schema.c v12) on each report stored: with glibc's default trim
 * threshold (128 KiB) every such free shrank the heap and the next
 * statement faulted the pages back (tests/bench/bench-cpm.sh data, 20,000
 * objects: 24,835 minor page faults for the CPM set against 2,227 for the
 * same bytes of plain mail; 2,175 with this).  Setting the trim threshold
 * stops glibc's dynamic mmap threshold, so that one is set too: a kept
 * ListConversations reply (1.2 MB for 1,000 conversations) is copied for
 * every call, and copies from fresh mmap()s cost ~300 page faults each.
 */
static void heap_keep(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
#endif
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct config *cfg;
	int r;

	heap_keep();
	r = parse_options(argc, argv, &o);
	if (r)
		return r == 1 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN);
	agent_log_init(o.verbose);

	cfg = load_config(o.config_path);
	if (!cfg)
		return 1;
	if (o.check) {
		r = run_check(cfg, o.check_account);
	} else if (lock_store(cfg->database) < 0) { /* held (fd open) until we exit */
		r = 1;
	} else if (o.once) {
		r = run_once(cfg, o.once_account);
	} else {
		struct daemon_options d = {
			.config_path = cfg->path,
			.no_dbus = o.no_dbus,
		};

		return daemon_run(&d, cfg);
	}
	config_free(cfg);
	return r;
}
