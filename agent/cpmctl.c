/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmctl: the command-line client.  `dump` reads the store directly (read
 * only, beside a running daemon); every other command talks to the daemon
 * over D-Bus, which this build does not have yet (issue 4): they say so
 * and fail instead of pretending.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "config.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cpmctl [--config FILE] COMMAND [ARGS]\n"
		"\n"
		"  status                           accounts, state, pending operations, last sync\n"
		"  sync [ACCOUNT]                   sync now (progress bar on a terminal)\n"
		"  folders ACCOUNT                  the account's folders\n"
		"  list ACCOUNT FOLDER              message summaries\n"
		"  fetch ACCOUNT FOLDER ID [SECTION]\n"
		"  store ACCOUNT FOLDER FILE [FLAG...]\n"
		"  flag ACCOUNT FOLDER ID +FLAG|-FLAG...\n"
		"  dump [--db PATH] [ACCOUNT [FOLDER]]\n"
		"                                   every stored message, one line each:\n"
		"                                   ACCOUNT TAB FOLDER TAB UID TAB FLAGS TAB MESSAGE-ID\n"
		"\n"
		"  -c, --config FILE   configuration file (default $XDG_CONFIG_HOME/cpmsync/cpmsync.conf)\n"
		"  -h, --help          this text\n"
		"      --version       print the version\n"
		"\n"
		"dump reads the store directly (the daemon need not run); the other commands\n"
		"talk to the running cpm-syncd over D-Bus.\n");
}

/* The database: --db, else the configuration's, else the default path. */
static char *database_path(const char *config_path)
{
	_cleanup_free_ char *def = NULL;
	struct config *cfg = NULL;
	char *err = NULL, *path;
	int r;

	if (!config_path) {
		def = config_default_path();
		config_path = def;
	}
	r = config_path ? config_load(config_path, &cfg, &err) : -ENOENT;
	if (r == -ENOENT && config_path == def) {
		/* No configuration file: the defaults. */
		free(err);
		err = NULL;
		r = config_parse_buffer("(defaults)", "", 0, &cfg, &err);
	}
	if (r < 0) {
		fprintf(stderr, "cpmctl: %s\n", err ? err : strerror(-r));
		free(err);
		return NULL;
	}
	path = strdup(cfg->database);
	config_free(cfg);
	if (!path)
		fprintf(stderr, "cpmctl: out of memory\n");
	return path;
}

static int write_line(const char *line, size_t len, void *userdata)
{
	(void)userdata;
	if (fwrite(line, 1, len, stdout) != len)
		return -errno ? -errno : -EIO;
	return 0;
}

struct exists {
	const char *name;
	bool found;
};

static int account_seen(const char *account, void *userdata)
{
	struct exists *x = userdata;

	if (strcmp(account, x->name) == 0)
		x->found = true;
	return 0;
}

static int cmd_dump(int argc, char **argv, const char *config_path)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *db = NULL;
	struct cpmsync_store *store = NULL;
	const char *account = NULL, *folder = NULL;
	char *err = NULL;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			free(db);
			db = strdup(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Usage: cpmctl dump [--db PATH] [ACCOUNT [FOLDER]]\n");
			return 2;
		}
	}
	if (argc - optind > 2) {
		fprintf(stderr, "cpmctl dump: unexpected argument '%s'\n", argv[optind + 2]);
		return 2;
	}
	if (optind < argc)
		account = argv[optind];
	if (optind + 1 < argc)
		folder = argv[optind + 1];
	if (!db) {
		db = database_path(config_path);
		if (!db)
			return 1;
	}
	if (access(db, F_OK) < 0) {
		fprintf(stderr, "cpmctl: cannot open database '%s': %s\n", db, strerror(errno));
		return 1;
	}
	r = cpmsync_store_open(db, CPMSYNC_STORE_READONLY, &store, &err);
	if (r < 0) {
		fprintf(stderr, "cpmctl: cannot open database '%s': %s\n", db,
			err ? err : cpmsync_strerror(r));
		free(err);
		return 1;
	}
	if (account) {
		struct exists x = { account, false };

		r = cpmsync_store_foreach_account(store, account_seen, &x);
		if (r >= 0 && !x.found) {
			fprintf(stderr, "cpmctl: unknown account '%s' in %s\n", account, db);
			cpmsync_store_close(store);
			return 1;
		}
	}
	if (folder) {
		int64_t id;

		r = cpmsync_store_find_folder(store, account, folder, &id);
		if (r == -CPMSYNC_E_NOT_FOUND) {
			fprintf(stderr, "cpmctl: account '%s' has no folder '%s'\n", account, folder);
			cpmsync_store_close(store);
			return 1;
		}
	}
	r = cpmsync_store_dump(store, account, folder, write_line, NULL);
	if (r < 0) {
		fprintf(stderr, "cpmctl: reading %s: %s\n", db,
			r == -EPIPE || r == -ENOSPC || r == -EIO ? strerror(-r)
								  : cpmsync_store_error(store));
		cpmsync_store_close(store);
		return 1;
	}
	cpmsync_store_close(store);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "cpmctl: writing the dump: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_VERSION = 256 };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const daemon_commands[] = {
		"status", "sync", "folders", "list", "fetch", "store", "flag", NULL,
	};
	const char *config_path = NULL, *cmd;
	int ch;

	signal(SIGPIPE, SIG_IGN); /* a closed pipe is a write error we report */
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("cpmctl %s\n", cpmsync_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "dump") == 0)
		return cmd_dump(argc - optind, argv + optind, config_path);
	for (size_t i = 0; daemon_commands[i]; i++) {
		if (strcmp(cmd, daemon_commands[i]) == 0) {
			fprintf(stderr,
				"cpmctl: %s needs the running daemon's D-Bus API, which this build "
				"does not have yet\n",
				cmd);
			return 1;
		}
	}
	fprintf(stderr, "cpmctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
