/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for agent/config.c: syntax, defaults, errors, passwords. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpmsync/account.h>
#include <cpmsync/loop.h>

#include "testlib.h"
#include "config.h"

#define NAME	      "/cfg/dir/cpmsync.conf"
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* An account section that is complete: 4 lines. */
#define ACCT(n) "[account " n "]\nhost = h\nuser = u\npassword_file = /p\n"

static char tmpdir[PATH_MAX];
static char *const SENTINEL = (char *)"untouched";

static void setup(void)
{
	char home[PATH_MAX + 8];

	strcpy(tmpdir, "/tmp/test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	ck_assert_int_eq(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	unsetenv("XDG_DATA_HOME");
	unsetenv("XDG_CONFIG_HOME");
	umask(022);
}

static void teardown(void)
{
	/* Some tests chdir() into tmpdir. */
	if (chdir("/") < 0)
		perror("chdir");
	test_rm_rf(tmpdir);
}

/* tmpdir/name, in a static ring so that a few can be alive at once. */
static const char *tmp_path(const char *name)
{
	static char ring[8][PATH_MAX + 64];
	static unsigned next;
	char *p = ring[next++ % 8];

	snprintf(p, sizeof(ring[0]), "%s/%s", tmpdir, name);
	return p;
}

static const char *write_file(const char *name, const char *data, size_t len, mode_t mode)
{
	const char *path = tmp_path(name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static struct config *parse_ok(const char *text)
{
	struct config *c = NULL;
	char *error = NULL;
	int r = config_parse_buffer(NAME, text, strlen(text), &c, &error);

	ck_assert_msg(r == 0, "unexpected error: %s", error);
	ck_assert_ptr_null(error);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* Parses text that must fail; returns the message to free. */
static char *parse_fail_len(const char *text, size_t len)
{
	struct config *c = (struct config *)SENTINEL;
	char *error = NULL;
	int r = config_parse_buffer(NAME, text, len, &c, &error);

	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_eq(c, (struct config *)SENTINEL);
	ck_assert_ptr_nonnull(error);
	return error;
}

static void assert_error(const char *error, unsigned line, const char *what)
{
	char prefix[256];

	if (line)
		snprintf(prefix, sizeof(prefix), NAME ":%u: ", line);
	else
		snprintf(prefix, sizeof(prefix), NAME ": ");
	ck_assert_msg(strncmp(error, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'",
		      error, prefix);
	ck_assert_msg(strstr(error, what), "'%s' does not contain '%s'", error, what);
}

/* ------------------------------------------------------------------------ */

static const char full_file[] = "# cpmsync configuration\n"				   /* 1 */
				"\n"							   /* 2 */
				"[general]\n"						   /* 3 */
				"database = ~/mail/store.db   # the store\n"		   /* 4 */
				"\toutbox\t=\tdrop   \n"				   /* 5 */
				"   # indented comment\n"				   /* 6 */
				"[account work]         # one section per account\n"	   /* 7 */
				"host     = imap.example.org\n"				   /* 8 */
				"port     = 1993        # non-default\n"		   /* 9 */
				"security = starttls\n"					   /* 10 */
				"user     = alice@example.org\n"			   /* 11 */
				"password_file = secrets/work.pw\n"			   /* 12 */
				"ca_file  = /etc/ssl/private-ca.pem\n"			   /* 13 */
				"folders  = INBOX  Archive/*\tLists/%   # three\n"	   /* 14 */
				"sync_bodies = 512\n"					   /* 15 */
				"\n"							   /* 16 */
				"[account local-2_x]\n"					   /* 17 */
				"host = 127.0.0.1\n"					   /* 18 */
				"security = none\n"					   /* 19 */
				"user = bob\n"						   /* 20 */
				"password_command = pass show mail#local | head -n1 # x\n" /* 21 */
				"sync_bodies = none\n"					   /* 22 */
				"[account third]\n"					   /* 23 */
				"host = imap.example.net\n"				   /* 24 */
				"user = carol\n"					   /* 25 */
				"password_file = /run/pw\n"				   /* 26 */
				"sync_bodies = all"; /* 27, no EOL */

START_TEST(test_timeout)
{
	struct config *c = parse_ok("[account w]\nhost=h\nuser=u\npassword_file=/p\ntimeout = 7\n"
				    "[account d]\nhost=h\nuser=u\npassword_file=/p\n");
	struct cpmsync_account set;

	ck_assert_uint_eq(c->accounts[0].timeout, 7);
	config_account_to_settings(&c->accounts[0], &set);
	ck_assert_uint_eq(set.connect_timeout_ms, 7000);
	ck_assert_uint_eq(set.command_timeout_ms, 7000);
	/* Unset: 0, the library's defaults. */
	ck_assert_uint_eq(c->accounts[1].timeout, 0);
	config_account_to_settings(&c->accounts[1], &set);
	ck_assert_uint_eq(set.command_timeout_ms, 0);
	ck_assert(!config_account_equal(&c->accounts[0], &c->accounts[1]));
	config_free(c);
}
END_TEST

/* poll_interval: seconds; unset is the default, 300 s; not part of
 * config_account_equal() (applied without reconnecting). */
START_TEST(test_poll_interval)
{
	struct config *c = parse_ok("[account w]\nhost=h\nuser=u\npassword_file=/p\n"
				    "poll_interval = 2 # seconds\n"
				    "[account d]\nhost=h\nuser=u\npassword_file=/p\n"
				    "[account m]\nhost=h\nuser=u\npassword_file=/p\n"
				    "poll_interval=86400\n");

	ck_assert_uint_eq(c->accounts[0].poll_interval, 2);
	ck_assert_uint_eq(config_account_poll_interval_ms(&c->accounts[0]), 2000);
	ck_assert_uint_eq(c->accounts[1].poll_interval, 0);
	ck_assert_uint_eq(config_account_poll_interval_ms(&c->accounts[1]), 300000);
	ck_assert_uint_eq(config_account_poll_interval_ms(&c->accounts[2]), 86400000u);
	config_free(c);
	c = parse_ok("[account d]\nhost=h\nuser=u\npassword_file=/p\n");
	{
		struct config *c2 = parse_ok("[account d]\nhost=h\nuser=u\npassword_file=/p\n"
					     "poll_interval=5\n");

		ck_assert(config_account_equal(&c->accounts[0], &c2->accounts[0]));
		config_free(c2);
	}
	config_free(c);
}
END_TEST

/* cpm_root: default "Default", a folder name, or "" for the top level;
 * not part of config_account_equal(). */
START_TEST(test_cpm_root)
{
	struct config *c = parse_ok("[account d]\nhost=h\nuser=u\npassword_file=/p\n"
				    "[account r]\nhost=h\nuser=u\npassword_file=/p\n"
				    "cpm_root = RCS/Default # deeper\n"
				    "[account t]\nhost=h\nuser=u\npassword_file=/p\n"
				    "cpm_root = \"\"\n");

	ck_assert_ptr_null(c->accounts[0].cpm_root);
	ck_assert_str_eq(config_account_cpm_root(&c->accounts[0]), "Default");
	ck_assert_str_eq(config_account_cpm_root(&c->accounts[1]), "RCS/Default");
	ck_assert_str_eq(config_account_cpm_root(&c->accounts[2]), "");
	ck_assert(config_account_equal(&c->accounts[0], &c->accounts[0]));
	config_free(c);
	c = parse_ok("[account d]\nhost=h\nuser=u\npassword_file=/p\n");
	{
		struct config *c2 = parse_ok("[account d]\nhost=h\nuser=u\npassword_file=/p\n"
					     "cpm_root=Other\n");

		ck_assert(config_account_equal(&c->accounts[0], &c2->accounts[0]));
		config_free(c2);
	}
	config_free(c);
}
END_TEST

/* other_namespaces: hide (the default) or show; handed to the library and
 * part of config_account_equal() (a change reconnects). */
START_TEST(test_other_namespaces)
{
	struct config *c = parse_ok("[account d]\nhost=h\nuser=u\npassword_file=/p\n"
				    "[account h]\nhost=h\nuser=u\npassword_file=/p\n"
				    "other_namespaces = hide\n"
				    "[account s]\nhost=h\nuser=u\npassword_file=/p\n"
				    "other_namespaces = show # under #Shared/...\n");
	struct cpmsync_account acc;

	ck_assert(!c->accounts[0].show_other_namespaces);
	ck_assert(!c->accounts[1].show_other_namespaces);
	ck_assert(c->accounts[2].show_other_namespaces);
	config_account_to_settings(&c->accounts[0], &acc);
	ck_assert_int_eq(acc.show_other_namespaces, 0);
	config_account_to_settings(&c->accounts[2], &acc);
	ck_assert_int_ne(acc.show_other_namespaces, 0);
	c->accounts[2].name[0] = 'h';
	c->accounts[2].show_other_namespaces = false;
	ck_assert(config_account_equal(&c->accounts[1], &c->accounts[2]));
	c->accounts[2].show_other_namespaces = true;
	ck_assert(!config_account_equal(&c->accounts[1], &c->accounts[2]));
	config_free(c);
}
END_TEST

START_TEST(test_full_file)
{
	struct config *c = parse_ok(full_file);
	const struct config_account *a;
	char expect[PATH_MAX + 64];

	ck_assert_str_eq(c->path, NAME);
	snprintf(expect, sizeof(expect), "%s/home/mail/store.db", tmpdir);
	ck_assert_str_eq(c->database, expect);
	ck_assert_str_eq(c->outbox, "/cfg/dir/drop");
	ck_assert_uint_eq(c->n_warnings, 0);
	ck_assert_uint_eq(c->n_accounts, 3);

	a = &c->accounts[0];
	ck_assert_str_eq(a->name, "work");
	ck_assert_uint_eq(a->line, 7);
	ck_assert_str_eq(a->host, "imap.example.org");
	ck_assert_uint_eq(a->port, 1993);
	ck_assert_int_eq(a->security, CPMSYNC_SECURITY_STARTTLS);
	ck_assert_str_eq(a->user, "alice@example.org");
	ck_assert_str_eq(a->password_file, "/cfg/dir/secrets/work.pw");
	ck_assert_ptr_null(a->password_command);
	ck_assert_str_eq(a->ca_file, "/etc/ssl/private-ca.pem");
	ck_assert_str_eq(a->folders[0], "INBOX");
	ck_assert_str_eq(a->folders[1], "Archive/*");
	ck_assert_str_eq(a->folders[2], "Lists/%");
	ck_assert_ptr_null(a->folders[3]);
	ck_assert_int_eq(a->sync_bodies, 512);
	ck_assert_ptr_null(a->password_error);

	a = &c->accounts[1];
	ck_assert_str_eq(a->name, "local-2_x");
	ck_assert_uint_eq(a->line, 17);
	ck_assert_int_eq(a->security, CPMSYNC_SECURITY_NONE);
	ck_assert_uint_eq(a->port, 143);
	ck_assert_ptr_null(a->password_file);
	/* A '#' glued to text is not a comment. */
	ck_assert_str_eq(a->password_command, "pass show mail#local | head -n1");
	ck_assert_ptr_null(a->ca_file);
	ck_assert_str_eq(a->folders[0], "*");
	ck_assert_ptr_null(a->folders[1]);
	ck_assert_int_eq(a->sync_bodies, CPMSYNC_SYNC_BODIES_NONE);

	a = &c->accounts[2];
	ck_assert_uint_eq(a->port, 993);
	ck_assert_int_eq(a->security, CPMSYNC_SECURITY_TLS);
	ck_assert_int_eq(a->sync_bodies, CPMSYNC_SYNC_BODIES_ALL);

	ck_assert_ptr_eq(config_find_account(c, "third"), a);
	ck_assert_ptr_eq(config_find_account(c, "work"), &c->accounts[0]);
	ck_assert_ptr_null(config_find_account(c, "Work"));
	ck_assert_ptr_null(config_find_account(c, "nope"));
	ck_assert_ptr_null(config_free(c));
}
END_TEST

START_TEST(test_crlf_bom_no_eol)
{
	static const char text[] = "\xEF\xBB\xBF[general]\r\n"
				   "database = /d/b \r\n"
				   "\r\n"
				   "[account a]\r\n"
				   "host = ::1\r\n"
				   "user = \xC3\xA9l\xC3\xA8ve \xE2\x9C\x93\r\n"
				   "password_file = /p";
	struct config *c = parse_ok(text);

	ck_assert_str_eq(c->database, "/d/b");
	ck_assert_uint_eq(c->accounts[0].line, 4);
	ck_assert_str_eq(c->accounts[0].host, "::1");
	ck_assert_str_eq(c->accounts[0].user, "\xC3\xA9l\xC3\xA8ve \xE2\x9C\x93");
	config_free(c);
}
END_TEST

START_TEST(test_empty_file)
{
	struct config *c = parse_ok("");

	ck_assert_uint_eq(c->n_accounts, 0);
	ck_assert_ptr_null(c->accounts);
	ck_assert_uint_eq(c->n_warnings, 0);
	config_free(c);
	ck_assert_ptr_null(config_free(NULL));
}
END_TEST

START_TEST(test_defaults_xdg)
{
	struct config *c;

	setenv("XDG_DATA_HOME", "/xdg/data", 1);
	c = parse_ok(ACCT("a") "[account b]\nhost=h\nuser=u\n"
			       "password_file=/p\nsecurity=starttls\n");
	ck_assert_str_eq(c->database, "/xdg/data/cpmsync/store.db");
	ck_assert_str_eq(c->outbox, "/xdg/data/cpmsync/outbox");
	ck_assert_uint_eq(c->accounts[0].port, 993);
	ck_assert_int_eq(c->accounts[0].security, CPMSYNC_SECURITY_TLS);
	ck_assert_str_eq(c->accounts[0].folders[0], "*");
	ck_assert_ptr_null(c->accounts[0].folders[1]);
	ck_assert_int_eq(c->accounts[0].sync_bodies, CPMSYNC_SYNC_BODIES_ALL);
	ck_assert_ptr_null(c->accounts[0].ca_file);
	ck_assert_uint_eq(c->accounts[1].port, 143);
	config_free(c);
}
END_TEST

START_TEST(test_defaults_home)
{
	char expect[PATH_MAX + 64];
	struct config *c;

	/* Unset, empty and relative XDG_DATA_HOME all fall back to HOME. */
	for (int i = 0; i < 3; i++) {
		if (i == 1)
			setenv("XDG_DATA_HOME", "", 1);
		if (i == 2)
			setenv("XDG_DATA_HOME", "rel/data", 1);
		c = parse_ok("[general]\n");
		snprintf(expect, sizeof(expect), "%s/home/.local/share/cpmsync/store.db", tmpdir);
		ck_assert_str_eq(c->database, expect);
		snprintf(expect, sizeof(expect), "%s/home/.local/share/cpmsync/outbox", tmpdir);
		ck_assert_str_eq(c->outbox, expect);
		config_free(c);
	}
}
END_TEST

START_TEST(test_defaults_no_home)
{
	struct config *c;
	char *error;

	unsetenv("HOME");
	error = parse_fail_len("", 0);
	assert_error(error, 0, "database is not set and neither $XDG_DATA_HOME nor $HOME");
	free(error);

	/* Only the missing one is named. */
	error = parse_fail_len("[general]\ndatabase=/d\n", 22);
	assert_error(error, 0, "outbox is not set");
	free(error);

	c = parse_ok("[general]\ndatabase=/d\noutbox=/o\n");
	ck_assert_str_eq(c->outbox, "/o");
	config_free(c);

	error = parse_fail_len("[general]\ndatabase=~/d\n", 23);
	assert_error(error, 2, "cannot expand '~': $HOME is not set");
	free(error);
}
END_TEST

START_TEST(test_default_path)
{
	char expect[PATH_MAX + 64];
	char *p;

	p = config_default_path();
	snprintf(expect, sizeof(expect), "%s/home/.config/cpmsync/cpmsync.conf", tmpdir);
	ck_assert_str_eq(p, expect);
	free(p);

	setenv("XDG_CONFIG_HOME", "/xdg/conf/", 1);
	p = config_default_path();
	ck_assert_str_eq(p, "/xdg/conf/cpmsync/cpmsync.conf");
	free(p);

	setenv("XDG_CONFIG_HOME", "relative", 1);
	p = config_default_path();
	ck_assert_str_eq(p, expect);
	free(p);

	unsetenv("HOME");
	ck_assert_ptr_null(config_default_path());
	setenv("HOME", "not/absolute", 1);
	ck_assert_ptr_null(config_default_path());
	setenv("XDG_CONFIG_HOME", "/x", 1);
	p = config_default_path();
	ck_assert_str_eq(p, "/x/cpmsync/cpmsync.conf");
	free(p);
}
END_TEST

START_TEST(test_paths)
{
	struct config *c;
	char expect[PATH_MAX + 64];
	char *error = NULL;
	int r;

	c = parse_ok("[general]\ndatabase = ~\noutbox = ../up//x/\n");
	snprintf(expect, sizeof(expect), "%s/home", tmpdir);
	ck_assert_str_eq(c->database, expect);
	ck_assert_str_eq(c->outbox, "/cfg/dir/../up//x/");
	config_free(c);

	/* HOME with a trailing slash gives no double slash. */
	setenv("HOME", "/h/", 1);
	c = parse_ok("[general]\ndatabase = ~/db\noutbox=/o\n");
	ck_assert_str_eq(c->database, "/h/db");
	config_free(c);

	/* A file at the root. */
	r = config_parse_buffer("/c.conf", "[general]\ndatabase=d\n", 21, &c, &error);
	ck_assert_int_eq(r, 0);
	ck_assert_str_eq(c->database, "/d");
	config_free(c);

	/* A relative name resolves against the current directory. */
	ck_assert_int_eq(chdir(tmpdir), 0);
	r = config_parse_buffer("sub/c.conf", "[general]\ndatabase=d\n", 21, &c, &error);
	ck_assert_int_eq(r, 0);
	snprintf(expect, sizeof(expect), "%s/sub/d", tmpdir);
	ck_assert_str_eq(c->database, expect);
	config_free(c);
	r = config_parse_buffer("c.conf", "[general]\ndatabase=d\n", 21, &c, &error);
	ck_assert_int_eq(r, 0);
	snprintf(expect, sizeof(expect), "%s/d", tmpdir);
	ck_assert_str_eq(c->database, expect);
	config_free(c);

	/* password_command is not a path: left as it is. */
	c = parse_ok("[account a]\nhost=h\nuser=u\npassword_command=~/bin/pw\n");
	ck_assert_str_eq(c->accounts[0].password_command, "~/bin/pw");
	config_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors, one line and reason each */

struct error_case {
	const char *text;
	size_t len; /* 0: strlen(text) */
	unsigned line;
	const char *what;
};

#define BIN(s) s, sizeof(s) - 1

static const struct error_case error_cases[] = {
	{ "[account work]\nhost = h\nsecurity = ssl\n", 0, 3,
	  "unknown security 'ssl' (expected tls, starttls or none)" },
	{ "[account work]\nhost = h\nsecurity = TLS\n", 0, 3, "unknown security 'TLS'" },
	{ "# c\n\nhost = h\n", 0, 3, "key 'host' outside an [account] section" },
	{ "[general]\nhost = h\n", 0, 2, "key 'host' outside an [account] section" },
	{ "[account w]\ndatabase = /x\n", 0, 2, "key 'database' outside the [general] section" },
	{ "outbox = /x\n", 0, 1, "key 'outbox' outside the [general] section" },
	{ "foo = bar\n", 0, 1, "key 'foo' outside any section" },
	{ ACCT("work") ACCT("other") "\n" ACCT("work"), 0, 10,
	  "duplicate account 'work' (first at line 1)" },
	{ "[general]\n[general]\n", 0, 2, "duplicate section [general] (first at line 1)" },
	{ "[account w]\nuser = u\npassword_file = /p\n", 0, 1, "account 'w': host is not set" },
	{ ACCT("a") "\n[account w]\nuser = u\npassword_file = /p\n" ACCT("b"), 0, 6,
	  "account 'w': host is not set" },
	{ "[account w]\nhost = h\npassword_file = /p\n", 0, 1, "account 'w': user is not set" },
	{ "[account w]\nhost=h\nuser=u\npassword_file=/p\npassword_command=c\n", 0, 5,
	  "account 'w': both password_file (line 4) and password_command (line 5) "
	  "are set" },
	{ "[account w]\nhost=h\nuser=u\n\n", 0, 1,
	  "account 'w': neither password_file nor password_command is set" },
	{ "[account w]\nhost=h\nport=0\n", 0, 3, "port 0 is out of range (1-65535)" },
	{ "[account w]\nhost=h\nport=65536\n", 0, 3, "port 65536 is out of range (1-65535)" },
	{ "[account w]\nhost=h\nport=99999999999999999999999999\n", 0, 3,
	  "is out of range (1-65535)" },
	{ "[account w]\nhost=h\nport=imap\n", 0, 3, "port 'imap' is not a number" },
	{ "[account w]\nhost=h\nport=-1\n", 0, 3, "port '-1' is not a number" },
	{ "[account w]\nhost=h\nport=+143\n", 0, 3, "port '+143' is not a number" },
	{ "[account w]\nhost=h\nport=14 3\n", 0, 3, "port '14 3' is not a number" },
	{ "[account w]\nhost=h\nport=\n", 0, 3, "empty value for 'port'" },
	{ "[account w]\nhost=h\nport= # comment\n", 0, 3, "empty value for 'port'" },
	{ "[general]\ndatabase\n", 0, 2, "missing '=' in 'database'" },
	{ "[general]\n= x\n", 0, 2, "missing key before '='" },
	{ "[general]\nda ta = x\n", 0, 2, "invalid key 'da ta'" },
	{ "[general\n", 0, 1, "bad section header '[general'" },
	{ "[general] x\n", 0, 1, "bad section header '[general] x'" },
	{ "[general]#x\n", 0, 1, "bad section header" },
	{ "[]\n", 0, 1, "bad section header '[]'" },
	{ "[ ]\n", 0, 1, "bad section header '[]'" },
	{ "[general x]\n", 0, 1, "bad section header '[general x]'" },
	{ "[account]\n", 0, 1, "missing account name" },
	{ "[account a.b]\n", 0, 1, "invalid account name 'a.b'" },
	{ "[account a b]\n", 0, 1, "invalid account name 'a b'" },
	{ "[account \xC3\xA9]\n", 0, 1, "invalid account name" },
	{ "[account "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
	  0, 1, "is too long (limit 64)" },
	{ "[account w]\nhost=h\nhost=i\n", 0, 3, "duplicate key 'host' (first set at line 2)" },
	{ "[general]\noutbox=/a\ndatabase=/b\n\noutbox=/c\n", 0, 5,
	  "duplicate key 'outbox' (first set at line 2)" },
	{ "[account w]\nhost=\n", 0, 2, "empty value for 'host'" },
	{ "[account w]\nhost=a b\n", 0, 2, "invalid host 'a b'" },
	{ "[account w]\nhost=a/b\n", 0, 2, "invalid host 'a/b'" },
	{ "[account w]\nhost=imap.example.org\nsecurity=none\nuser=u\n"
	  "password_file=/p\n",
	  0, 3, "security 'none'" },
	{ "[account w]\nsecurity=none\nhost=imap.example.org\nuser=u\n"
	  "password_file=/p\n",
	  0, 2,
	  "only allowed for loopback hosts (127.0.0.0/8, ::1, localhost), not "
	  "'imap.example.org'" },
	{ "[general]\ndatabase = ~bob/x\n", 0, 2, "database '~bob/x': only '~/' is expanded" },
	{ "[account w]\nhost=h\nca_file=~x\n", 0, 3, "ca_file '~x'" },
	{ "[account w]\nsync_bodies=0\n", 0, 2, "sync_bodies 0 is out of range (1-4194304 KiB" },
	{ "[account w]\nsync_bodies=4194305\n", 0, 2, "sync_bodies 4194305 is out of range" },
	{ "[account w]\nsync_bodies=1M\n", 0, 2,
	  "invalid sync_bodies '1M' (expected all, none or a size in KiB)" },
	{ "[account w]\nsync_bodies=ALL\n", 0, 2, "invalid sync_bodies 'ALL'" },
	{ "[account w]\nsync_bodies=-1\n", 0, 2, "invalid sync_bodies '-1'" },
	{ "[account w]\nother_namespaces=yes\n", 0, 2,
	  "invalid other_namespaces 'yes' (expected hide or show)" },
	{ "[account w]\nother_namespaces=Show\n", 0, 2, "invalid other_namespaces 'Show'" },
	{ "[account w]\ntimeout=0\n", 0, 2, "timeout 0 is out of range (1-3600 seconds)" },
	{ "[account w]\ntimeout=3601\n", 0, 2, "timeout 3601 is out of range" },
	{ "[account w]\ntimeout=5s\n", 0, 2, "invalid timeout '5s' (expected seconds)" },
	{ "[account w]\npoll_interval=0\n", 0, 2,
	  "poll_interval 0 is out of range (1-86400 seconds)" },
	{ "[account w]\npoll_interval=86401\n", 0, 2,
	  "poll_interval 86401 is out of range (1-86400 seconds)" },
	{ "[account w]\npoll_interval=5m\n", 0, 2,
	  "invalid poll_interval '5m' (expected seconds)" },
	{ "[account w]\npoll_interval=-5\n", 0, 2,
	  "invalid poll_interval '-5' (expected seconds)" },
	{ "[general]\npoll_interval=5\n", 0, 2,
	  "key 'poll_interval' outside an [account] section" },
	{ "[account w]\nfolders=\n", 0, 2, "empty value for 'folders'" },
	{ "[account w]\ncpm_root=\n", 0, 2, "empty value for 'cpm_root'" },
	{ "[account w]\ncpm_root=/Default\n", 0, 2,
	  "cpm_root '/Default' has an empty level (a '/' at either end or two in a row)" },
	{ "[account w]\ncpm_root=a//b\n", 0, 2, "cpm_root 'a//b' has an empty level" },
	{ "[account w]\ncpm_root=inbox\n", 0, 2, "cpm_root 'inbox' cannot be INBOX" },
	{ "[general]\ncpm_root=Default\n", 0, 2, "key 'cpm_root' outside an [account] section" },
	{ BIN("[general]\n# a\0b\n"), 2, "NUL byte" },
	{ BIN("\0"), 1, "NUL byte" },
	{ "[general]\n\n#\xC0\xAF\n", 0, 3, "invalid UTF-8" },
	{ "#\xED\xA0\x80\n", 0, 1, "invalid UTF-8" },	  /* surrogate */
	{ "#\xF4\x90\x80\x80\n", 0, 1, "invalid UTF-8" }, /* > U+10FFFF */
	{ "#\xE0\x80\xAF\n", 0, 1, "invalid UTF-8" },	  /* overlong */
	{ "#\xF5\x80\x80\x80\n", 0, 1, "invalid UTF-8" },
	{ "#\xE2\x82\n", 0, 1, "invalid UTF-8" }, /* truncated */
	{ "#\xE2\x82", 0, 1, "invalid UTF-8" },	  /* truncated at EOF */
	{ "#\x80\n", 0, 1, "invalid UTF-8" },
	{ "#\xFF\n", 0, 1, "invalid UTF-8" },
	{ "[general]\ndatabase=\x1B[31m\n", 0, 2, "control character 0x1B" },
	{ "#\x7F\n", 0, 1, "control character 0x7F" },
	{ "#a\rb\n", 0, 1, "control character 0x0D" },
	{ "[general]\r\n#\r\r\n", 0, 2, "control character 0x0D" },
	{ "#\xC2\x9B\n", 0, 1, "control character U+009B" },
	/* The first error wins. */
	{ "[account w]\nport=x\nsecurity=ssl\n", 0, 2, "port 'x'" },
};

START_TEST(test_errors)
{
	const struct error_case *t = &error_cases[_i];
	char *error = parse_fail_len(t->text, t->len ? t->len : strlen(t->text));

	assert_error(error, t->line, t->what);
	ck_assert_ptr_null(strchr(error, '\n'));
	free(error);
}
END_TEST

/* A stray line that is no setting (a password pasted by mistake) is not
 * repeated in the error, which goes to the log and Manager1.ConfigError. */
START_TEST(test_error_hides_stray_line)
{
	char *error = parse_fail_len("[general]\nTr0ub4dor&3\n", 22);

	assert_error(error, 2,
		     "missing '=' (expected 'key = value' or a [section] header; the line is not "
		     "repeated here, as it may hold a secret)");
	ck_assert_ptr_null(strstr(error, "Tr0ub4dor"));
	free(error);
}
END_TEST

START_TEST(test_error_null_ret_error)
{
	struct config *c = NULL;

	ck_assert_int_eq(config_parse_buffer(NAME, "[", 1, &c, NULL), -EINVAL);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_line_limit)
{
	size_t n = strlen("#") + CONFIG_MAX_LINE + 2;
	char *text = malloc(n + 16);
	struct config *c;
	char *error;

	/* Exactly CONFIG_MAX_LINE bytes (plus CRLF) is fine. */
	strcpy(text, "[general]\n#");
	memset(text + 11, 'x', CONFIG_MAX_LINE - 1);
	strcpy(text + 10 + CONFIG_MAX_LINE, "\r\n");
	c = parse_ok(text);
	config_free(c);

	strcpy(text + 10 + CONFIG_MAX_LINE, "x\n");
	error = parse_fail_len(text, strlen(text));
	assert_error(error, 2, "line too long (more than 4096 bytes)");
	free(error);
	free(text);
}
END_TEST

START_TEST(test_file_limit)
{
	size_t n = CONFIG_MAX_SIZE + 1;
	char *text = malloc(n);
	struct config *c;
	char *error;

	/* 1 MiB of comment lines is fine, one byte more is not. */
	memset(text, '#', n);
	for (size_t i = 99; i < n; i += 100)
		text[i] = '\n';
	c = NULL;
	ck_assert_int_eq(config_parse_buffer(NAME, text, n - 1, &c, &error), 0);
	config_free(c);
	error = parse_fail_len(text, n);
	assert_error(error, 0, "file too large (1048577 bytes, limit 1048576)");
	free(error);
	free(text);
}
END_TEST

START_TEST(test_account_limit)
{
	size_t alloc = (CONFIG_MAX_ACCOUNTS + 1) * 80;
	char *text = malloc(alloc);
	size_t len = 0;
	struct config *c;
	char *error;

	for (int i = 0; i < CONFIG_MAX_ACCOUNTS; i++)
		len += (size_t)snprintf(text + len, alloc - len,
					"[account a%d]\nhost=h\nuser=u\n"
					"password_file=/p\n",
					i);
	c = parse_ok(text);
	ck_assert_uint_eq(c->n_accounts, CONFIG_MAX_ACCOUNTS);
	ck_assert_str_eq(c->accounts[CONFIG_MAX_ACCOUNTS - 1].name, "a255");
	ck_assert_ptr_eq(config_find_account(c, "a200"), &c->accounts[200]);
	config_free(c);

	snprintf(text + len, alloc - len, "[account last]\n");
	error = parse_fail_len(text, strlen(text));
	assert_error(error, CONFIG_MAX_ACCOUNTS * 4 + 1, "too many accounts (limit 256)");
	free(error);
	free(text);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Warnings */

START_TEST(test_warnings)
{
	struct config *c = parse_ok("[general]\n"
				    "colour = blue\n"
				    "[account a]\n"
				    "host = h\n"
				    "user = u\n"
				    "password_file = /p\n"
				    "Host = x\n"
				    "[Account b]\n"
				    "host = ignored\n"
				    "anything = ignored\n"
				    "[extras here]\n");

	ck_assert_uint_eq(c->n_accounts, 1);
	ck_assert_uint_eq(c->n_warnings, 4);
	ck_assert_str_eq(c->warnings[0], NAME ":2: unknown key 'colour' in [general], ignoring it");
	ck_assert_str_eq(c->warnings[1], NAME ":7: unknown key 'Host' in [account a], ignoring it");
	ck_assert_str_eq(c->warnings[2],
			 NAME ":8: unknown section '[Account b]', ignoring it and its keys");
	ck_assert_str_eq(c->warnings[3],
			 NAME ":11: unknown section '[extras here]', ignoring it and its keys");
	config_free(c);
}
END_TEST

START_TEST(test_warnings_limit)
{
	char *text = malloc(100 * 16 + 16);
	size_t len = 0;
	struct config *c;

	len += (size_t)sprintf(text, "[general]\n");
	for (int i = 0; i < 100; i++)
		len += (size_t)sprintf(text + len, "k%d = v\n", i);
	c = parse_ok(text);
	ck_assert_uint_eq(c->n_warnings, CONFIG_MAX_WARNINGS + 1);
	ck_assert_str_eq(c->warnings[CONFIG_MAX_WARNINGS],
			 NAME ":66: too many warnings, not listing more");
	config_free(c);
	free(text);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* security = none */

static const struct {
	const char *host;
	bool ok;
} none_cases[] = {
	{ "127.0.0.1", true },
	{ "127.255.10.2", true },
	{ "localhost", true },
	{ "LocalHost", true },
	{ "localhost.", true },
	{ "::1", true },
	{ "0:0:0:0:0:0:0:1", true },
	{ "::ffff:127.0.0.1", true },
	{ "128.0.0.1", false },
	{ "10.0.0.1", false },
	{ "126.255.255.255", false },
	{ "imap.example.org", false },
	{ "localhost.example.org", false },
	{ "mylocalhost", false },
	{ "::2", false },
	{ "::", false },
	{ "::ffff:10.0.0.1", false },
	{ "127.1", false },
	{ "0x7f.0.0.1", false },
};

START_TEST(test_security_none)
{
	char text[256];
	struct config *c = NULL;
	char *error = NULL;
	int r;

	snprintf(text, sizeof(text),
		 "[account a]\nsecurity = none\nhost = %s\nuser = u\n"
		 "password_file = /p\n",
		 none_cases[_i].host);
	r = config_parse_buffer(NAME, text, strlen(text), &c, &error);
	if (none_cases[_i].ok) {
		ck_assert_msg(r == 0, "%s: %s", none_cases[_i].host, error);
		ck_assert_uint_eq(c->accounts[0].port, 143);
		config_free(c);
	} else {
		ck_assert_int_eq(r, -EINVAL);
		assert_error(error, 2, "security 'none'");
		ck_assert_ptr_nonnull(strstr(error, none_cases[_i].host));
		free(error);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* config_load */

START_TEST(test_load)
{
	static const char text[] =
		"[general]\ndatabase = db/store.db\n" ACCT("a") "sync_bodies = 100\n";
	const char *path;
	char expect[PATH_MAX + 64];
	struct config *c = NULL;
	char *error = NULL;

	ck_assert_int_eq(mkdir(tmp_path("etc"), 0700), 0);
	path = write_file("etc/cpmsync.conf", text, strlen(text), 0644);
	ck_assert_int_eq(config_load(path, &c, &error), 0);
	ck_assert_ptr_null(error);
	ck_assert_str_eq(c->path, path);
	snprintf(expect, sizeof(expect), "%s/etc/db/store.db", tmpdir);
	ck_assert_str_eq(c->database, expect);
	ck_assert_int_eq(c->accounts[0].sync_bodies, 100);
	config_free(c);

	/* A relative path: messages name it as given, paths are absolute. */
	ck_assert_int_eq(chdir(tmpdir), 0);
	c = NULL;
	ck_assert_int_eq(config_load("etc/cpmsync.conf", &c, &error), 0);
	ck_assert_str_eq(c->path, "etc/cpmsync.conf");
	ck_assert_str_eq(c->database, expect);
	config_free(c);

	write_file("etc/bad.conf", "[general]\n\nport = 1\n", 20, 0600);
	c = (struct config *)SENTINEL;
	ck_assert_int_eq(config_load("etc/bad.conf", &c, &error), -EINVAL);
	ck_assert_ptr_eq(c, (struct config *)SENTINEL);
	ck_assert_str_eq(error, "etc/bad.conf:3: key 'port' outside an [account] section");
	free(error);
}
END_TEST

START_TEST(test_load_errors)
{
	struct config *c = (struct config *)SENTINEL;
	char *error = NULL;
	char *big;
	const char *path;

	path = tmp_path("missing.conf");
	ck_assert_int_eq(config_load(path, &c, &error), -ENOENT);
	ck_assert_ptr_nonnull(strstr(error, path));
	ck_assert_ptr_nonnull(strstr(error, "No such file"));
	free(error);

	ck_assert_int_eq(config_load(tmpdir, &c, &error), -EINVAL);
	ck_assert_ptr_nonnull(strstr(error, "not a regular file"));
	free(error);

	big = malloc(CONFIG_MAX_SIZE + 10);
	memset(big, '\n', CONFIG_MAX_SIZE + 10);
	path = write_file("big.conf", big, CONFIG_MAX_SIZE + 10, 0600);
	ck_assert_int_eq(config_load(path, &c, &error), -EFBIG);
	ck_assert_ptr_nonnull(strstr(error, "file too large"));
	free(error);
	free(big);

	ck_assert_int_eq(config_load(path, &c, NULL), -EFBIG);
	ck_assert_ptr_eq(c, (struct config *)SENTINEL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Passwords */

#define SECRET "s3cr3t-PW"

static int password_for_file(const char *path, char **ret_password, char **ret_error)
{
	struct config_account a = { .name = (char *)"a", .password_file = (char *)path };

	return config_account_password(&a, ret_password, ret_error);
}

static int password_for_command(const char *cmd, char **ret_password, char **ret_error)
{
	struct config_account a = { .name = (char *)"a", .password_command = (char *)cmd };

	return config_account_password(&a, ret_password, ret_error);
}

static const struct {
	const char *content;
	size_t len;
	const char *password;
} pw_file_ok[] = {
	{ BIN(SECRET "\n"), SECRET },
	{ BIN(SECRET), SECRET },
	{ BIN(SECRET "\r\n"), SECRET },
	{ BIN(SECRET "\nsecond line\n"), SECRET },
	{ BIN(" spaced  pass\t\n"), " spaced  pass\t" },
	{ BIN("p\xC3\xA4ss\n\0junk after the line"), "p\xC3\xA4ss" },
};

START_TEST(test_password_file_ok)
{
	const char *path = write_file("pw", pw_file_ok[_i].content, pw_file_ok[_i].len, 0600);
	char *password = NULL, *error = NULL;

	ck_assert_int_eq(password_for_file(path, &password, &error), 0);
	ck_assert_ptr_null(error);
	ck_assert_str_eq(password, pw_file_ok[_i].password);
	free(password);
}
END_TEST

START_TEST(test_password_file_longest)
{
	char *data = malloc(CONFIG_MAX_PASSWORD + 2);
	char *password = NULL, *error = NULL;
	const char *path;

	memset(data, 'p', CONFIG_MAX_PASSWORD);
	data[CONFIG_MAX_PASSWORD] = '\r';
	data[CONFIG_MAX_PASSWORD + 1] = '\n';
	path = write_file("pw", data, CONFIG_MAX_PASSWORD + 2, 0400);
	ck_assert_int_eq(password_for_file(path, &password, &error), 0);
	ck_assert_uint_eq(strlen(password), CONFIG_MAX_PASSWORD);
	free(password);

	path = write_file("pw2", data, CONFIG_MAX_PASSWORD + 1, 0600);
	ck_assert_int_eq(password_for_file(path, &password, &error), 0);
	ck_assert_uint_eq(strlen(password), CONFIG_MAX_PASSWORD);
	free(password);
	free(data);
}
END_TEST

static const struct {
	const char *content;
	size_t len;
	mode_t mode;
	const char *what; /* the path is prefixed */
} pw_file_bad[] = {
	{ BIN(SECRET "\n"), 0644, "' is readable by group or others (mode 0644); chmod 600 it" },
	{ BIN(SECRET "\n"), 0640, "' is readable by group or others (mode 0640)" },
	{ BIN(SECRET "\n"), 0604, "' is readable by group or others (mode 0604)" },
	{ BIN(SECRET "\n"), 0620, "' is accessible by group or others (mode 0620)" },
	{ BIN(SECRET "\n"), 0601, "' is accessible by group or others (mode 0601)" },
	{ BIN(""), 0600, "': empty" },
	{ BIN("\n" SECRET "\n"), 0600, "': the first line is empty" },
	{ BIN("\r\n" SECRET "\n"), 0600, "': the first line is empty" },
	{ BIN(SECRET "\0" SECRET "\n"), 0600, "': the first line contains a NUL byte" },
};

START_TEST(test_password_file_bad)
{
	const char *path = write_file("pw", pw_file_bad[_i].content, pw_file_bad[_i].len,
				      pw_file_bad[_i].mode);
	char *password = (char *)SENTINEL, *error = NULL;
	char expect[PATH_MAX + 256];

	ck_assert_int_lt(password_for_file(path, &password, &error), 0);
	ck_assert_ptr_eq(password, (char *)SENTINEL);
	snprintf(expect, sizeof(expect), "%s%s", path, pw_file_bad[_i].what);
	ck_assert_msg(strstr(error, expect), "'%s' lacks '%s'", error, expect);
	ck_assert_msg(strstr(error, "password file '"), "%s", error);
	ck_assert_ptr_null(strstr(error, SECRET));
	free(error);
}
END_TEST

START_TEST(test_password_file_too_long)
{
	char *data = malloc(CONFIG_MAX_PASSWORD + 20);
	char *password = (char *)SENTINEL, *error = NULL;
	const char *path;

	memset(data, 'p', CONFIG_MAX_PASSWORD + 20);
	memcpy(data, SECRET, strlen(SECRET));
	path = write_file("pw", data, CONFIG_MAX_PASSWORD + 1, 0600);
	ck_assert_int_eq(password_for_file(path, &password, &error), -E2BIG);
	ck_assert_ptr_eq(password, (char *)SENTINEL);
	ck_assert_ptr_nonnull(strstr(error, "longer than 4096 bytes"));
	ck_assert_ptr_null(strstr(error, SECRET));
	free(error);

	/* 4096 bytes and a CR, with no LF, is too long too. */
	data[CONFIG_MAX_PASSWORD] = '\r';
	path = write_file("pw", data, CONFIG_MAX_PASSWORD + 20, 0600);
	ck_assert_int_eq(password_for_file(path, &password, &error), -E2BIG);
	free(error);
	free(data);
}
END_TEST

START_TEST(test_password_file_not_regular)
{
	char *password = (char *)SENTINEL, *error = NULL;
	const char *target = write_file("real", SECRET "\n", 10, 0600);
	const char *lnk = tmp_path("link");
	const char *fifo = tmp_path("fifo");
	const char *missing = tmp_path("missing");

	ck_assert_int_eq(symlink(target, lnk), 0);
	ck_assert_int_eq(password_for_file(lnk, &password, &error), -ELOOP);
	ck_assert_ptr_nonnull(strstr(error, lnk));
	ck_assert_ptr_nonnull(strstr(error, "is a symbolic link"));
	free(error);

	/* A FIFO is refused at once, without blocking on open(). */
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(password_for_file(fifo, &password, &error), -EINVAL);
	ck_assert_ptr_nonnull(strstr(error, "is not a regular file"));
	free(error);

	ck_assert_int_eq(password_for_file(tmpdir, &password, &error), -EINVAL);
	ck_assert_ptr_nonnull(strstr(error, "is not a regular file"));
	free(error);

	ck_assert_int_eq(password_for_file(missing, &password, &error), -ENOENT);
	ck_assert_ptr_nonnull(strstr(error, missing));
	free(error);
	ck_assert_ptr_eq(password, (char *)SENTINEL);

	/* Without ret_error. */
	ck_assert_int_eq(password_for_file(missing, &password, NULL), -ENOENT);
}
END_TEST

static const struct {
	const char *command;
	const char *password;
} pw_cmd_ok[] = {
	{ "printf '%s\\n' '" SECRET "'", SECRET },
	{ "printf 'first\\nsecond\\n'", "first" },
	{ "printf 'no-newline'", "no-newline" },
	{ "printf 'crlf\\r\\n'", "crlf" },
	{ "echo oops >&2; echo pw", "pw" },	  /* stderr is not captured */
	{ "read x; echo \"[$x]\"", "[]" },	  /* stdin is /dev/null */
	{ "echo y; yes | head -c 1000000", "y" }, /* the rest is drained */
	{ "echo $((6*7))", "42" },
	/* A background process keeping stdout open is not waited for. */
	{ "(sleep 5 &); echo bg", "bg" },
};

/*
 * Issue 13: a file that runs a command must be the user's alone to write,
 * the same rule as for a password file.
 */
START_TEST(test_config_perms_password_command)
{
	static const char cmd_conf[] = "[account a]\nhost = h\nuser = u\n"
				       "password_command = echo pw\n";
	static const char file_conf[] = "[account a]\nhost = h\nuser = u\n"
					"password_file = /p\n";
	struct config *c = NULL;
	char *error = NULL, expect[PATH_MAX + 256];
	const char *path;

	/* Writable by group: refused, at the password_command line. */
	path = write_file("g.conf", cmd_conf, sizeof(cmd_conf) - 1, 0620);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: account 'a': password_command in a file writable by group or others "
		 "(mode 0620): whoever can write it can run commands as you; chmod go-w it",
		 path);
	ck_assert_str_eq(error, expect);
	free(error);

	/* Writable by others: refused. */
	path = write_file("o.conf", cmd_conf, sizeof(cmd_conf) - 1, 0602);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	ck_assert_ptr_nonnull(strstr(error, "(mode 0602)"));
	free(error);

	/* Only the user writes it: loaded (readable by others is not the issue). */
	path = write_file("ok.conf", cmd_conf, sizeof(cmd_conf) - 1, 0644);
	ck_assert_int_eq(config_load(path, &c, &error), 0);
	c = config_free(c);

	/* No command in it: the file's mode is not judged. */
	path = write_file("f.conf", file_conf, sizeof(file_conf) - 1, 0666);
	ck_assert_int_eq(config_load(path, &c, &error), 0);
	c = config_free(c);

	/* Owned by another user (chown needs root; the suite runs as root here). */
	if (geteuid() != 0) {
		fprintf(stderr, "test_config_perms_password_command: owner case SKIPPED "
				"(needs root for chown)\n");
		return;
	}
	path = write_file("u.conf", cmd_conf, sizeof(cmd_conf) - 1, 0600);
	ck_assert_int_eq(chown(path, 65534, 65534), 0);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: account 'a': password_command in a file owned by uid 65534, not by "
		 "this user (uid 0); refusing to run it",
		 path);
	ck_assert_str_eq(error, expect);
	free(error);
}
END_TEST

/*
 * Issue 13: client_cert holds a private key: the rule of a password file
 * (only the user reads it, a regular file, no symbolic link), and owned
 * by the user.
 */
START_TEST(test_config_perms_client_cert)
{
	static const char pem[] = "-----BEGIN CERTIFICATE-----\n";
	struct config *c = NULL;
	char *error = NULL, expect[PATH_MAX + 512], text[PATH_MAX + 128];
	const char *path, *cert;

	/* Only the user reads it: loaded. */
	cert = write_file("ok.pem", pem, sizeof(pem) - 1, 0600);
	snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\nclient_cert = %s\n", cert);
	path = write_file("ok.conf", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &c, &error), 0);
	c = config_free(c);

	/* Readable by group: refused, at the client_cert line. */
	cert = write_file("g.pem", pem, sizeof(pem) - 1, 0640);
	snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\nclient_cert = %s\n", cert);
	path = write_file("g.conf", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: account 'a': client certificate file '%s' (with its private key) is "
		 "readable by group or others (mode 0640); chmod 600 it",
		 path, cert);
	ck_assert_str_eq(error, expect);
	free(error);

	/* Writable (not readable) by others: "accessible". */
	cert = write_file("o.pem", pem, sizeof(pem) - 1, 0602);
	snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\nclient_cert = %s\n", cert);
	path = write_file("o.conf", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: account 'a': client certificate file '%s' (with its private key) is "
		 "accessible by group or others (mode 0602); chmod 600 it",
		 path, cert);
	ck_assert_str_eq(error, expect);
	free(error);

	/* A symbolic link (to a good file): refused. */
	ck_assert_int_eq(symlink(tmp_path("ok.pem"), tmp_path("l.pem")), 0);
	cert = tmp_path("l.pem");
	snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\nclient_cert = %s\n", cert);
	path = write_file("l.conf", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: account 'a': client certificate file '%s' is a symbolic link; refusing it",
		 path, cert);
	ck_assert_str_eq(error, expect);
	free(error);

	/* Missing: left to the connection (which fails saying so). */
	snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\nclient_cert = %s\n",
		 tmp_path("missing.pem"));
	path = write_file("m.conf", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &c, &error), 0);
	c = config_free(c);

	/* Owned by another user (chown needs root). */
	if (geteuid() != 0) {
		fprintf(stderr, "test_config_perms_client_cert: owner case SKIPPED "
				"(needs root for chown)\n");
		return;
	}
	cert = write_file("u.pem", pem, sizeof(pem) - 1, 0600);
	ck_assert_int_eq(chown(cert, 65534, 65534), 0);
	snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\nclient_cert = %s\n", cert);
	path = write_file("u.conf", text, strlen(text), 0600);
	ck_assert_int_eq(config_load(path, &c, &error), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: account 'a': client certificate file '%s' is owned by uid 65534, not by "
		 "this user (uid 0); refusing it",
		 path, cert);
	ck_assert_str_eq(error, expect);
	free(error);
}
END_TEST

START_TEST(test_password_command_ok)
{
	char *password = NULL, *error = NULL;

	ck_assert_int_eq(password_for_command(pw_cmd_ok[_i].command, &password, &error), 0);
	ck_assert_ptr_null(error);
	ck_assert_str_eq(password, pw_cmd_ok[_i].password);
	free(password);
}
END_TEST

static const struct {
	const char *command;
	int r;
	const char *error; /* exact */
} pw_cmd_bad[] = {
	{ "exit 3", -EIO, "password_command exited with status 3" },
	{ "echo " SECRET "; exit 1", -EIO, "password_command exited with status 1" },
	{ "echo " SECRET " >/dev/null; false", -EIO, "password_command exited with status 1" },
	{ "/nonexistent/pw-tool", -EIO, "password_command exited with status 127" },
	{ "echo " SECRET "; kill -9 $$", -EIO, "password_command was killed by signal 9" },
	{ "yes", -E2BIG, "password_command printed more than 1048576 bytes and was killed" },
	{ "true", -ENODATA, "password_command printed nothing" },
	{ "cat", -ENODATA, "password_command printed nothing" },
	{ "echo; echo " SECRET, -ENODATA, "password_command: the first line is empty" },
	{ "printf '" SECRET "\\000x\\n'", -EINVAL,
	  "password_command: the first line contains a NUL byte" },
	{ "printf '" SECRET "'; head -c 5000 /dev/zero | tr '\\0' x", -E2BIG,
	  "password_command: the first line is longer than 4096 bytes" },
};

START_TEST(test_password_command_bad)
{
	char *password = (char *)SENTINEL, *error = NULL;

	ck_assert_int_eq(password_for_command(pw_cmd_bad[_i].command, &password, &error),
			 pw_cmd_bad[_i].r);
	ck_assert_ptr_eq(password, (char *)SENTINEL);
	ck_assert_str_eq(error, pw_cmd_bad[_i].error);
	ck_assert_ptr_null(strstr(error, SECRET));
	free(error);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* password_command on the loop (issue 13) */

struct job_result {
	bool done;
	int r;
	char *password, *error;
};

static void job_done(int r, char *password, char *error, void *userdata)
{
	struct job_result *res = userdata;

	res->done = true;
	res->r = r;
	res->password = password;
	res->error = error;
}

static void count_tick(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	(*(unsigned *)userdata)++;
}

/* Runs command as a job on a loop until it is done (at most 10 s); returns the ms it took. */
static uint64_t run_job(const char *command, unsigned timeout_ms, struct job_result *res,
			unsigned *ret_ticks)
{
	struct cpmsync_loop *loop = NULL;
	struct cpmsync_loop_source *tick = NULL;
	struct password_job *job = NULL;
	uint64_t t0, took;
	char *err = NULL;

	memset(res, 0, sizeof(*res));
	*ret_ticks = 0;
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_loop_add_timer(loop, 20, 20, count_tick, ret_ticks, NULL, &tick),
			 0);
	t0 = cpmsync_now_ms();
	ck_assert_int_eq(password_job_start(loop, command, timeout_ms, job_done, res, &job, &err),
			 0);
	/* Started, not run: the caller goes on at once, before the command
	 * is done (test_password_job_async's takes 1.5 s), and is not called
	 * back from within.  1 s, not less: a fork alone took 104 ms on a
	 * loaded machine. */
	ck_assert_msg(cpmsync_now_ms() - t0 < 1000, "%s: password_job_start() took %llu ms",
		      command, (unsigned long long)(cpmsync_now_ms() - t0));
	ck_assert_msg(!res->done, "%s: called back before password_job_start() returned", command);
	while (!res->done && cpmsync_now_ms() - t0 < 10000)
		cpmsync_loop_iterate(loop, 100);
	took = cpmsync_now_ms() - t0;
	ck_assert_msg(res->done, "%s: not done after 10 s", command);
	cpmsync_loop_source_remove(tick);
	cpmsync_loop_free(loop);
	return took;
}

START_TEST(test_password_job_async)
{
	struct job_result res;
	unsigned ticks;
	uint64_t took;

	took = run_job("sleep 1.5; echo " SECRET, 0, &res, &ticks);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(res.password, SECRET);
	ck_assert_ptr_null(res.error);
	ck_assert_uint_ge(took, 1450);
	/* The loop ran meanwhile: a 20 ms timer fired all along. */
	ck_assert_uint_ge(ticks, 45);
	free(res.password);
	/* Reaped: no child left. */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(test_password_job_timeout)
{
	struct job_result res;
	unsigned ticks;
	uint64_t took;

	took = run_job("sleep 5; echo " SECRET, 200, &res, &ticks);
	ck_assert_int_eq(res.r, -ETIMEDOUT);
	ck_assert_ptr_null(res.password);
	ck_assert_str_eq(res.error, "password_command did not finish within 200 ms and was killed");
	ck_assert_uint_lt(took, 2000);
	free(res.error);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}
END_TEST

/* The same answers as the blocking call, for every case. */
START_TEST(test_password_job_ok)
{
	struct job_result res;
	unsigned ticks;
	uint64_t took;

	took = run_job(pw_cmd_ok[_i].command, 0, &res, &ticks);
	ck_assert_msg(res.r == 0, "%s: %s", pw_cmd_ok[_i].command, res.error);
	ck_assert_str_eq(res.password, pw_cmd_ok[_i].password);
	/* A background process keeping stdout open is not waited for. */
	ck_assert_uint_lt(took, 3000);
	free(res.password);
}
END_TEST

START_TEST(test_password_job_bad)
{
	struct job_result res;
	unsigned ticks;

	run_job(pw_cmd_bad[_i].command, 0, &res, &ticks);
	ck_assert_int_eq(res.r, pw_cmd_bad[_i].r);
	ck_assert_ptr_null(res.password);
	ck_assert_str_eq(res.error, pw_cmd_bad[_i].error);
	free(res.error);
}
END_TEST

START_TEST(test_password_job_cancel)
{
	struct cpmsync_loop *loop = NULL;
	struct password_job *job = NULL;
	struct job_result res = { 0 };
	uint64_t t0;

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(password_job_start(loop, "sleep 5", 0, job_done, &res, &job, NULL), 0);
	cpmsync_loop_iterate(loop, 50);
	t0 = cpmsync_now_ms();
	ck_assert_ptr_null(password_job_cancel(job));
	ck_assert_uint_lt(cpmsync_now_ms() - t0, 1000);
	ck_assert(!res.done);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	cpmsync_loop_iterate(loop, 50);
	ck_assert(!res.done);
	cpmsync_loop_free(loop);
}
END_TEST

START_TEST(test_password_command_stdio_closed)
{
	char *password = NULL, *error = NULL;
	int saved_in = dup(STDIN_FILENO), saved_out = dup(STDOUT_FILENO);
	int r;

	/* The daemon may run with stdin/stdout closed. */
	fflush(stdout);
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	r = password_for_command("read x || echo eof", &password, &error);
	/* Restored for CK_FORK=no runs. */
	dup2(saved_in, STDIN_FILENO);
	dup2(saved_out, STDOUT_FILENO);
	close(saved_in);
	close(saved_out);
	ck_assert_int_eq(r, 0);
	ck_assert_str_eq(password, "eof");
	free(password);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Settings and comparison */

START_TEST(test_to_settings)
{
	static const char text[] = "[account a]\n"
				   "host = imap.example.org\n"
				   "port = 10993\n"
				   "security = starttls\n"
				   "user = alice\n"
				   "password_file = pw\n"
				   "ca_file = /ca.pem\n"
				   "folders = INBOX Sent\n"
				   "sync_bodies = 64\n";
	struct cpmsync_account s;
	struct config *c = NULL;
	struct config_account *a;
	char name[PATH_MAX + 32];
	char *error = NULL, *password = NULL;

	snprintf(name, sizeof(name), "%s/cpmsync.conf", tmpdir);
	ck_assert_int_eq(config_parse_buffer(name, text, strlen(text), &c, &error), 0);
	a = &c->accounts[0];
	memset(&s, 0xAA, sizeof(s));
	config_account_to_settings(a, &s);
	ck_assert_ptr_eq(s.name, a->name);
	ck_assert_str_eq(s.host, "imap.example.org");
	ck_assert_uint_eq(s.port, 10993);
	ck_assert_int_eq(s.security, CPMSYNC_SECURITY_STARTTLS);
	ck_assert_str_eq(s.user, "alice");
	ck_assert_str_eq(s.ca_file, "/ca.pem");
	ck_assert_ptr_eq(s.folders, (const char *const *)a->folders);
	ck_assert_str_eq(s.folders[0], "INBOX");
	ck_assert_str_eq(s.folders[1], "Sent");
	ck_assert_ptr_null(s.folders[2]);
	ck_assert_int_eq(s.sync_bodies, 64);
	ck_assert_uint_eq(s.connect_timeout_ms, 0);
	ck_assert_uint_eq(s.command_timeout_ms, 0);
	ck_assert_ptr_eq(s.password_userdata, a);
	ck_assert_ptr_nonnull(s.password_cb);

	/* The callback: failure records a reason, success clears it. */
	write_file("pw", SECRET "\n", strlen(SECRET) + 1, 0644);
	ck_assert_int_eq(s.password_cb(&s, &password, s.password_userdata), -EACCES);
	ck_assert_ptr_null(password);
	ck_assert_ptr_nonnull(strstr(a->password_error, "mode 0644"));
	ck_assert_ptr_null(strstr(a->password_error, SECRET));
	ck_assert_int_eq(chmod(tmp_path("pw"), 0600), 0);
	ck_assert_int_eq(s.password_cb(&s, &password, s.password_userdata), 0);
	ck_assert_str_eq(password, SECRET);
	ck_assert_ptr_null(a->password_error);
	free(password);

	/* A failure left in place is freed with the config (ASan checks). */
	ck_assert_int_eq(unlink(tmp_path("pw")), 0);
	ck_assert_int_eq(s.password_cb(&s, &password, s.password_userdata), -ENOENT);
	ck_assert_ptr_nonnull(a->password_error);
	config_free(c);
}
END_TEST

START_TEST(test_password_none)
{
	struct config_account a = { .name = (char *)"x" };
	char *password = NULL, *error = NULL;

	ck_assert_int_eq(config_account_password(&a, &password, &error), -EINVAL);
	ck_assert_str_eq(error, "account 'x': no password_file or password_command");
	free(error);
}
END_TEST

/* client_cert (contract): a path like ca_file; with it no password is
 * needed (SASL EXTERNAL), without it one still is. */
START_TEST(test_client_cert)
{
	static const char with[] = "[account a]\nhost = h\nuser = u\nclient_cert = certs/a.pem\n";
	static const char both[] = "[account a]\nhost = h\nuser = u\nclient_cert = /a.pem\n"
				   "password_file = /p\n";
	static const char without[] = "[account a]\nhost = h\nuser = u\n";
	struct cpmsync_account s;
	struct config *c = NULL;
	char name[PATH_MAX + 32], want[PATH_MAX + 64];
	char *error = NULL;

	snprintf(name, sizeof(name), "%s/cpmsync.conf", tmpdir);
	ck_assert_msg(config_parse_buffer(name, with, strlen(with), &c, &error) == 0, "%s", error);
	ck_assert_uint_eq(c->n_warnings, 0);
	snprintf(want, sizeof(want), "%s/certs/a.pem", tmpdir);
	ck_assert_str_eq(c->accounts[0].client_cert, want);
	ck_assert_ptr_null(c->accounts[0].password_file);
	ck_assert_ptr_null(c->accounts[0].password_command);
	config_account_to_settings(&c->accounts[0], &s);
	ck_assert_str_eq(s.client_cert, want);
	config_free(c);

	c = NULL;
	ck_assert_int_eq(config_parse_buffer(name, both, strlen(both), &c, &error), 0);
	ck_assert_str_eq(c->accounts[0].client_cert, "/a.pem");
	ck_assert_str_eq(c->accounts[0].password_file, "/p");
	config_free(c);

	c = NULL;
	ck_assert_int_lt(config_parse_buffer(name, without, strlen(without), &c, &error), 0);
	ck_assert_ptr_nonnull(strstr(error, "neither password_file nor password_command is set"));
	free(error);
}
END_TEST

#define BASE                                                                                       \
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"                      \
	"ca_file = /ca\nfolders = A B\nsync_bodies = 10\n"

static const char *const changed[] = {
	"[account b]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = 10\npassword_file = /p\n",
	BASE "password_file = /q\n",
	BASE "password_command = /p\n",
	"[account a]\nhost = H\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1001\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = tls\nuser = u\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = v\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"folders = A B\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A B C\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = B A\nsync_bodies = 10\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = all\npassword_file = /p\n",
	"[account a]\nhost = h\nport = 1000\nsecurity = starttls\nuser = u\n"
	"ca_file = /ca\nfolders = A B\nsync_bodies = none\npassword_file = /p\n",
	BASE "password_file = /p\nclient_cert = /c.pem\n",
};

START_TEST(test_equal)
{
	struct config *c1 = parse_ok(BASE "password_file = /p\n");
	struct config *c2 = parse_ok(changed[_i]);

	ck_assert(config_account_equal(&c1->accounts[0], &c1->accounts[0]));
	ck_assert(!config_account_equal(&c1->accounts[0], &c2->accounts[0]));
	ck_assert(!config_account_equal(&c2->accounts[0], &c1->accounts[0]));
	config_free(c1);
	config_free(c2);
}
END_TEST

START_TEST(test_equal_same)
{
	/* Same settings spelled differently, on other lines: equal. */
	struct config *c1 = parse_ok(BASE "password_file = /p\n");
	struct config *c2 = parse_ok("# moved\n\n[account a]\n"
				     "password_file=/p\nsync_bodies=10\n"
				     "folders =  A\tB  \nca_file=/ca\n"
				     "user=u\nsecurity=starttls\n"
				     "port=1000\nhost=h # x\n");
	struct config *c3 = parse_ok(ACCT("a"));
	struct config *c4 = parse_ok(ACCT("a") "port = 993\nfolders = *\n"
					       "security = tls\n"
					       "sync_bodies = all\n");

	ck_assert(config_account_equal(&c1->accounts[0], &c2->accounts[0]));
	/* Explicit defaults equal implicit ones. */
	ck_assert(config_account_equal(&c3->accounts[0], &c4->accounts[0]));
	config_free(c1);
	config_free(c2);
	config_free(c3);
	config_free(c4);
}
END_TEST

/* agent/cpmsync.conf parses as shipped, and with its examples uncommented. */
START_TEST(test_sample_file)
{
	static const char sample[] = "agent/cpmsync.conf";
	struct config *c = NULL;
	char *error = NULL, *text, *out, *line, *save = NULL;
	size_t len = 0;
	FILE *f;

	f = fopen(sample, "r");
	if (!f) {
		/* Not run from the top of the source tree. */
		fprintf(stderr, "%s not found, skipped\n", sample);
		return;
	}
	text = calloc(1, 65536);
	len = fread(text, 1, 65535, f);
	fclose(f);
	ck_assert_int_eq(config_parse_buffer(sample, text, len, &c, &error), 0);
	ck_assert_uint_eq(c->n_accounts, 0);
	ck_assert_uint_eq(c->n_warnings, 0);
	config_free(c);

	out = calloc(1, 65536);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' && ((line[1] >= 'a' && line[1] <= 'z' && strstr(line, " = ") &&
					!strstr(line, "password_command")) ||
				       strncmp(line, "#[account", 9) == 0))
			line++;
		strcat(out, line);
		strcat(out, "\n");
	}
	c = NULL;
	ck_assert_msg(config_parse_buffer(sample, out, strlen(out), &c, &error) == 0, "%s", error);
	ck_assert_uint_eq(c->n_accounts, 1);
	ck_assert_msg(c->n_warnings == 0, "%s", c->n_warnings ? c->warnings[0] : "");
	ck_assert_str_eq(c->accounts[0].name, "work");
	ck_assert_str_eq(c->accounts[0].host, "imap.example.org");
	ck_assert_ptr_nonnull(c->accounts[0].password_file);
	config_free(c);
	free(out);
	free(text);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("syntax");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_poll_interval);
	tcase_add_test(tc, test_cpm_root);
	tcase_add_test(tc, test_other_namespaces);
	tcase_add_test(tc, test_crlf_bom_no_eol);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_sample_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("defaults");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults_xdg);
	tcase_add_test(tc, test_defaults_home);
	tcase_add_test(tc, test_defaults_no_home);
	tcase_add_test(tc, test_default_path);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_errors, 0, (int)ARRAY_SIZE(error_cases));
	tcase_add_test(tc, test_error_hides_stray_line);
	tcase_add_test(tc, test_error_null_ret_error);
	tcase_add_test(tc, test_line_limit);
	tcase_add_test(tc, test_file_limit);
	tcase_add_test(tc, test_account_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("warnings");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_warnings);
	tcase_add_test(tc, test_warnings_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("security-none");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_security_none, 0, (int)ARRAY_SIZE(none_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_load_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("password");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_password_file_ok, 0, (int)ARRAY_SIZE(pw_file_ok));
	tcase_add_test(tc, test_config_perms_password_command);
	tcase_add_test(tc, test_password_file_longest);
	tcase_add_loop_test(tc, test_password_file_bad, 0, (int)ARRAY_SIZE(pw_file_bad));
	tcase_add_test(tc, test_password_file_too_long);
	tcase_add_test(tc, test_password_file_not_regular);
	tcase_add_loop_test(tc, test_password_command_ok, 0, (int)ARRAY_SIZE(pw_cmd_ok));
	tcase_add_loop_test(tc, test_password_command_bad, 0, (int)ARRAY_SIZE(pw_cmd_bad));
	tcase_add_test(tc, test_password_job_async);
	tcase_add_test(tc, test_password_job_timeout);
	tcase_add_loop_test(tc, test_password_job_ok, 0, (int)ARRAY_SIZE(pw_cmd_ok));
	tcase_add_loop_test(tc, test_password_job_bad, 0, (int)ARRAY_SIZE(pw_cmd_bad));
	tcase_add_test(tc, test_password_job_cancel);
	tcase_add_test(tc, test_password_command_stdio_closed);
	tcase_add_test(tc, test_password_none);
	tcase_add_test(tc, test_client_cert);
	tcase_add_test(tc, test_config_perms_client_cert);
	suite_add_tcase(s, tc);

	tc = tcase_create("settings");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_to_settings);
	tcase_add_loop_test(tc, test_equal, 0, (int)ARRAY_SIZE(changed));
	tcase_add_test(tc, test_equal_same);
	suite_add_tcase(s, tc);

	return s;
}

TEST_MAIN(config_suite)
