/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for agent/config-write.c: AddAccount/RemoveAccount persistence. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/error.h>

#include "testlib.h"
#include "config-write.h"
#include "config.h"

static char tmpdir[PATH_MAX];

static void setup(void)
{
	char home[PATH_MAX + 8];

	strcpy(tmpdir, "/tmp/test-config-write-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	ck_assert_int_eq(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	unsetenv("XDG_DATA_HOME");
	umask(022);
}

static void teardown(void)
{
	if (chdir("/") < 0)
		perror("chdir");
	test_rm_rf(tmpdir);
}

static const char *tmp_path(const char *name)
{
	static char ring[8][PATH_MAX + 64];
	static unsigned next;
	char *p = ring[next++ % 8];

	snprintf(p, sizeof(ring[0]), "%s/%s", tmpdir, name);
	return p;
}

static const char *write_file(const char *name, const char *data, mode_t mode)
{
	const char *path = tmp_path(name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

/* The whole file, NUL-terminated, in a static buffer. */
static const char *read_file(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ck_assert_msg(fd >= 0, "cannot open %s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* No temporary file left behind in dir. */
static void assert_no_temp(const char *dir)
{
	char cmd[PATH_MAX + 64];
	FILE *p;
	char line[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "ls -a '%s'", dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p))
		ck_assert_msg(!strstr(line, ".XXXXXX") &&
				      !(line[0] == '.' && strstr(line, ".conf.")),
			      "temporary file left: %s", line);
	pclose(p);
}

static const char *const two_folders[] = { "INBOX", "Chats/*", NULL };

static const struct cpmsync_account_settings full = {
	.host = "imap.example.org",
	.port = 1993,
	.security = "starttls",
	.user = "alice",
	.password_file = "/run/secret/alice",
	.ca_file = "/etc/ca.pem",
	.folders = two_folders,
	.sync_bodies = "512",
};

static const struct cpmsync_account_settings minimal = {
	.host = "h.example",
	.user = "u",
	.password_file = "/p",
};

START_TEST(test_add_creates_file_and_dir)
{
	const char *path = tmp_path("cfg/sub/cpmsync.conf");
	struct config *c = NULL;
	char *err = NULL;
	const struct config_account *a;

	ck_assert_int_eq(config_write_add_account(path, "work", &full, NULL, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(read_file(path), "# cpmsync configuration: see cpmsync.conf(5)\n"
					  "\n"
					  "[account work]\n"
					  "host = imap.example.org\n"
					  "port = 1993\n"
					  "security = starttls\n"
					  "user = alice\n"
					  "password_file = /run/secret/alice\n"
					  "ca_file = /etc/ca.pem\n"
					  "folders = INBOX Chats/*\n"
					  "sync_bodies = 512\n");
	ck_assert_uint_eq(mode_of(path), 0600);
	ck_assert_uint_eq(mode_of(tmp_path("cfg/sub")), 0700);
	ck_assert_uint_eq(mode_of(tmp_path("cfg")), 0700);
	assert_no_temp(tmp_path("cfg/sub"));

	ck_assert_int_eq(config_load(path, &c, &err), 0);
	a = config_find_account(c, "work");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->host, "imap.example.org");
	ck_assert_uint_eq(a->port, 1993);
	ck_assert_int_eq(a->security, CPMSYNC_SECURITY_STARTTLS);
	ck_assert_str_eq(a->folders[1], "Chats/*");
	ck_assert_int_eq(a->sync_bodies, 512);
	config_free(c);
}
END_TEST

/* CpmRoot (contract 2): written as cpm_root, and read back the same; the
 * top level ("") as "" (no quoting in the file otherwise). */
START_TEST(test_add_cpm_root)
{
	const char *path = tmp_path("cpm.conf");
	struct cpmsync_account_settings s = minimal;
	struct config *c = NULL;
	char *err = NULL;

	s.cpm_root = "Chats/Phone";
	ck_assert_int_eq(config_write_add_account(path, "one", &s, NULL, &err), 0);
	s.cpm_root = "";
	ck_assert_int_eq(config_write_add_account(path, "two", &s, NULL, &err), 0);
	ck_assert_ptr_nonnull(strstr(read_file(path), "cpm_root = Chats/Phone\n"));
	ck_assert_ptr_nonnull(strstr(read_file(path), "cpm_root = \"\"\n"));
	ck_assert_int_eq(config_load(path, &c, &err), 0);
	ck_assert_str_eq(config_account_cpm_root(config_find_account(c, "one")), "Chats/Phone");
	ck_assert_str_eq(config_account_cpm_root(config_find_account(c, "two")), "");
	config_free(c);
	s.cpm_root = "Chats #1";
	ck_assert_int_eq(config_write_add_account(path, "three", &s, NULL, &err), -EINVAL);
	ck_assert_str_eq(err, "invalid value for 'cpm_root': it contains '#' at its start or "
			      "after a blank, which would start a comment");
	free(err);
}
END_TEST

START_TEST(test_add_minimal_appends)
{
	static const char orig[] = "# my settings\n"
				   "[general]\n"
				   "database = /x/store.db   # comment kept\n"
				   "\n"
				   "[account a]\n"
				   "host = a\n"
				   "user = u\n"
				   "password_file = /p"; /* no final EOL */
	const char *path = write_file("cpmsync.conf", orig, 0640);
	char expect[1024];
	char *err = NULL;

	ck_assert_int_eq(config_write_add_account(path, "b-2_x", &minimal, NULL, &err), 0);
	snprintf(expect, sizeof(expect),
		 "%s\n\n[account b-2_x]\nhost = h.example\nuser = u\n"
		 "password_file = /p\n",
		 orig);
	ck_assert_str_eq(read_file(path), expect);
	/* The file keeps its mode. */
	ck_assert_uint_eq(mode_of(path), 0640);
	assert_no_temp(tmpdir);
}
END_TEST

START_TEST(test_add_crlf)
{
	const char *path = write_file("c.conf", "[general]\r\n\r\n", 0600);

	ck_assert_int_eq(config_write_add_account(path, "x", &minimal, NULL, NULL), 0);
	ck_assert_str_eq(read_file(path), "[general]\r\n\r\n[account x]\r\nhost = h.example\r\n"
					  "user = u\r\npassword_file = /p\r\n");
}
END_TEST

START_TEST(test_add_password_in_clear)
{
	const char *path = tmp_path("conf/cpmsync.conf");
	struct cpmsync_account_settings s = minimal;
	struct config *c = NULL;
	char *err = NULL, *pw = NULL, expect[PATH_MAX + 64];
	const char *pwfile = tmp_path("conf/acct.password");

	s.password_file = NULL;
	s.password = "s3cret pass";
	ck_assert_int_eq(config_write_add_account(path, "acct", &s, NULL, &err), 0);
	ck_assert_str_eq(read_file(pwfile), "s3cret pass\n");
	ck_assert_uint_eq(mode_of(pwfile), 0600);
	snprintf(expect, sizeof(expect), "password_file = %s\n", pwfile);
	ck_assert_ptr_nonnull(strstr(read_file(path), expect));
	ck_assert_ptr_null(strstr(read_file(path), "s3cret"));

	ck_assert_int_eq(config_load(path, &c, &err), 0);
	ck_assert_int_eq(config_account_password(config_find_account(c, "acct"), &pw, &err), 0);
	ck_assert_str_eq(pw, "s3cret pass");
	free(pw);
	config_free(c);

	/* The password file of a second account of that name would clash. */
	ck_assert_int_eq(config_write_remove_account(path, "acct", &err), 0);
	ck_assert(!exists(pwfile));
	write_file("conf/acct.password", "old\n", 0600);
	ck_assert_int_eq(config_write_add_account(path, "acct", &s, NULL, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "acct.password"));
	ck_assert_ptr_null(strstr(err, "s3cret"));
	free(err);
	ck_assert_str_eq(read_file(pwfile), "old\n");
	ck_assert_ptr_null(strstr(read_file(path), "[account acct]"));
}
END_TEST

START_TEST(test_add_password_symlink_refused)
{
	const char *path = tmp_path("cpmsync.conf");
	struct cpmsync_account_settings s = minimal;
	char *err = NULL;

	s.password_file = NULL;
	s.password = "pw";
	ck_assert_int_eq(symlink("/nonexistent/target", tmp_path("n.password")), 0);
	ck_assert_int_lt(config_write_add_account(path, "n", &s, NULL, &err), 0);
	free(err);
	ck_assert(!exists(path));
	ck_assert(!exists("/nonexistent/target"));
}
END_TEST

START_TEST(test_add_certificates)
{
	static const char ca[] = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
	static const char client[] = "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n"
				     "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n";
	const char *path = tmp_path("conf/cpmsync.conf");
	const char *cafile = tmp_path("conf/m.ca.pem"), *certfile = tmp_path("conf/m.client.pem");
	const char *pwfile = tmp_path("conf/m.password");
	struct config_account_pems pems = { ca, sizeof(ca) - 1, client, sizeof(client) - 1 };
	struct cpmsync_account_settings s = minimal;
	const struct config_account *a;
	struct config *c = NULL;
	char *err = NULL;
	mode_t old;

	s.password_file = NULL;
	s.password = "pw";
	/* Whatever the umask, the daemon's files are 0600. */
	old = umask(0);
	ck_assert_int_eq(config_write_add_account(path, "m", &s, &pems, &err), 0);
	umask(old);
	ck_assert_str_eq(read_file(cafile), ca);
	ck_assert_str_eq(read_file(certfile), client);
	ck_assert_uint_eq(mode_of(cafile), 0600);
	ck_assert_uint_eq(mode_of(certfile), 0600);
	ck_assert_uint_eq(mode_of(pwfile), 0600);
	ck_assert_int_eq(config_load(path, &c, &err), 0);
	a = config_find_account(c, "m");
	ck_assert_str_eq(a->ca_file, cafile);
	ck_assert_str_eq(a->client_cert, certfile);
	ck_assert_str_eq(a->password_file, pwfile);
	config_free(c);

	/* RemoveAccount takes the daemon's files with it. */
	ck_assert_int_eq(config_write_remove_account(path, "m", &err), 0);
	ck_assert(!exists(cafile));
	ck_assert(!exists(certfile));
	ck_assert(!exists(pwfile));

	/* A file in the way: nothing written, the files made are removed again. */
	write_file("conf/m.client.pem", "mine\n", 0600);
	ck_assert_int_eq(config_write_add_account(path, "m", &s, &pems, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "client certificate file"));
	ck_assert_ptr_nonnull(strstr(err, "m.client.pem"));
	free(err);
	ck_assert_str_eq(read_file(certfile), "mine\n");
	ck_assert(!exists(cafile));
	ck_assert(!exists(pwfile));
	ck_assert_ptr_null(strstr(read_file(path), "[account m]"));

	/* ca_file and CA bytes together: refused. */
	s.ca_file = "/etc/ca.pem";
	ck_assert_int_eq(config_write_add_account(path, "m2", &s, &pems, &err), -EINVAL);
	ck_assert_str_eq(err, "both 'ca_file' and a CA certificate are set; give one");
	free(err);
}
END_TEST

START_TEST(test_add_exists)
{
	static const char orig[] = "[account a]\nhost = a\nuser = u\n"
				   "password_file = /p\n";
	const char *path = write_file("cpmsync.conf", orig, 0600);
	char *err = NULL;

	ck_assert_int_eq(config_write_add_account(path, "a", &minimal, NULL, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "'a'"));
	ck_assert_ptr_nonnull(strstr(err, path));
	free(err);
	ck_assert_str_eq(read_file(path), orig);
}
END_TEST

static const struct {
	const char *name;
	struct cpmsync_account_settings s;
	const char *want; /* in the error */
} bad[] = {
	{ "", { .host = "h", .user = "u", .password_file = "/p" }, "account name" },
	{ "a b", { .host = "h", .user = "u", .password_file = "/p" }, "account name" },
	{ "a.b", { .host = "h", .user = "u", .password_file = "/p" }, "account name" },
	{ "ä", { .host = "h", .user = "u", .password_file = "/p" }, "account name" },
	{ "x", { .host = "h\nx", .user = "u", .password_file = "/p" }, "'host'" },
	{ "x", { .host = "h", .user = "u #x", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .user = "u\t#x", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .user = "#u", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .user = " u", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .user = "u\r", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .user = "u\x01", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .user = "", .password_file = "/p" }, "'user'" },
	{ "x", { .host = "h", .password_file = "/p" }, "'user'" },
	{ "x", { .user = "u", .password_file = "/p" }, "'host'" },
	{ "x", { .host = "h", .user = "u", .password_file = "/p\n[general]" }, "'password_file'" },
	{ "x",
	  { .host = "h", .user = "u", .ca_file = "/c #", .password_file = "/p" },
	  "'ca_file'" },
	{ "x",
	  { .host = "h", .user = "u", .sync_bodies = "a\nb", .password_file = "/p" },
	  "'sync_bodies'" },
	{ "x",
	  { .host = "h", .user = "u", .security = "tls ", .password_file = "/p" },
	  "'security'" },
	{ "x", { .host = "h", .user = "u" }, "neither" },
	{ "x", { .host = "h", .user = "u", .password = "pw", .password_file = "/p" }, "both" },
	{ "x", { .host = "h", .user = "u", .password = "p\nw" }, "'password'" },
	/* The parser's own checks. */
	{ "x",
	  { .host = "h", .user = "u", .security = "bogus", .password_file = "/p" },
	  "security" },
	{ "x",
	  { .host = "imap.example.org", .user = "u", .security = "none", .password_file = "/p" },
	  "loopback" },
	{ "x",
	  { .host = "h", .user = "u", .sync_bodies = "lots", .password_file = "/p" },
	  "sync_bodies" },
	{ "x", { .host = "h/x", .user = "u", .password_file = "/p" }, "host" },
};

START_TEST(test_add_invalid)
{
	static const char orig[] = "# keep\n";
	const char *path = write_file("cpmsync.conf", orig, 0600);
	char *err = NULL;

	ck_assert_int_eq(config_write_add_account(path, bad[_i].name, &bad[_i].s, NULL, &err),
			 -EINVAL);
	ck_assert_msg(err && strstr(err, bad[_i].want), "case %d: %s", _i, err ? err : "(null)");
	free(err);
	ck_assert_str_eq(read_file(path), orig);
	ck_assert(!exists(tmp_path("x.password")));
	assert_no_temp(tmpdir);
}
END_TEST

START_TEST(test_add_folder_with_blank)
{
	const char *path = tmp_path("cpmsync.conf");
	static const char *const f[] = { "INBOX", "My Chats", NULL };
	struct cpmsync_account_settings s = minimal;
	char *err = NULL;

	s.folders = f;
	ck_assert_int_eq(config_write_add_account(path, "x", &s, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "'folders'"));
	ck_assert_ptr_nonnull(strstr(err, "My Chats"));
	free(err);
	ck_assert(!exists(path));
}
END_TEST

START_TEST(test_add_name_too_long)
{
	const char *path = tmp_path("cpmsync.conf");
	char name[CONFIG_MAX_NAME + 2];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(config_write_add_account(path, name, &minimal, NULL, NULL), -EINVAL);
	name[CONFIG_MAX_NAME] = '\0';
	ck_assert_int_eq(config_write_add_account(path, name, &minimal, NULL, NULL), 0);
}
END_TEST

START_TEST(test_add_to_invalid_file)
{
	static const char orig[] = "[account a]\nhost = h\n"; /* no user */
	const char *path = write_file("cpmsync.conf", orig, 0600);
	char *err = NULL;

	ck_assert_int_eq(config_write_add_account(path, "b", &minimal, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "user is not set"));
	free(err);
	ck_assert_str_eq(read_file(path), orig);
}
END_TEST

START_TEST(test_add_through_symlink)
{
	const char *target = write_file("real.conf", "# real\n", 0644);
	const char *link = tmp_path("link.conf");
	struct stat st;

	ck_assert_int_eq(symlink("real.conf", link), 0);
	ck_assert_int_eq(config_write_add_account(link, "s", &minimal, NULL, NULL), 0);
	ck_assert_int_eq(lstat(link, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_ptr_nonnull(strstr(read_file(target), "[account s]"));
	ck_assert_uint_eq(mode_of(target), 0644);
	ck_assert_int_eq(config_write_remove_account(link, "s", NULL), 0);
	ck_assert_str_eq(read_file(target), "# real\n\n");
	ck_assert_int_eq(lstat(link, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
}
END_TEST

START_TEST(test_add_relative_path)
{
	struct cpmsync_account_settings s = minimal;
	char expect[PATH_MAX + 64];

	ck_assert_int_eq(chdir(tmpdir), 0);
	s.password_file = NULL;
	s.password = "pw";
	ck_assert_int_eq(config_write_add_account("cpmsync.conf", "r", &s, NULL, NULL), 0);
	snprintf(expect, sizeof(expect), "password_file = %s/r.password\n", tmpdir);
	ck_assert_ptr_nonnull(strstr(read_file(tmp_path("cpmsync.conf")), expect));
	ck_assert_int_eq(config_write_remove_account("cpmsync.conf", "r", NULL), 0);
	ck_assert(!exists(tmp_path("r.password")));
}
END_TEST

/* ------------------------------------------------------------------------ */

#define SECTION(n) "[account " n "]\nhost = h\nuser = u\npassword_file = /p\n"

static const struct {
	const char *name, *before, *after;
} removals[] = {
	/* The middle section, with its trailing blank line and comment. */
	{ "b",
	  "# top\n[general]\ndatabase = /d\n\n" SECTION("a") "\n" SECTION(
		  "b") "# inside b\n\n" SECTION("c"),
	  "# top\n[general]\ndatabase = /d\n\n" SECTION("a") "\n" SECTION("c") },
	/* A comment block glued to the next header stays with it. */
	{ "a", SECTION("a") "\n# about c\n# more\n" SECTION("c"),
	  "# about c\n# more\n" SECTION("c") },
	/* ... but not one separated from it by a blank line. */
	{ "a", SECTION("a") "# about a's end\n\n" SECTION("c"), SECTION("c") },
	/* The last section: up to the end, no final EOL. */
	{ "c", SECTION("a") "\n[account c]\nhost = h\nuser = u\npassword_file = /p",
	  SECTION("a") "\n" },
	/* Header with blanks and a comment; CRLF. */
	{ "x",
	  "[general]\r\n\r\n  [ account   x ]  # me\r\nhost = h\r\nuser = u\r\n"
	  "password_file = /p\r\n\r\n[account y]\r\nhost = h\r\nuser = u\r\n"
	  "password_file = /p\r\n",
	  "[general]\r\n\r\n[account y]\r\nhost = h\r\nuser = u\r\n"
	  "password_file = /p\r\n" },
	/* The only section, after a BOM. */
	{ "a", "\xEF\xBB\xBF" SECTION("a"), "\xEF\xBB\xBF" },
	/* An unknown section after it ends it. */
	{ "a", SECTION("a") "[future]\nkey = v\n", "[future]\nkey = v\n" },
	/* A name that is a prefix of another. */
	{ "a", SECTION("ab") SECTION("a") SECTION("abc"), SECTION("ab") SECTION("abc") },
};

START_TEST(test_remove)
{
	const char *path = write_file("cpmsync.conf", removals[_i].before, 0604);
	char *err = NULL;

	ck_assert_msg(config_write_remove_account(path, removals[_i].name, &err) == 0,
		      "case %d: %s", _i, err ? err : "");
	ck_assert_str_eq(read_file(path), removals[_i].after);
	ck_assert_uint_eq(mode_of(path), 0604);
	assert_no_temp(tmpdir);
}
END_TEST

START_TEST(test_remove_not_found)
{
	static const char orig[] = SECTION("a") "# [account b]\n";
	const char *path = write_file("cpmsync.conf", orig, 0600);
	char *err = NULL;

	ck_assert_int_eq(config_write_remove_account(path, "b", &err), -CPMSYNC_E_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(err, "'b'"));
	free(err);
	ck_assert_str_eq(read_file(path), orig);
	ck_assert_int_eq(config_write_remove_account(tmp_path("none.conf"), "a", &err),
			 -CPMSYNC_E_NOT_FOUND);
	free(err);
	ck_assert_int_eq(config_write_remove_account(path, "a b", &err), -EINVAL);
	free(err);
}
END_TEST

START_TEST(test_remove_keeps_foreign_password_file)
{
	char text[PATH_MAX * 2];
	const char *path;

	/* password_file is another file: a.password is not the account's. */
	write_file("a.password", "pw\n", 0600);
	write_file("b.password", "pw\n", 0600);
	snprintf(text, sizeof(text),
		 "[account a]\nhost = h\nuser = u\npassword_file = /elsewhere\n"
		 "[account b]\nhost = h\nuser = u\npassword_command = cat %s\n",
		 tmp_path("b.password"));
	path = write_file("cpmsync.conf", text, 0600);
	ck_assert_int_eq(config_write_remove_account(path, "a", NULL), 0);
	ck_assert_int_eq(config_write_remove_account(path, "b", NULL), 0);
	ck_assert(exists(tmp_path("a.password")));
	ck_assert(exists(tmp_path("b.password")));
	ck_assert_str_eq(read_file(path), "");

	/* A relative password_file naming it is the account's. */
	path = write_file("cpmsync.conf",
			  "[account a]\nhost = h\nuser = u\n"
			  "password_file = a.password\n",
			  0600);
	ck_assert_int_eq(config_write_remove_account(path, "a", NULL), 0);
	ck_assert(!exists(tmp_path("a.password")));
}
END_TEST

START_TEST(test_round_trip)
{
	static const char orig[] = "# mine\n[general]\noutbox = /o\n";
	const char *path = write_file("cpmsync.conf", orig, 0600);

	ck_assert_int_eq(config_write_add_account(path, "one", &full, NULL, NULL), 0);
	ck_assert_int_eq(config_write_add_account(path, "two", &minimal, NULL, NULL), 0);
	ck_assert_int_eq(config_write_remove_account(path, "one", NULL), 0);
	ck_assert_int_eq(config_write_remove_account(path, "two", NULL), 0);
	ck_assert_str_eq(read_file(path), "# mine\n[general]\noutbox = /o\n\n");
}
END_TEST

static Suite *config_write_suite(void)
{
	Suite *s = suite_create("config-write");
	TCase *tc;

	tc = tcase_create("add");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_add_creates_file_and_dir);
	tcase_add_test(tc, test_add_cpm_root);
	tcase_add_test(tc, test_add_minimal_appends);
	tcase_add_test(tc, test_add_crlf);
	tcase_add_test(tc, test_add_password_in_clear);
	tcase_add_test(tc, test_add_password_symlink_refused);
	tcase_add_test(tc, test_add_certificates);
	tcase_add_test(tc, test_add_exists);
	tcase_add_loop_test(tc, test_add_invalid, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_add_folder_with_blank);
	tcase_add_test(tc, test_add_name_too_long);
	tcase_add_test(tc, test_add_to_invalid_file);
	tcase_add_test(tc, test_add_through_symlink);
	tcase_add_test(tc, test_add_relative_path);
	suite_add_tcase(s, tc);

	tc = tcase_create("remove");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_remove, 0, (int)(sizeof(removals) / sizeof(removals[0])));
	tcase_add_test(tc, test_remove_not_found);
	tcase_add_test(tc, test_remove_keeps_foreign_password_file);
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);

	return s;
}

TEST_MAIN(config_write_suite)
