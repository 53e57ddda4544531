/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <cpmsync/account.h>
#include <cpmsync/cpm-folders.h>
#include <cpmsync/io.h>
#include <cpmsync/loop.h>
#include <cpmsync/settings.h>
#include <cpmsync/utf8.h>

#include "util.h"

/* ------------------------------------------------------------------------ */
/* Keys and parser state */

enum section {
	SECTION_NONE, /* before the first header */
	SECTION_GENERAL,
	SECTION_ACCOUNT,
	SECTION_UNKNOWN, /* warned about once; its keys are skipped */
};

enum key {
	KEY_DATABASE,
	KEY_OUTBOX,
	KEY_HOST,
	KEY_PORT,
	KEY_SECURITY,
	KEY_USER,
	KEY_PASSWORD_FILE,
	KEY_PASSWORD_COMMAND,
	KEY_CA_FILE,
	KEY_CLIENT_CERT,
	KEY_FOLDERS,
	KEY_SYNC_BODIES,
	KEY_TIMEOUT,
	KEY_CPM_ROOT,
	KEY_POLL_INTERVAL,
	KEY_OTHER_NAMESPACES,
	KEY_MAX
};

static const struct {
	const char *name;
	bool general; /* in [general]; otherwise in [account NAME] */
} key_table[KEY_MAX] = {
	[KEY_DATABASE] = { "database", true },
	[KEY_OUTBOX] = { "outbox", true },
	[KEY_HOST] = { "host", false },
	[KEY_PORT] = { "port", false },
	[KEY_SECURITY] = { "security", false },
	[KEY_USER] = { "user", false },
	[KEY_PASSWORD_FILE] = { "password_file", false },
	[KEY_PASSWORD_COMMAND] = { "password_command", false },
	[KEY_CA_FILE] = { "ca_file", false },
	[KEY_CLIENT_CERT] = { "client_cert", false },
	[KEY_FOLDERS] = { "folders", false },
	[KEY_SYNC_BODIES] = { "sync_bodies", false },
	[KEY_TIMEOUT] = { "timeout", false },
	[KEY_CPM_ROOT] = { "cpm_root", false },
	[KEY_POLL_INTERVAL] = { "poll_interval", false },
	[KEY_OTHER_NAMESPACES] = { "other_namespaces", false },
};

struct parser {
	const char *name; /* for messages */
	char *base_dir;	  /* absolute; relative path values resolve here */
	unsigned line;	  /* current line, from 1 */
	char *error;	  /* the first error */
	struct config *c;
	size_t alloc_accounts;
	enum section section;
	unsigned section_line;
	unsigned general_line;	    /* 0: no [general] yet */
	unsigned key_line[KEY_MAX]; /* where each key was set in this section */
	const struct stat *st;	    /* the file's, when read from one (config_load) */
};

static int AGENT_ATTR_FORMAT(3, 4) fail_at(struct parser *p, unsigned line, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	if (p->error)
		return -EINVAL;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (line)
		p->error = xasprintf("%s:%u: %s", p->name, line, msg);
	else
		p->error = xasprintf("%s: %s", p->name, msg);
	return -EINVAL;
}

#define fail(p, ...) fail_at((p), (p)->line, __VA_ARGS__)

static void AGENT_ATTR_FORMAT(2, 3) add_warning(struct parser *p, const char *fmt, ...)
{
	struct config *c = p->c;
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	if (c->n_warnings > CONFIG_MAX_WARNINGS)
		return;
	c->warnings = xreallocarray(c->warnings, c->n_warnings + 1, sizeof(*c->warnings));
	if (c->n_warnings == CONFIG_MAX_WARNINGS) {
		c->warnings[c->n_warnings++] =
			xasprintf("%s:%u: too many warnings, not listing more", p->name, p->line);
		return;
	}
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	c->warnings[c->n_warnings++] = xasprintf("%s:%u: %s", p->name, p->line, msg);
}

/* ------------------------------------------------------------------------ */
/* Small string helpers */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char *trim(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool valid_key(const char *s)
{
	for (; *s; s++)
		if (!is_alnum(*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/*
 * Decimal digits only, no sign.  Returns 0, -EINVAL (not a number) or
 * -ERANGE (outside min..max).
 */
static int parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	bool big = false;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > max)
			big = true; /* keep scanning for non-digits */
		else
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (big || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

/* Refuses NUL, control characters (but TAB) and ill-formed UTF-8. */
static int check_text(struct parser *p, const char *line, size_t n)
{
	const unsigned char *s = (const unsigned char *)line;

	for (size_t i = 0; i < n;) {
		size_t len;

		if (s[i] == 0)
			return fail(p, "NUL byte in line");
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F)
			return fail(p, "control character 0x%02X in line", s[i]);
		len = cpmsync_utf8_decode(line + i, n - i, NULL);
		if (!len)
			return fail(p, "invalid UTF-8 in line");
		/* C1 controls (U+0080..U+009F) can drive terminals too. */
		if (len == 2 && s[i] == 0xC2 && s[i + 1] < 0xA0)
			return fail(p, "control character U+%04X in line", s[i + 1]);
		i += len;
	}
	return 0;
}

/* $HOME if it is set to an absolute path, else NULL. */
static const char *home_dir(void)
{
	const char *home = getenv("HOME");

	return home && home[0] == '/' ? home : NULL;
}

/* dir + "/" + rel, without doubled slashes; a new string. */
static char *path_join(const char *dir, const char *rel)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return xstrndup(dir, n);
	if (n == 1 && dir[0] == '/')
		n = 0;
	return xasprintf("%.*s/%s", (int)n, dir, rel);
}

/*
 * An XDG base directory: $var if set to an absolute path, else
 * $HOME/fallback.  NULL if neither is usable.
 */
static char *xdg_dir(const char *var, const char *fallback)
{
	const char *v = getenv(var);
	const char *home;

	if (v && v[0] == '/')
		return xstrdup(v);
	home = home_dir();
	if (!home)
		return NULL;
	return path_join(home, fallback);
}

char *config_default_path(void)
{
	_cleanup_free_ char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");

	if (!dir)
		return NULL;
	return path_join(dir, "cpmsync/cpmsync.conf");
}

char *config_default_data_dir(void)
{
	_cleanup_free_ char *dir = xdg_dir("XDG_DATA_HOME", ".local/share");

	if (!dir)
		return NULL;
	return path_join(dir, "cpmsync");
}

/* ------------------------------------------------------------------------ */
/* Values */

static int parse_path(struct parser *p, const char *key, const char *value, char **ret)
{
	const char *home;

	if (value[0] == '/') {
		*ret = xstrdup(value);
		return 0;
	}
	if (value[0] != '~') {
		*ret = path_join(p->base_dir, value);
		return 0;
	}
	if (value[1] && value[1] != '/')
		return fail(p,
			    "%s '%s': only '~/' is expanded at the start of a "
			    "path (not '~user')",
			    key, value);
	home = home_dir();
	if (!home)
		return fail(p,
			    "%s '%s': cannot expand '~': $HOME is not set to "
			    "an absolute path",
			    key, value);
	*ret = path_join(home, value + 1);
	return 0;
}

static void parse_folders(char *value, char ***ret)
{
	char **v = NULL;
	size_t n = 0;

	/* value is trimmed and non-empty, so there is at least one pattern. */
	for (char *s = value; *s;) {
		size_t len = strcspn(s, " \t");

		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = xstrndup(s, len);
		s += len;
		while (is_blank(*s))
			s++;
	}
	v[n] = NULL;
	*ret = v;
}

static int parse_account_key(struct parser *p, struct config_account *a, enum key k, char *value)
{
	uint64_t n;
	int r;

	switch (k) {
	case KEY_HOST:
		if (!cpmsync_host_valid(value))
			return fail(p,
				    "invalid host '%s' (expected a host name "
				    "or an IP address)",
				    value);
		a->host = xstrdup(value);
		return 0;
	case KEY_PORT:
		r = parse_number(value, 1, 65535, &n);
		if (r == -EINVAL)
			return fail(p, "port '%s' is not a number", value);
		if (r < 0)
			return fail(p, "port %s is out of range (1-65535)", value);
		a->port = (uint16_t)n;
		return 0;
	case KEY_SECURITY:
		if (cpmsync_security_from_string(value, &a->security) < 0)
			return fail(p,
				    "unknown security '%s' (expected tls, "
				    "starttls or none)",
				    value);
		return 0;
	case KEY_USER:
		a->user = xstrdup(value);
		return 0;
	case KEY_PASSWORD_FILE:
		return parse_path(p, key_table[k].name, value, &a->password_file);
	case KEY_PASSWORD_COMMAND:
		a->password_command = xstrdup(value);
		return 0;
	case KEY_CA_FILE:
		return parse_path(p, key_table[k].name, value, &a->ca_file);
	case KEY_CLIENT_CERT:
		return parse_path(p, key_table[k].name, value, &a->client_cert);
	case KEY_FOLDERS:
		parse_folders(value, &a->folders);
		return 0;
	case KEY_SYNC_BODIES:
		r = cpmsync_sync_bodies_from_string(value, &a->sync_bodies);
		if (r == -EINVAL)
			return fail(p,
				    "invalid sync_bodies '%s' (expected all, "
				    "none or a size in KiB)",
				    value);
		if (r < 0)
			return fail(p,
				    "sync_bodies %s is out of range (1-%d KiB; "
				    "'none' keeps no bodies)",
				    value, CONFIG_MAX_SYNC_BODIES);
		return 0;
	case KEY_TIMEOUT:
		r = parse_number(value, 1, CONFIG_MAX_TIMEOUT, &n);
		if (r == -EINVAL)
			return fail(p, "invalid timeout '%s' (expected seconds)", value);
		if (r < 0)
			return fail(p, "timeout %s is out of range (1-%d seconds)", value,
				    CONFIG_MAX_TIMEOUT);
		a->timeout = (unsigned)n;
		return 0;
	case KEY_POLL_INTERVAL:
		r = parse_number(value, CONFIG_POLL_MIN, CONFIG_POLL_MAX, &n);
		if (r == -EINVAL)
			return fail(p, "invalid poll_interval '%s' (expected seconds)", value);
		if (r < 0)
			return fail(p, "poll_interval %s is out of range (%d-%d seconds)", value,
				    CONFIG_POLL_MIN, CONFIG_POLL_MAX);
		a->poll_interval = (unsigned)n;
		return 0;
	case KEY_CPM_ROOT: {
		const char *why = NULL;

		/* No quoting in this file: "" stands for the empty root, the top level. */
		if (str_eq(value, "\"\""))
			value[0] = 0;
		if (!cpmsync_cpm_root_valid(value, &why))
			return fail(p, "cpm_root '%s' %s", value, why);
		free(a->cpm_root);
		a->cpm_root = xstrdup(value);
		return 0;
	}
	case KEY_OTHER_NAMESPACES:
		if (str_eq(value, "hide"))
			a->show_other_namespaces = false;
		else if (str_eq(value, "show"))
			a->show_other_namespaces = true;
		else
			return fail(p, "invalid other_namespaces '%s' (expected hide or show)",
				    value);
		return 0;
	default:
		return fail(p, "internal error: key '%s'", key_table[k].name);
	}
}

static bool known_key(const char *s)
{
	for (int k = 0; k < KEY_MAX; k++)
		if (str_eq(s, key_table[k].name))
			return true;
	return false;
}

static int parse_key(struct parser *p, const char *key, char *value)
{
	struct config_account *a = NULL;
	int k;

	if (p->section == SECTION_UNKNOWN)
		return 0;
	for (k = 0; k < KEY_MAX; k++)
		if (str_eq(key, key_table[k].name))
			break;
	if (k == KEY_MAX) {
		if (p->section == SECTION_NONE)
			return fail(p, "key '%s' outside any section", key);
		if (p->section == SECTION_GENERAL)
			add_warning(p, "unknown key '%s' in [general], ignoring it", key);
		else
			add_warning(p, "unknown key '%s' in [account %s], ignoring it", key,
				    p->c->accounts[p->c->n_accounts - 1].name);
		return 0;
	}
	if (key_table[k].general && p->section != SECTION_GENERAL)
		return fail(p, "key '%s' outside the [general] section", key);
	if (!key_table[k].general && p->section != SECTION_ACCOUNT)
		return fail(p, "key '%s' outside an [account] section", key);
	if (p->key_line[k])
		return fail(p, "duplicate key '%s' (first set at line %u)", key, p->key_line[k]);
	p->key_line[k] = p->line;
	if (!*value)
		return fail(p, "empty value for '%s'", key);

	if (k == KEY_DATABASE) {
		p->c->database_line = p->line;
		return parse_path(p, key, value, &p->c->database);
	}
	if (k == KEY_OUTBOX)
		return parse_path(p, key, value, &p->c->outbox);
	a = &p->c->accounts[p->c->n_accounts - 1];
	return parse_account_key(p, a, (enum key)k, value);
}

/*
 * client_cert holds a private key: the rule of a password file (a regular
 * file, not a symbolic link, that only the user can read), and owned by
 * the user.  Judged when the configuration comes from a file; a file that
 * cannot be opened is left to the connection, which fails with the reason.
 */
static int check_client_cert(struct parser *p, const struct config_account *a)
{
	unsigned line = p->key_line[KEY_CLIENT_CERT];
	_cleanup_close_ int fd = -1;
	struct stat st;

	fd = open(a->client_cert, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ELOOP)
		return fail_at(p, line,
			       "account '%s': client certificate file '%s' is a symbolic link; "
			       "refusing it",
			       a->name, a->client_cert);
	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	if (!S_ISREG(st.st_mode))
		return fail_at(p, line,
			       "account '%s': client certificate file '%s' is not a regular file",
			       a->name, a->client_cert);
	if (st.st_mode & 077)
		return fail_at(p, line,
			       "account '%s': client certificate file '%s' (with its private key) "
			       "is %s by group or others (mode %04o); chmod 600 it",
			       a->name, a->client_cert,
			       st.st_mode & 044 ? "readable" : "accessible",
			       (unsigned)(st.st_mode & 07777));
	if (st.st_uid != geteuid())
		return fail_at(p, line,
			       "account '%s': client certificate file '%s' is owned by uid %u, not "
			       "by this user (uid %u); refusing it",
			       a->name, a->client_cert, (unsigned)st.st_uid, (unsigned)geteuid());
	return 0;
}

/* Checks the account section that just ended and applies its defaults. */
static int end_section(struct parser *p)
{
	struct config_account *a;
	struct cpmsync_account_settings s;
	unsigned lf = p->key_line[KEY_PASSWORD_FILE];
	unsigned lc = p->key_line[KEY_PASSWORD_COMMAND];
	const char *why;

	if (p->section != SECTION_ACCOUNT)
		return 0;
	a = &p->c->accounts[p->c->n_accounts - 1];
	/* Each value passed its own check as it was read; what is left is
	 * what the section as a whole must have, judged by the same check
	 * as AddAccount's. */
	s = (struct cpmsync_account_settings){
		.host = a->host,
		.user = a->user,
		.password_file = a->password_file,
		.password_command = a->password_command,
		.ca_file = a->ca_file,
	};
	switch (cpmsync_account_settings_check(&s, &why)) {
	case CPMSYNC_SETTINGS_OK:
		break;
	case CPMSYNC_SETTINGS_NO_HOST:
		return fail_at(p, p->section_line, "account '%s': host is not set", a->name);
	case CPMSYNC_SETTINGS_NO_USER:
		return fail_at(p, p->section_line, "account '%s': user is not set", a->name);
	case CPMSYNC_SETTINGS_TWO_PASSWORDS:
		return fail_at(p, lf > lc ? lf : lc,
			       "account '%s': both password_file (line %u) and "
			       "password_command (line %u) are set; use one",
			       a->name, lf, lc);
	case CPMSYNC_SETTINGS_NO_PASSWORD:
		/* A client certificate logs in with SASL EXTERNAL alone. */
		if (a->client_cert)
			break;
		return fail_at(p, p->section_line,
			       "account '%s': neither password_file nor "
			       "password_command is set",
			       a->name);
	default: /* not reachable from a file: each key was checked when read */
		return fail_at(p, p->section_line, "account '%s': a setting %s", a->name, why);
	}
	/*
	 * A command the daemon runs: whoever can write the file can run
	 * commands as the user.  The same rule as for a password file, for
	 * writing: only the user.
	 */
	if (a->password_command && p->st && (p->st->st_mode & 022))
		return fail_at(p, lc,
			       "account '%s': password_command in a file writable by group or "
			       "others (mode %04o): whoever can write it can run commands as "
			       "you; chmod go-w it",
			       a->name, (unsigned)(p->st->st_mode & 07777));
	if (a->password_command && p->st && p->st->st_uid != geteuid())
		return fail_at(p, lc,
			       "account '%s': password_command in a file owned by uid %u, not by "
			       "this user (uid %u); refusing to run it",
			       a->name, (unsigned)p->st->st_uid, (unsigned)geteuid());
	if (a->client_cert && p->st && check_client_cert(p, a) < 0)
		return -EINVAL;
	if (a->security == CPMSYNC_SECURITY_NONE && !host_is_loopback(a->host))
		return fail_at(p, p->key_line[KEY_SECURITY],
			       "account '%s': security 'none' sends the password in clear "
			       "text and is only allowed for loopback hosts (127.0.0.0/8, "
			       "::1, localhost), not '%s'",
			       a->name, a->host);
	if (!a->port)
		a->port = a->security == CPMSYNC_SECURITY_TLS ? 993 : 143;
	if (!a->folders) {
		a->folders = xcalloc(2, sizeof(*a->folders));
		a->folders[0] = xstrdup("*");
	}
	p->section = SECTION_NONE;
	return 0;
}

static void begin_section(struct parser *p, enum section s)
{
	p->section = s;
	p->section_line = p->line;
	memset(p->key_line, 0, sizeof(p->key_line));
}

static int add_account(struct parser *p, const char *name)
{
	struct config *c = p->c;
	struct config_account *a;

	if (!cpmsync_account_name_valid(name) && strlen(name) <= CONFIG_MAX_NAME)
		return fail(p,
			    "invalid account name '%s' (allowed: letters, "
			    "digits, '_' and '-')",
			    name);
	if (strlen(name) > CONFIG_MAX_NAME)
		return fail(p, "account name '%.16s...' is too long (limit %d)", name,
			    CONFIG_MAX_NAME);
	for (size_t i = 0; i < c->n_accounts; i++)
		if (str_eq(c->accounts[i].name, name))
			return fail(p, "duplicate account '%s' (first at line %u)", name,
				    c->accounts[i].line);
	if (c->n_accounts >= CONFIG_MAX_ACCOUNTS)
		return fail(p, "too many accounts (limit %d)", CONFIG_MAX_ACCOUNTS);
	if (c->n_accounts == p->alloc_accounts) {
		p->alloc_accounts = p->alloc_accounts ? p->alloc_accounts * 2 : 4;
		c->accounts = xreallocarray(c->accounts, p->alloc_accounts, sizeof(*c->accounts));
	}
	a = &c->accounts[c->n_accounts++];
	*a = (struct config_account){
		.name = xstrdup(name),
		.security = CPMSYNC_SECURITY_TLS,
		.sync_bodies = CPMSYNC_SYNC_BODIES_ALL,
		.line = p->line,
	};
	begin_section(p, SECTION_ACCOUNT);
	return 0;
}

/* s is trimmed and starts with '['. */
static int parse_section(struct parser *p, char *s)
{
	size_t n = strlen(s);
	char *inner, *word, *rest;
	int r;

	if (n < 2 || s[n - 1] != ']')
		return fail(p,
			    "bad section header '%s' (expected [general] or "
			    "[account NAME])",
			    s);
	r = end_section(p);
	if (r < 0)
		return r;
	s[n - 1] = '\0';
	inner = trim(s + 1);
	word = inner;
	rest = word + strcspn(word, " \t");
	if (*rest) {
		*rest++ = '\0';
		rest = trim(rest);
	}

	if (str_eq(word, "general")) {
		if (*rest)
			return fail(p,
				    "bad section header '[general %s]' "
				    "(expected [general])",
				    rest);
		if (p->general_line)
			return fail(p, "duplicate section [general] (first at line %u)",
				    p->general_line);
		p->general_line = p->line;
		begin_section(p, SECTION_GENERAL);
		return 0;
	}
	if (str_eq(word, "account")) {
		if (!*rest)
			return fail(p, "missing account name (expected [account NAME])");
		return add_account(p, rest);
	}
	if (!*word)
		return fail(p, "bad section header '[]' (expected [general] or "
			       "[account NAME])");
	if (*rest)
		add_warning(p, "unknown section '[%s %s]', ignoring it and its keys", word, rest);
	else
		add_warning(p, "unknown section '[%s]', ignoring it and its keys", word);
	begin_section(p, SECTION_UNKNOWN);
	return 0;
}

/* line is NUL-terminated, checked by check_text() and without its EOL. */
static int parse_line(struct parser *p, char *line)
{
	char *s, *eq, *key, *value;

	/* A '#' at the start or after a blank starts a comment. */
	for (size_t i = 0; line[i]; i++)
		if (line[i] == '#' && (i == 0 || is_blank(line[i - 1]))) {
			line[i] = '\0';
			break;
		}
	s = trim(line);
	if (!*s)
		return 0;
	if (*s == '[')
		return parse_section(p, s);
	eq = strchr(s, '=');
	/* A line that is no setting may be a password pasted by mistake:
	 * repeated only when it is a key's name, never to the log and
	 * Manager1.ConfigError otherwise. */
	if (!eq && known_key(s))
		return fail(p,
			    "missing '=' in '%s' (expected 'key = value' or a "
			    "[section] header)",
			    s);
	if (!eq)
		return fail(p, "missing '=' (expected 'key = value' or a [section] header; the "
			       "line is not repeated here, as it may hold a secret)");
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (!*key)
		return fail(p, "missing key before '='");
	if (!valid_key(key))
		return fail(p, "invalid key '%s'", key);
	return parse_key(p, key, value);
}

static int parse_data(struct parser *p, const char *data, size_t len)
{
	char buf[CONFIG_MAX_LINE + 1];
	size_t pos = 0;
	int r;

	if (len > CONFIG_MAX_SIZE)
		return fail_at(p, 0, "file too large (%zu bytes, limit %d)", len, CONFIG_MAX_SIZE);
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *start = data + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;

		pos += n + (nl ? 1 : 0);
		p->line++;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n > CONFIG_MAX_LINE)
			return fail(p, "line too long (more than %d bytes)", CONFIG_MAX_LINE);
		r = check_text(p, start, n);
		if (r < 0)
			return r;
		memcpy(buf, start, n);
		buf[n] = '\0';
		r = parse_line(p, buf);
		if (r < 0)
			return r;
	}
	r = end_section(p);
	if (r < 0)
		return r;

	if (!p->c->database || !p->c->outbox) {
		_cleanup_free_ char *data_home = xdg_dir("XDG_DATA_HOME", ".local/share");

		if (!data_home)
			return fail_at(p, 0,
				       "%s is not set and neither $XDG_DATA_HOME nor "
				       "$HOME is set to an absolute path",
				       p->c->database ? "outbox" : "database");
		if (!p->c->database)
			p->c->database = path_join(data_home, "cpmsync/store.db");
		if (!p->c->outbox)
			p->c->outbox = path_join(data_home, "cpmsync/outbox");
	}
	return 0;
}

/* The absolute directory part of name. */
static char *base_dir_of(const char *name)
{
	const char *slash = strrchr(name, '/');
	_cleanup_free_ char *cwd = NULL;

	if (name[0] == '/')
		return slash == name ? xstrdup("/") : xstrndup(name, (size_t)(slash - name));
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (!slash)
		return TAKE_PTR(cwd);
	return xasprintf("%s/%.*s", cwd, (int)(slash - name), name);
}

/* config_parse_buffer(), st: the file's (NULL: not from a file). */
static int parse_buffer(const char *name, const char *data, size_t len, const struct stat *st,
			struct config **ret, char **ret_error)
{
	struct parser p = { .name = name, .st = st };
	int r;

	p.c = xcalloc(1, sizeof(*p.c));
	p.c->path = xstrdup(name);
	p.base_dir = base_dir_of(name);
	if (!p.base_dir)
		r = fail_at(&p, 0, "cannot find the current directory: %s", strerror(errno));
	else
		r = parse_data(&p, data, len);
	free(p.base_dir);
	if (r < 0) {
		config_free(p.c);
		if (ret_error)
			*ret_error = p.error;
		else
			free(p.error);
		return r;
	}
	*ret = p.c;
	return 0;
}

int config_parse_buffer(const char *name, const char *data, size_t len, struct config **ret,
			char **ret_error)
{
	return parse_buffer(name, data, len, NULL, ret, ret_error);
}

int config_load(const char *path, struct config **ret, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	struct stat st;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		goto fail_errno;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail_errno;
	}
	if (!S_ISREG(st.st_mode)) {
		if (ret_error)
			*ret_error = xasprintf("%s: not a regular file", path);
		return -EINVAL;
	}
	r = cpmsync_read_all(fd, CONFIG_MAX_SIZE, &data, &len);
	if (r == -EFBIG) {
		if (ret_error)
			*ret_error = xasprintf("%s: file too large (more than %d bytes)", path,
					       CONFIG_MAX_SIZE);
		return -EFBIG;
	}
	if (r < 0)
		goto fail_errno;
	return parse_buffer(path, data, len, &st, ret, ret_error);

fail_errno:
	if (ret_error)
		*ret_error = xasprintf("%s: %s", path, strerror(-r));
	return r;
}

static void account_clear(struct config_account *a)
{
	free(a->name);
	free(a->host);
	free(a->user);
	free(a->password_file);
	free(a->password_command);
	free(a->ca_file);
	free(a->client_cert);
	free(a->cpm_root);
	if (a->folders)
		for (char **f = a->folders; *f; f++)
			free(*f);
	free(a->folders);
	free(a->password_error);
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	free(c->path);
	free(c->database);
	free(c->outbox);
	for (size_t i = 0; i < c->n_accounts; i++)
		account_clear(&c->accounts[i]);
	free(c->accounts);
	for (size_t i = 0; i < c->n_warnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c);
	return NULL;
}

const struct config_account *config_find_account(const struct config *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->n_accounts; i++)
		if (str_eq(c->accounts[i].name, name))
			return &c->accounts[i];
	return NULL;
}

static bool strv_equal(char *const *a, char *const *b)
{
	if (!a || !b)
		return a == b;
	for (; *a && *b; a++, b++)
		if (!str_eq(*a, *b))
			return false;
	return !*a && !*b;
}

const char *config_account_cpm_root(const struct config_account *a)
{
	return a && a->cpm_root ? a->cpm_root : CONFIG_DEFAULT_CPM_ROOT;
}

unsigned config_account_poll_interval_ms(const struct config_account *a)
{
	unsigned sec = a && a->poll_interval ? a->poll_interval : CONFIG_POLL_DEFAULT;

	return sec * 1000u;
}

bool config_account_equal(const struct config_account *a, const struct config_account *b)
{
	return str_eq_null(a->name, b->name) && str_eq_null(a->host, b->host) &&
	       a->port == b->port && a->security == b->security && str_eq_null(a->user, b->user) &&
	       str_eq_null(a->password_file, b->password_file) &&
	       str_eq_null(a->password_command, b->password_command) &&
	       str_eq_null(a->ca_file, b->ca_file) && str_eq_null(a->client_cert, b->client_cert) &&
	       strv_equal(a->folders, b->folders) && a->sync_bodies == b->sync_bodies &&
	       a->timeout == b->timeout && a->show_other_namespaces == b->show_other_namespaces;
}

/* ------------------------------------------------------------------------ */
/* Passwords */

/* The first line of some secret text, gathered from chunks. */
struct secret_line {
	char buf[CONFIG_MAX_PASSWORD + 1]; /* + a CR before the LF */
	size_t len;
	size_t total; /* bytes seen, line or not */
	bool done;    /* LF seen, or too long */
	bool too_long;
};

static void secret_line_feed(struct secret_line *l, const char *data, size_t n)
{
	const char *nl;
	size_t take;

	l->total += n;
	if (l->done)
		return;
	nl = memchr(data, '\n', n);
	take = nl ? (size_t)(nl - data) : n;
	if (take > sizeof(l->buf) - l->len) {
		take = sizeof(l->buf) - l->len;
		l->too_long = true;
		l->done = true;
	}
	memcpy(l->buf + l->len, data, take);
	l->len += take;
	if (nl)
		l->done = true;
}

/*
 * Checks the line; on success hands over a copy to *ret.  what is
 * "password file '...'" or "password_command".  Wipes l either way.
 */
static int secret_line_finish(struct secret_line *l, const char *what, char **ret, char **ret_error)
{
	int r = 0;

	if (l->len > 0 && l->buf[l->len - 1] == '\r' && !l->too_long)
		l->len--;
	if (l->too_long || l->len > CONFIG_MAX_PASSWORD) {
		r = -E2BIG;
		if (ret_error)
			*ret_error = xasprintf("%s: the first line is longer than %d bytes", what,
					       CONFIG_MAX_PASSWORD);
	} else if (l->total == 0) {
		r = -ENODATA;
		if (ret_error)
			*ret_error = xasprintf("%s: empty (the password is its first line)", what);
	} else if (l->len == 0) {
		r = -ENODATA;
		if (ret_error)
			*ret_error = xasprintf("%s: the first line is empty", what);
	} else if (memchr(l->buf, '\0', l->len)) {
		r = -EINVAL;
		if (ret_error)
			*ret_error = xasprintf("%s: the first line contains a NUL byte", what);
	} else {
		*ret = xstrndup(l->buf, l->len);
	}
	explicit_bzero(l, sizeof(*l));
	return r;
}

static int password_from_file(const char *path, char **ret_password, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	struct secret_line line = { 0 };
	_cleanup_free_ char *what = NULL;
	char chunk[1024];
	struct stat st;
	int r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (ret_error && r == -ELOOP)
			*ret_error = xasprintf("password file '%s' is a "
					       "symbolic link; refusing it",
					       path);
		else if (ret_error)
			*ret_error =
				xasprintf("cannot open password file '%s': %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		if (ret_error)
			*ret_error =
				xasprintf("cannot stat password file '%s': %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		if (ret_error)
			*ret_error = xasprintf("password file '%s' is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		if (ret_error)
			*ret_error = xasprintf("password file '%s' is %s by group or others (mode "
					       "%04o); chmod 600 it",
					       path, st.st_mode & 044 ? "readable" : "accessible",
					       (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}

	while (!line.done) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			explicit_bzero(chunk, sizeof(chunk));
			explicit_bzero(&line, sizeof(line));
			if (ret_error)
				*ret_error = xasprintf("cannot read password file '%s': %s", path,
						       strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		secret_line_feed(&line, chunk, (size_t)n);
	}
	explicit_bzero(chunk, sizeof(chunk));
	what = xasprintf("password file '%s'", path);
	return secret_line_finish(&line, what, ret_password, ret_error);
}

/* A copy of fd numbered 3 or above (so that dup2 to 0/1 cannot clash). */
static int fd_above_stdio(int fd)
{
	int r;

	if (fd > 2)
		return fd;
	r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pidfd for the child, or -1 if the kernel has none (then EOF alone ends). */
static int pidfd_open_fd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

static void __attribute__((noreturn)) exec_child(const char *command, int in_fd, int out_fd)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* Only async-signal-safe calls here: the daemon may have threads. */
	if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	execl("/bin/sh", "sh", "-c", command, (char *)NULL);
	_exit(127);
}

/*
 * Starts /bin/sh -c command with stdin from /dev/null and stdout into a
 * pipe: *ret_pid and *ret_rd (non-blocking, close-on-exec).  0 or -errno.
 */
static int spawn_command(const char *command, pid_t *ret_pid, int *ret_rd)
{
	_cleanup_close_ int null_fd = -1, rd = -1, wr = -1;
	int fds[2];
	pid_t pid;

	null_fd = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (null_fd < 0 || pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	rd = fds[0];
	wr = fd_above_stdio(fds[1]);
	if (wr < 0 || fcntl(rd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		exec_child(command, null_fd, wr);
	*ret_pid = pid;
	*ret_rd = TAKE_FD(rd);
	return 0;
}

/* How a password_command run ended, before its status is known. */
enum command_end {
	COMMAND_DONE, /* EOF, or the command exited */
	COMMAND_TIMED_OUT,
	COMMAND_FAILED, /* reading its output failed */
	COMMAND_FLOOD,	/* printed too much */
};

/*
 * Kills the command if it must die, reaps it and judges the run.  Wipes
 * line.  Returns what config_account_password() returns.
 */
static int command_finish(pid_t pid, enum command_end end, unsigned timeout_ms,
			  struct secret_line *line, char **ret_password, char **ret_error)
{
	int status, r;

	if (end != COMMAND_DONE)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			explicit_bzero(line, sizeof(*line));
			if (ret_error)
				*ret_error = xasprintf("cannot wait for password_command: %s",
						       strerror(-r));
			return r;
		}
	}
	if (end != COMMAND_DONE)
		explicit_bzero(line, sizeof(*line));
	switch (end) {
	case COMMAND_FAILED:
		if (ret_error)
			*ret_error = xstrdup("cannot read the output of password_command");
		return -EIO;
	case COMMAND_FLOOD:
		if (ret_error)
			*ret_error = xasprintf("password_command printed more "
					       "than %d bytes and was killed",
					       CONFIG_MAX_COMMAND_OUTPUT);
		return -E2BIG;
	case COMMAND_TIMED_OUT:
		if (ret_error)
			*ret_error = timeout_ms % 1000
					     ? xasprintf("password_command did not finish within "
							 "%u ms and was killed",
							 timeout_ms)
					     : xasprintf("password_command did not finish within "
							 "%u s and was killed",
							 timeout_ms / 1000);
		return -ETIMEDOUT;
	case COMMAND_DONE:
		break;
	}
	if (WIFSIGNALED(status)) {
		explicit_bzero(line, sizeof(*line));
		if (ret_error)
			*ret_error = xasprintf("password_command was killed by signal %d",
					       WTERMSIG(status));
		return -EIO;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		explicit_bzero(line, sizeof(*line));
		if (ret_error)
			*ret_error = xasprintf("password_command exited with status %d",
					       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	if (line->total == 0) {
		if (ret_error)
			*ret_error = xstrdup("password_command printed nothing");
		return -ENODATA;
	}
	return secret_line_finish(line, "password_command", ret_password, ret_error);
}

static int password_from_command(const char *command, char **ret_password, char **ret_error)
{
	_cleanup_close_ int rd = -1, pidfd = -1;
	struct secret_line line = { 0 };
	enum command_end end = COMMAND_DONE;
	bool exited = false;
	int64_t deadline;
	char chunk[1024];
	pid_t pid;
	int r;

	r = spawn_command(command, &pid, &rd);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot run password_command: %s", strerror(-r));
		return r;
	}

	/*
	 * Read to EOF, so that the command never blocks on a full pipe.  A
	 * background process it started may keep the pipe open: once the
	 * command itself has exited (its pidfd turns readable), take what is
	 * buffered and stop.
	 */
	pidfd = pidfd_open_fd(pid);
	deadline = now_ms() + CONFIG_PASSWORD_TIMEOUT_MS;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = rd, .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
		};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			end = COMMAND_TIMED_OUT;
			break;
		}
		r = poll(pfd, 2, (int)left);
		if (r < 0 && errno != EINTR) {
			end = COMMAND_FAILED;
			break;
		}
		if (r <= 0)
			continue;
		if (!pfd[0].revents && pfd[1].revents)
			exited = true;
		n = read(rd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !exited)
			continue;
		if (n < 0 && errno != EAGAIN)
			end = COMMAND_FAILED;
		if (n <= 0)
			break;
		secret_line_feed(&line, chunk, (size_t)n);
		if (line.total > CONFIG_MAX_COMMAND_OUTPUT) {
			end = COMMAND_FLOOD;
			break;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	/* A command still writing gets EPIPE; one still running is killed. */
	close(TAKE_FD(rd));
	return command_finish(pid, end, CONFIG_PASSWORD_TIMEOUT_MS, &line, ret_password, ret_error);
}

/* ------------------------------------------------------------------------ */
/* password_command on the loop */

struct password_job {
	struct cpmsync_loop *loop;
	pid_t pid;
	int rd, pidfd;
	unsigned timeout_ms;
	struct cpmsync_loop_source *rd_src, *pid_src, *timer;
	struct secret_line line;
	password_job_done_t done;
	void *userdata;
};

static void job_release(struct password_job *j)
{
	j->rd_src = cpmsync_loop_source_remove(j->rd_src);
	j->pid_src = cpmsync_loop_source_remove(j->pid_src);
	j->timer = cpmsync_loop_source_remove(j->timer);
	if (j->rd >= 0)
		close(TAKE_FD(j->rd));
	if (j->pidfd >= 0)
		close(TAKE_FD(j->pidfd));
}

static void job_finish(struct password_job *j, enum command_end end)
{
	char *password = NULL, *error = NULL;
	int r;

	/* A command still writing gets EPIPE; one still running is killed. */
	job_release(j);
	r = command_finish(j->pid, end, j->timeout_ms, &j->line, &password, &error);
	j->done(r, password, error, j->userdata);
	free(j);
}

/* Reads what is there; true when the job ended (and is freed). */
static bool job_read(struct password_job *j, bool exited)
{
	char chunk[1024];

	for (;;) {
		ssize_t n = read(j->rd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			explicit_bzero(chunk, sizeof(chunk));
			if (!exited)
				return false;
			/* Exited; a background process holds the pipe: stop. */
			job_finish(j, COMMAND_DONE);
			return true;
		}
		if (n < 0) {
			job_finish(j, COMMAND_FAILED);
			return true;
		}
		if (n == 0) {
			/* EOF.  Without a pidfd, waitpid() waits for the exit. */
			if (exited || j->pidfd < 0) {
				job_finish(j, COMMAND_DONE);
				return true;
			}
			j->rd_src = cpmsync_loop_source_remove(j->rd_src);
			return false;
		}
		secret_line_feed(&j->line, chunk, (size_t)n);
		explicit_bzero(chunk, (size_t)n);
		if (j->line.total > CONFIG_MAX_COMMAND_OUTPUT) {
			job_finish(j, COMMAND_FLOOD);
			return true;
		}
	}
}

static void job_on_output(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	(void)src;
	(void)fd;
	(void)events;
	job_read(userdata, false);
}

static void job_on_exit(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct password_job *j = userdata;

	(void)src;
	(void)fd;
	(void)events;
	if (!j->rd_src) {
		/* EOF came first. */
		job_finish(j, COMMAND_DONE);
		return;
	}
	job_read(j, true);
}

static void job_on_timeout(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	job_finish(userdata, COMMAND_TIMED_OUT);
}

int password_job_start(struct cpmsync_loop *loop, const char *command, unsigned timeout_ms,
		       password_job_done_t done, void *userdata, struct password_job **ret,
		       char **ret_error)
{
	struct password_job *j = xcalloc(1, sizeof(*j));
	int r;

	j->loop = loop;
	j->rd = j->pidfd = -1;
	j->timeout_ms = timeout_ms ? timeout_ms : CONFIG_PASSWORD_TIMEOUT_MS;
	j->done = done;
	j->userdata = userdata;
	r = spawn_command(command, &j->pid, &j->rd);
	if (r < 0) {
		free(j);
		if (ret_error)
			*ret_error = xasprintf("cannot run password_command: %s", strerror(-r));
		return r;
	}
	j->pidfd = pidfd_open_fd(j->pid);
	r = cpmsync_loop_add_fd(loop, j->rd, CPMSYNC_LOOP_IN, job_on_output, j, NULL, &j->rd_src);
	if (r >= 0 && j->pidfd >= 0)
		r = cpmsync_loop_add_fd(loop, j->pidfd, CPMSYNC_LOOP_IN, job_on_exit, j, NULL,
					&j->pid_src);
	if (r >= 0)
		r = cpmsync_loop_add_timer(loop, j->timeout_ms, 0, job_on_timeout, j, NULL,
					   &j->timer);
	if (r < 0) {
		password_job_cancel(j);
		if (ret_error)
			*ret_error = xasprintf("cannot run password_command: %s", strerror(-r));
		return r;
	}
	*ret = j;
	return 0;
}

struct password_job *password_job_cancel(struct password_job *j)
{
	if (!j)
		return NULL;
	job_release(j);
	kill(j->pid, SIGKILL);
	while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
		;
	explicit_bzero(&j->line, sizeof(j->line));
	free(j);
	return NULL;
}

int config_account_password(const struct config_account *a, char **ret_password, char **ret_error)
{
	if (a->password_file)
		return password_from_file(a->password_file, ret_password, ret_error);
	if (a->password_command)
		return password_from_command(a->password_command, ret_password, ret_error);
	if (ret_error)
		*ret_error =
			xasprintf("account '%s': no password_file or password_command", a->name);
	return -EINVAL;
}

static int password_cb(const struct cpmsync_account *account, char **ret_password, void *userdata)
{
	struct config_account *a = userdata;
	char *error = NULL;
	int r;

	(void)account;
	r = config_account_password(a, ret_password, &error);
	free(a->password_error);
	a->password_error = r < 0 ? error : NULL;
	return r;
}

void config_account_to_settings(const struct config_account *a, struct cpmsync_account *ret)
{
	*ret = (struct cpmsync_account){
		.name = a->name,
		.host = a->host,
		.port = a->port,
		.security = a->security,
		.user = a->user,
		.ca_file = a->ca_file,
		.client_cert = a->client_cert,
		.folders = (const char *const *)a->folders,
		.sync_bodies = a->sync_bodies,
		.connect_timeout_ms = a->timeout * 1000u,
		.command_timeout_ms = a->timeout * 1000u,
		.show_other_namespaces = a->show_other_namespaces,
		.password_cb = password_cb,
		/* password_cb records password_error: see config.h. */
		.password_userdata = (void *)a,
	};
}
