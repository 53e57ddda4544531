/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Persistence for Manager1.AddAccount / RemoveAccount: edits cpmsync.conf
 * in place of the user, keeping everything else in it byte for byte.
 *
 * Both functions build the new text in memory, check it with
 * config_parse_buffer() under config_path (so the daemon never reads a
 * file it would refuse, and relative paths resolve as the daemon resolves
 * them), write it to a temporary file in the same directory, fsync it,
 * rename it over the file (keeping the file's mode; a new file is 0600)
 * and fsync the directory.  If config_path is a symbolic link, the file it
 * points to is replaced and the link kept.  If the file changed on disk
 * while it was being edited, nothing is written and -EAGAIN is returned.
 * The daemon notices the rename through its config_watch and reloads.
 *
 * On failure they return a negative errno (or -CPMSYNC_E_NOT_FOUND) and,
 * if ret_error is not NULL, a reason to free() that names the file or the
 * offending key; nothing is changed then.
 */

#include <cpmsync/settings.h>

#include "config.h"

/*
 * Appends an [account NAME] section:
 *
 *   [account NAME]
 *   host = HOST
 *   port = PORT                (only when s->port is not 0)
 *   security = SECURITY        (only when set)
 *   user = USER
 *   password_file = PATH
 *   ca_file = PATH             (only when set, or pems->ca given)
 *   client_cert = PATH         (only when pems->client is given)
 *   folders = PATTERN ...      (only when set; space-separated)
 *   sync_bodies = VALUE        (only when set)
 *
 * A missing file is created (with its directory, mode 0700) with only a
 * comment line and the section.  A password given in clear is written to
 * DIR/NAME.password (DIR: the directory of config_path; O_EXCL,
 * O_NOFOLLOW, mode 0600, the password and a newline), and password_file
 * names that file by its absolute path.  A CA certificate given as bytes
 * (pems->ca, PEM) is written the same way to DIR/NAME.ca.pem and named by
 * ca_file, a client certificate with its key (pems->client) to
 * DIR/NAME.client.pem and named by client_cert.  Every file made is removed
 * again if the configuration cannot be written.  pems may be NULL.
 *
 * -EINVAL: an invalid name ([A-Za-z0-9_-]+, at most CONFIG_MAX_NAME
 * bytes), a value containing a line break or another control character,
 * " #" (it would start a comment), leading or trailing blanks, a folder
 * pattern with a blank, not exactly one of password and password_file, or
 * a result the parser refuses (its message is returned), or an existing
 * file that is invalid, or both s->ca_file and pems->ca.  -EEXIST: the
 * account exists, or one of the files exists.  Other -errno: I/O.
 */
struct config_account_pems {
	const void *ca; /* or NULL */
	size_t ca_len;
	const void *client; /* or NULL */
	size_t client_len;
};

int config_write_add_account(const char *config_path, const char *name,
			     const struct cpmsync_account_settings *s,
			     const struct config_account_pems *pems, char **ret_error);

/*
 * Removes the [account NAME] section: from its header line to the line
 * before the next section header (or the end of the file), except that a
 * block of comment lines that directly precedes (no blank line between)
 * the next header is kept with that header, since it describes it.
 * Every other byte is kept.  DIR/NAME.password, DIR/NAME.ca.pem and
 * DIR/NAME.client.pem are deleted afterwards, each only if the account's
 * password_file, ca_file or client_cert names it.  -CPMSYNC_E_NOT_FOUND if the file
 * or the section does not exist; -EINVAL for an invalid name or a result
 * the parser refuses.
 */
int config_write_remove_account(const char *config_path, const char *name, char **ret_error);
