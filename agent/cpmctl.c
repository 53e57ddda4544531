/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmctl: the command-line client.
 *
 * `dump` reads the store directly: read-only (it never creates or changes
 * the file), beside a running daemon, in one consistent snapshot.  Every
 * other command of the contract talks to the daemon over D-Bus, which this
 * build does not have yet: they say so and fail instead of pretending.
 *
 * Exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage.
 * Output goes through stdout with every write checked: a dump cut short
 * (a closed pipe, a full disk) is an error, never a silent partial list.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "config.h"
#include "util.h"

enum {
	EXIT_USAGE = 2,
};

static const char dump_usage[] = "Usage: cpmctl dump [--db PATH] [ACCOUNT [FOLDER]]\n";

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
		"        every stored message, one line each, sorted by account and folder\n"
		"        (bytewise) and uid:  ACCOUNT TAB FOLDER TAB UID TAB FLAGS TAB MESSAGE-ID\n"
		"        UID is 0 for a message not yet on the server; a TAB, CR or LF inside\n"
		"        a value is shown as a space.  An ACCOUNT or FOLDER not in the store\n"
		"        is an error; one that is there but holds no message prints nothing.\n"
		"        INBOX may be given in any case.\n"
		"\n"
		"  -c, --config FILE   configuration file (default $XDG_CONFIG_HOME/cpmsync/cpmsync.conf);\n"
		"                      dump reads its [general] database unless --db is given\n"
		"                      (without a configuration file: $XDG_DATA_HOME/cpmsync/store.db)\n"
		"  -h, --help          this text\n"
		"      --version       print the version\n"
		"\n"
		"dump reads the store directly (the daemon need not run); the other commands\n"
		"talk to the running cpm-syncd over D-Bus.\n"
		"Exit status: 0 done, 1 failed, 2 bad usage.\n");
}

/*
 * Flushes stdout and reports a write error that happened at any point
 * (stdio keeps the error flag).  Returns the exit status to use.
 */
static int finish_stdout(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "cpmctl: cannot write the output: %s\n",
			errno ? strerror(errno) : "write error");
		return 1;
	}
	return status;
}

/*
 * The database: the configuration's [general] database.  Without --config
 * a missing default configuration file is no error: the defaults apply
 * (the parser's own, $XDG_DATA_HOME/cpmsync/store.db, so that cpmctl and
 * the daemon cannot disagree).  A configuration file that exists but is
 * invalid is an error: it would be for the daemon too.
 * Returns a string to free(), or NULL after printing why.
 */
static char *database_path(const char *config_path)
{
	_cleanup_free_ char *def = NULL;
	struct config *cfg = NULL;
	char *err = NULL, *path;
	int r;

	if (!config_path) {
		def = config_default_path();
		if (def && access(def, F_OK) == 0)
			config_path = def;
	}
	if (config_path)
		r = config_load(config_path, &cfg, &err);
	else
		r = config_parse_buffer("(built-in defaults)", "", 0, &cfg, &err);
	if (r < 0) {
		if (err)
			fprintf(stderr, "cpmctl: %s\n", err);
		else
			fprintf(stderr, "cpmctl: %s: %s\n", config_path ? config_path : "configuration",
				strerror(-r));
		free(err);
		return NULL;
	}
	path = xstrdup(cfg->database);
	config_free(cfg);
	return path;
}

struct dump_out {
	int error; /* errno of a failed write, or 0 */
};

static int write_line(const char *line, size_t len, void *userdata)
{
	struct dump_out *out = userdata;

	errno = 0;
	if (fwrite(line, 1, len, stdout) != len) {
		out->error = errno ? errno : EIO;
		return -out->error;
	}
	return 0;
}

/* The store's message without a leading "PATH: " (we name the path ourselves). */
static const char *without_path(const char *msg, const char *path)
{
	size_t n = strlen(path);

	if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

static int cmd_dump(int argc, char **argv, const char *config_path)
{
	enum { OPT_DB = 256 };
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *db = NULL;
	struct cpmsync_store *store = NULL;
	struct dump_out out = { 0 };
	const char *account = NULL, *folder = NULL, *db_opt = NULL;
	char *err = NULL;
	int ch, r;

	optind = 0; /* glibc: start afresh on the new argv */
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_DB:
			db_opt = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			fputs(dump_usage, stdout);
			return finish_stdout(0);
		default:
			fputs(dump_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 2) {
		fprintf(stderr, "cpmctl dump: unexpected argument '%s'\n", argv[optind + 2]);
		fputs(dump_usage, stderr);
		return EXIT_USAGE;
	}
	if (optind < argc)
		account = argv[optind];
	if (optind + 1 < argc)
		folder = argv[optind + 1];
	if (db_opt && !*db_opt) {
		fprintf(stderr, "cpmctl dump: --db needs a path\n");
		return EXIT_USAGE;
	}

	db = db_opt ? xstrdup(db_opt) : database_path(config_path);
	if (!db)
		return 1;
	/* SQLite's read-only open would only say "unable to open database
	 * file": ask the file system first for a precise reason. */
	if (access(db, R_OK) < 0) {
		fprintf(stderr, "cpmctl: cannot open database '%s': %s\n", db, strerror(errno));
		return 1;
	}
	r = cpmsync_store_open(db, CPMSYNC_STORE_READONLY, &store, &err);
	if (r < 0) {
		fprintf(stderr, "cpmctl: cannot open database '%s': %s\n", db,
			err ? without_path(err, db) : cpmsync_strerror(r));
		free(err);
		return 1;
	}

	r = cpmsync_store_dump(store, account, folder, write_line, &out);
	if (out.error) {
		fprintf(stderr, "cpmctl: cannot write the output: %s\n", strerror(out.error));
		r = 1;
	} else if (r == -CPMSYNC_E_NOT_FOUND) {
		/* Nothing was printed: "unknown account 'x'" or "account 'x'
		 * has no folder 'y'". */
		fprintf(stderr, "cpmctl: %s in '%s'\n", cpmsync_store_error(store), db);
		r = 1;
	} else if (r < 0) {
		const char *msg = cpmsync_store_error(store);

		fprintf(stderr, "cpmctl: reading '%s': %s\n", db, *msg ? msg : cpmsync_strerror(r));
		r = 1;
	}
	cpmsync_store_close(store);
	return finish_stdout(r);
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
		"status", "sync", "folders", "list", "fetch", "store", "flag",
	};
	const char *config_path = NULL, *cmd;
	int ch;

	/* A closed pipe is a write error that we report (EPIPE), not a
	 * silent death half-way through the output. */
	signal(SIGPIPE, SIG_IGN);

	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return finish_stdout(0);
		case OPT_VERSION:
			printf("cpmctl %s\n", cpmsync_version());
			return finish_stdout(0);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "cpmctl: no command given\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if (str_eq(cmd, "dump"))
		return cmd_dump(argc - optind, argv + optind, config_path);
	for (size_t i = 0; i < ARRAY_SIZE(daemon_commands); i++) {
		if (str_eq(cmd, daemon_commands[i])) {
			fprintf(stderr,
				"cpmctl: %s needs the running daemon's D-Bus API, which this build "
				"does not have yet\n",
				cmd);
			return 1;
		}
	}
	fprintf(stderr, "cpmctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
