/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * cpmsync.conf: parsing, defaults, validation and passwords.
 *
 * Syntax (see agent/cpmsync.conf for an annotated sample):
 *   - UTF-8 text; an optional UTF-8 byte order mark is skipped.  Lines end
 *     with LF or CRLF.  A line may be at most CONFIG_MAX_LINE bytes, the file
 *     at most CONFIG_MAX_SIZE bytes.  NUL bytes, invalid UTF-8 and control
 *     characters other than TAB are refused.
 *   - Sections "[general]" and "[account NAME]", NAME matching
 *     [A-Za-z0-9_-]+ (at most CONFIG_MAX_NAME bytes); at most
 *     CONFIG_MAX_ACCOUNTS accounts.  Each section may appear once.
 *   - "key = value"; keys are lower case and case-sensitive, spaces and tabs
 *     around key and value are dropped.  A key may be set once per section.
 *     An empty value is an error.
 *   - "#" starts a comment at the start of a line (after optional blanks)
 *     or after a space or tab anywhere in a line.  A "#" glued to the
 *     preceding text (pass#word) is part of the value.  There is no quoting:
 *     a value cannot contain " #".
 *   - Path values (database, outbox, password_file, ca_file, client_cert):
 *     a leading "~/" (or a lone "~") is replaced by $HOME; a relative path is resolved
 *     against the directory that holds the configuration file.
 *     password_command is passed to /bin/sh unchanged.
 *   - Unknown sections and unknown keys produce warnings, not errors (the
 *     keys of an unknown section are skipped); a key before the first
 *     section header, or a known key in the wrong section, is an error.
 *
 * Errors are all-or-nothing: a file with any error yields no configuration,
 * so the daemon can keep the last good one.  Error strings have the form
 * "FILE:LINE: reason" (or "FILE: reason" for errors about the whole file).
 *
 * Ownership: a struct config owns every string and array reachable from
 * it; free it with config_free().  Pointers into it stay valid until then.
 * Functions that return a char * through ret_ or as their value hand over
 * ownership: free it with free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/account.h>
#include <cpmsync/limits.h>

#define CONFIG_MAX_SIZE		   (1024 * 1024) /* bytes in the file */
#define CONFIG_MAX_LINE		   4096		 /* bytes in one line, without the EOL */
#define CONFIG_MAX_ACCOUNTS	   256
#define CONFIG_MAX_NAME		   CPMSYNC_ACCOUNT_NAME_MAX
#define CONFIG_MAX_WARNINGS	   64 /* further warnings are summarised */
#define CONFIG_MAX_SYNC_BODIES	   CPMSYNC_SYNC_BODIES_MAX_KIB
#define CONFIG_MAX_TIMEOUT	   3600 /* seconds */
#define CONFIG_MAX_PASSWORD	   CPMSYNC_PASSWORD_MAX
#define CONFIG_PASSWORD_TIMEOUT_MS 60000 /* password_command run time */
#define CONFIG_DEFAULT_CPM_ROOT	   "Default"
#define CONFIG_MAX_COMMAND_OUTPUT  (1024 * 1024) /* bytes it may print */

/* poll_interval, in seconds */
#define CONFIG_POLL_MIN	    1
#define CONFIG_POLL_MAX	    86400 /* a day */
#define CONFIG_POLL_DEFAULT 300

struct config_account {
	char *name;
	char *host;
	uint16_t port; /* always set: explicit, or 993/143 */
	enum cpmsync_security security;
	char *user;
	char *password_file;	    /* absolute path, or NULL */
	char *password_command;	    /* shell command, or NULL; one is set, or neither
				     * when client_cert is (SASL EXTERNAL) */
	char *ca_file;		    /* absolute path, or NULL */
	char *client_cert;	    /* absolute path (PEM certificate + key), or NULL */
	char **folders;		    /* NULL-terminated, at least one pattern */
	int64_t sync_bodies;	    /* CPMSYNC_SYNC_BODIES_ALL, _NONE or KiB */
	unsigned timeout;	    /* seconds for connecting and for each command; 0: default */
	char *cpm_root;		    /* the CPM folder model's root; NULL: CONFIG_DEFAULT_CPM_ROOT */
	unsigned poll_interval;	    /* seconds between change checks of the folders push does
				     * not watch; 0: CONFIG_POLL_DEFAULT */
	bool show_other_namespaces; /* other_namespaces = show (default hide) */
	unsigned line;		    /* line of the [account NAME] header */

	/*
	 * Mutable: the reason the last password lookup made through the
	 * password_cb installed by config_account_to_settings() failed, or
	 * NULL.  Replaced by each failure, cleared by each success, freed by
	 * config_free().  Never contains the password.
	 */
	char *password_error;
};

struct config {
	char *path;		/* the name given to config_load()/_parse_buffer() */
	char *database;		/* absolute path, default applied */
	unsigned database_line; /* line of "database =", 0: the default */
	char *outbox;		/* absolute path, default applied */
	size_t n_accounts;
	struct config_account *accounts; /* in file order */
	size_t n_warnings;
	char **warnings; /* "FILE:LINE: text", not printed by the parser */
};

/*
 * The default configuration file: $XDG_CONFIG_HOME/cpmsync/cpmsync.conf, or
 * $HOME/.config/cpmsync/cpmsync.conf when XDG_CONFIG_HOME is unset, empty or
 * relative.  Returns a string to free(), or NULL if HOME is needed but unset
 * or relative.
 */
char *config_default_path(void);
/*
 * $XDG_DATA_HOME/cpmsync (or $HOME/.local/share/cpmsync), where the
 * default database lives; NULL as for config_default_path().
 */
char *config_default_data_dir(void);

/*
 * Reads and parses the file at path (symbolic links are followed).  On
 * success returns 0 and stores a new config in *ret.  On failure returns
 * -errno for a file that cannot be read (-ENOENT, -EACCES, ...), -EFBIG for
 * a file over CONFIG_MAX_SIZE, or -EINVAL for invalid contents; *ret is left
 * untouched and, if ret_error is not NULL, *ret_error receives the reason
 * ("FILE:LINE: reason") to free().  A relative path is made absolute against
 * the current directory before relative values in it are resolved; messages
 * name the file as given.  A file holding password_command must be owned by
 * the user and not writable by group or others (-EINVAL, at the
 * password_command line); config_parse_buffer() has no file to judge.
 */
int config_load(const char *path, struct config **ret, char **ret_error);

/*
 * The same on a buffer in memory (which need not be NUL-terminated): name is
 * used in messages and, for relative paths in values, its directory part
 * (the current directory if it has none).  Does no file I/O, but reads
 * $HOME and $XDG_DATA_HOME for "~/" and the defaults.
 */
int config_parse_buffer(const char *name, const char *data, size_t len, struct config **ret,
			char **ret_error);

/* Frees c and everything it owns.  Accepts NULL; returns NULL. */
struct config *config_free(struct config *c);

/* The account called name, or NULL.  Borrowed from c. */
const struct config_account *config_find_account(const struct config *c, const char *name);

/*
 * Fills *ret for the library (every field; timeouts are 0, the library's
 * defaults).  The strings and folders are borrowed from a, so a must outlive
 * every use of *ret.  password_cb fetches the password with
 * config_account_password(); on failure it returns a negative errno and
 * records the reason in a->password_error (the only field it changes).
 */
void config_account_to_settings(const struct config_account *a, struct cpmsync_account *ret);

/*
 * Whether two accounts have the same settings (every key but cpm_root and
 * poll_interval, including the name; the line numbers and password_error are ignored).  For
 * reloads: an account whose settings differ has to be re-added.
 */
bool config_account_equal(const struct config_account *a, const struct config_account *b);
/* The account's CPM root: cpm_root, or CONFIG_DEFAULT_CPM_ROOT when not set
 * (borrowed).  Not part of config_account_equal(): a new root needs no
 * reconnection. */
const char *config_account_cpm_root(const struct config_account *a);
/* The account's poll interval in milliseconds: poll_interval, or
 * CONFIG_POLL_DEFAULT when not set.  Not part of
 * config_account_equal(): it is applied without reconnecting. */
unsigned config_account_poll_interval_ms(const struct config_account *a);

/*
 * Fetches the password of a from its password_file or password_command.
 *
 * password_file is opened with O_NOFOLLOW (a symbolic link is refused) and
 * must be a regular file that neither group nor others can access (mode &
 * 077 == 0).  password_command runs as /bin/sh -c COMMAND with stdin from
 * /dev/null, stdout captured and stderr inherited; it must exit with status
 * 0 within CONFIG_PASSWORD_TIMEOUT_MS and print at most
 * CONFIG_MAX_COMMAND_OUTPUT bytes (it is killed otherwise).  Output that a
 * background process it started writes after it exited is not waited for.
 * This call blocks while the command runs (the password_cb too), and reaps
 * the child with waitpid(): the caller must not set SIGCHLD to SIG_IGN or
 * reap children with waitpid(-1, ...) concurrently.
 *
 * The password is the first line (without CR/LF) of the file or the output;
 * it must be non-empty, at most CONFIG_MAX_PASSWORD bytes and contain no NUL.
 *
 * On success returns 0 and stores the password in *ret_password (wipe it
 * with explicit_bzero() before free()ing it).  On failure returns a negative
 * errno and stores a reason to free() in *ret_error if not NULL.  The reason
 * names the file or says "password_command ..." but never contains the
 * password or the command's output.  Every internal buffer that held secret
 * bytes is wiped.
 */
int config_account_password(const struct config_account *a, char **ret_password, char **ret_error);

/*
 * password_command without blocking: runs command as config_account_password()
 * does, on loop (a pipe and a pidfd as sources, and a timer), and calls
 * done once with what config_account_password() would return: r, and the
 * password (r == 0; wipe it before free()ing it) or the reason (r < 0),
 * both to free() by done.  timeout_ms 0: CONFIG_PASSWORD_TIMEOUT_MS.  The
 * job is freed after done returns.  Returns 0 and *ret, or -errno and a
 * reason in *ret_error (done is then never called).
 */
struct cpmsync_loop;
struct password_job;
typedef void (*password_job_done_t)(int r, char *password, char *error, void *userdata);
int password_job_start(struct cpmsync_loop *loop, const char *command, unsigned timeout_ms,
		       password_job_done_t done, void *userdata, struct password_job **ret,
		       char **ret_error);
/* Kills and reaps the command; done is not called.  Accepts NULL; returns NULL. */
struct password_job *password_job_cancel(struct password_job *j);
