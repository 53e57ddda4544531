/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config-write.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>

#include "log.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* A growing text buffer */

struct text {
	char *data;
	size_t len, alloc;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->alloc) {
		t->alloc = (t->len + n + 1) * 2;
		t->data = xreallocarray(t->data, t->alloc, 1);
	}
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = '\0';
}

static void text_adds(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static bool text_ends_with(const struct text *t, const char *s)
{
	size_t n = strlen(s);

	return t->len >= n && memcmp(t->data + t->len - n, s, n) == 0;
}

/* ------------------------------------------------------------------------ */
/* Checks */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Whether value can be written as "key = value" and read back unchanged.
 * On failure stores a reason naming key in *ret_error.
 */
static int check_value(const char *key, const char *value, char **ret_error)
{
	const char *why = NULL;
	size_t n = strlen(value);

	if (n == 0)
		why = "is empty";
	else if (strpbrk(value, "\r\n"))
		why = "contains a line break";
	else if (is_blank(value[0]) || is_blank(value[n - 1]))
		why = "starts or ends with a blank";
	else if (value[0] == '#' || strstr(value, " #") || strstr(value, "\t#"))
		why = "contains '#' at its start or after a blank, which would "
		      "start a comment";
	else if (n > CONFIG_MAX_LINE - 64)
		why = "is too long";
	else
		for (const unsigned char *p = (const unsigned char *)value; *p; p++)
			if ((*p < 0x20 && *p != '\t') || *p == 0x7F) {
				why = "contains a control character";
				break;
			}
	if (!why)
		return 0;
	if (ret_error)
		*ret_error = xasprintf("invalid value for '%s': it %s", key, why);
	return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Files */

/* The absolute directory part of path (as the parser resolves it). */
static char *abs_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *cwd = NULL;

	if (path[0] == '/')
		return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (!slash)
		return TAKE_PTR(cwd);
	return xasprintf("%s/%.*s", cwd, (int)(slash - path), path);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* mkdir -p with mode for the directories it creates. */
static int mkdir_parents(const char *dir, mode_t mode)
{
	_cleanup_free_ char *p = xstrdup(dir);
	size_t n = strlen(p);

	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (p[i - 1] == '/')
			continue;
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		if (i < n)
			p[i] = '/';
	}
	return 0;
}

/* The file a configuration path really names: symbolic links resolved. */
static int real_config_path(const char *path, char **ret)
{
	struct stat st;
	char *real;

	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		*ret = xstrdup(path);
		return 0;
	}
	if (!S_ISLNK(st.st_mode)) {
		*ret = xstrdup(path);
		return 0;
	}
	real = realpath(path, NULL);
	if (!real)
		return -errno;
	*ret = xstrdup(real);
	free(real);
	return 0;
}

/*
 * Reads the whole file.  -ENOENT if it does not exist; *ret_st describes
 * what was read, to notice a change before the rename.
 */
static int read_config(const char *path, struct text *ret, struct stat *ret_st, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	struct text t = { 0 };
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r != -ENOENT && ret_error)
			*ret_error = xasprintf("%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, ret_st) < 0) {
		r = -errno;
		if (ret_error)
			*ret_error = xasprintf("%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(ret_st->st_mode)) {
		if (ret_error)
			*ret_error = xasprintf("%s: not a regular file", path);
		return -EINVAL;
	}
	r = cpmsync_read_all(fd, CONFIG_MAX_SIZE, &t.data, &t.len);
	if (r == -EFBIG) {
		if (ret_error)
			*ret_error = xasprintf("%s: file too large "
					       "(more than %d bytes)",
					       path, CONFIG_MAX_SIZE);
		return r;
	}
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("%s: %s", path, strerror(-r));
		return r;
	}
	t.alloc = t.len + 1;
	*ret = t;
	return 0;
}

static int fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = -1;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/*
 * Replaces path (the real file, not a link) with data: temporary file,
 * fsync, rename, fsync of the directory.  old: what was read (NULL: the
 * file did not exist and must still not).  display names the file in
 * messages.
 */
static int replace_file(const char *path, const char *display, const char *data, size_t len,
			const struct stat *old, char **ret_error)
{
	_cleanup_free_ char *dir = dir_of(path);
	_cleanup_free_ char *tmp = NULL;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	_cleanup_close_ int fd = -1;
	const char *what;
	struct stat now;
	int r;

	tmp = xasprintf("%s/.%s.XXXXXX", dir, base);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (ret_error)
			*ret_error = xasprintf("%s: cannot create a temporary file in %s: %s",
					       display, dir, strerror(-r));
		return r;
	}
	what = "cannot write the new contents";
	r = fchmod(fd, old ? old->st_mode & 07777 : 0600) < 0 ? -errno : 0;
	if (r == 0)
		r = cpmsync_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && close(TAKE_FD(fd)) < 0)
		r = -errno;
	if (r < 0)
		goto fail;

	/* Someone else's edit since we read the file must not be lost. */
	what = "cannot replace it";
	if (old) {
		if (stat(path, &now) < 0 || now.st_ino != old->st_ino ||
		    now.st_dev != old->st_dev || now.st_size != old->st_size ||
		    now.st_mtim.tv_sec != old->st_mtim.tv_sec ||
		    now.st_mtim.tv_nsec != old->st_mtim.tv_nsec) {
			r = -EAGAIN;
			what = "it changed while being updated; try again";
			goto fail;
		}
		if (rename(tmp, path) < 0)
			r = -errno;
	} else {
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
			r = -errno;
			if (r == -EINVAL) { /* the file system cannot do it */
				r = 0;
				if (access(path, F_OK) == 0)
					r = -EEXIST;
				else if (rename(tmp, path) < 0)
					r = -errno;
			}
			if (r == -EEXIST) {
				r = -EAGAIN;
				what = "it was created while being written; "
				       "try again";
			}
		}
	}
	if (r < 0)
		goto fail;
	/* Replaced: from here on it is a success, durable or not. */
	r = fsync_dir(dir);
	if (r < 0)
		log_warning("%s: written, but cannot sync directory %s: %s", display, dir,
			    strerror(-r));
	return 0;

fail:
	unlink(tmp);
	if (ret_error)
		*ret_error = r == -EAGAIN ? xasprintf("%s: %s", display, what)
					  : xasprintf("%s: %s: %s", display, what, strerror(-r));
	return r;
}

/*
 * Creates a file of the daemon's own (O_EXCL, O_NOFOLLOW, mode 0600 whatever
 * the umask) holding len bytes of data.  what names it in errors
 * ("password file"); key is the setting that would name another file.
 */
static int write_secret_file(const char *path, const void *data, size_t len, const char *what,
			     const char *key, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	int r;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		r = -errno;
		if (ret_error)
			*ret_error = r == -EEXIST ? xasprintf("%s %s exists already; remove it or "
							      "give %s",
							      what, path, key)
						  : xasprintf("cannot create %s %s: %s", what, path,
							      strerror(-r));
		return r;
	}
	/* The umask cannot widen 0600, but a default ACL could: be explicit. */
	r = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (r == 0)
		r = cpmsync_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		unlink(path);
		if (ret_error)
			*ret_error = xasprintf("cannot write %s %s: %s", what, path, strerror(-r));
	}
	return r;
}

/* Creates the password file (0600, O_EXCL, O_NOFOLLOW): password + "\n". */
static int write_password_file(const char *path, const char *password, char **ret_error)
{
	size_t n = strlen(password);
	char *line;
	int r;

	line = xmalloc(n + 1);
	memcpy(line, password, n);
	line[n] = '\n';
	r = write_secret_file(path, line, n + 1, "password file", "password_file", ret_error);
	explicit_bzero(line, n + 1);
	free(line);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Lines */

/*
 * What a line (without its EOL) is, as the parser sees it: comment and
 * blanks stripped.  Returns the trimmed content in buf (NUL-terminated;
 * lines longer than the buffer are cut, which cannot turn a key line
 * into a header).
 */
static const char *line_content(const char *line, size_t n, char *buf, size_t size)
{
	size_t len = n < size - 1 ? n : size - 1;
	char *s = buf, *e;

	memcpy(buf, line, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '#' && (i == 0 || is_blank(buf[i - 1]))) {
			buf[i] = '\0';
			break;
		}
	while (is_blank(*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_blank(e[-1]))
		*--e = '\0';
	return s;
}

/* Is the line a comment line (only blanks before a '#')? */
static bool is_comment_line(const char *line, size_t n)
{
	size_t i = 0;

	while (i < n && is_blank(line[i]))
		i++;
	return i < n && line[i] == '#';
}

/* Is content (from line_content()) "[account NAME]" for this name? */
static bool is_account_header(const char *content, const char *name)
{
	size_t n = strlen(content), w;
	const char *p;

	if (n < 2 || content[0] != '[' || content[n - 1] != ']')
		return false;
	p = content + 1;
	while (is_blank(*p))
		p++;
	if (strncmp(p, "account", 7) != 0 || !is_blank(p[7]))
		return false;
	p += 7;
	while (is_blank(*p))
		p++;
	w = strlen(name);
	if (strncmp(p, name, w) != 0)
		return false;
	p += w;
	while (is_blank(*p))
		p++;
	return p == content + n - 1;
}

struct line {
	size_t start, end; /* [start, end) without the EOL */
	size_t next;	   /* start of the following line */
};

/* The line starting at pos; false at the end of the text. */
static bool next_line(const struct text *t, size_t pos, struct line *l)
{
	const char *nl;

	if (pos >= t->len)
		return false;
	nl = memchr(t->data + pos, '\n', t->len - pos);
	l->start = pos;
	l->next = nl ? (size_t)(nl - t->data) + 1 : t->len;
	l->end = nl ? (size_t)(nl - t->data) : t->len;
	if (l->end > l->start && t->data[l->end - 1] == '\r')
		l->end--;
	return true;
}

/*
 * Finds the section of account name: [*ret_start, *ret_end) is what to
 * cut.  Returns false if there is no such section.
 */
static bool find_section(const struct text *t, const char *name, size_t *ret_start, size_t *ret_end)
{
	char buf[CONFIG_MAX_LINE + 1];
	size_t pos = 0, start = 0, comments = SIZE_MAX;
	bool in = false;
	struct line l;

	if (t->len >= 3 && memcmp(t->data, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;
	for (; next_line(t, pos, &l); pos = l.next) {
		const char *c = line_content(t->data + l.start, l.end - l.start, buf, sizeof(buf));

		if (!in) {
			if (is_account_header(c, name)) {
				in = true;
				start = l.start;
			}
			continue;
		}
		if (c[0] == '[') {
			/* Keep the comment block glued to the next header. */
			*ret_start = start;
			*ret_end = comments != SIZE_MAX ? comments : l.start;
			return true;
		}
		if (is_comment_line(t->data + l.start, l.end - l.start)) {
			if (comments == SIZE_MAX)
				comments = l.start;
		} else {
			comments = SIZE_MAX;
		}
	}
	if (!in)
		return false;
	*ret_start = start;
	*ret_end = t->len;
	return true;
}

/* ------------------------------------------------------------------------ */

static void add_key(struct text *t, const char *key, const char *value, const char *eol)
{
	text_adds(t, key);
	text_adds(t, " = ");
	text_adds(t, value);
	text_adds(t, eol);
}

static int check_settings(const struct cpmsync_account_settings *s, char **ret_error)
{
	const struct {
		const char *key, *value;
	} keys[] = {
		{ "host", s->host },	     { "security", s->security },
		{ "user", s->user },	     { "password_file", s->password_file },
		{ "ca_file", s->ca_file },   { "sync_bodies", s->sync_bodies },
		{ "cpm_root", s->cpm_root }, /* "" (the top level) is written as "" */
	};
	/* The configuration key each problem is about. */
	static const char *const problem_key[] = {
		[CPMSYNC_SETTINGS_NO_HOST] = "host",
		[CPMSYNC_SETTINGS_BAD_HOST] = "host",
		[CPMSYNC_SETTINGS_NO_USER] = "user",
		[CPMSYNC_SETTINGS_BAD_USER] = "user",
		[CPMSYNC_SETTINGS_BAD_SECURITY] = "security",
		[CPMSYNC_SETTINGS_BAD_PASSWORD] = "password",
		[CPMSYNC_SETTINGS_EMPTY_PATH] = "password_command", /* the others are NULL */
		[CPMSYNC_SETTINGS_BAD_SYNC_BODIES] = "sync_bodies",
		[CPMSYNC_SETTINGS_BAD_CPM_ROOT] = "cpm_root",
	};
	enum cpmsync_settings_error e;
	const char *why;
	int r;

	struct cpmsync_account_settings t = *s;

	/* Here "" means not set, as NULL does. */
	if (t.security && !*t.security)
		t.security = NULL;
	if (t.password && !*t.password)
		t.password = NULL;
	if (t.password_file && !*t.password_file)
		t.password_file = NULL;
	if (t.ca_file && !*t.ca_file)
		t.ca_file = NULL;
	if (t.sync_bodies && !*t.sync_bodies)
		t.sync_bodies = NULL;
	e = cpmsync_account_settings_check(&t, &why);
	switch (e) {
	case CPMSYNC_SETTINGS_OK:
		break;
	case CPMSYNC_SETTINGS_NO_HOST:
	case CPMSYNC_SETTINGS_NO_USER:
		if (ret_error)
			*ret_error = xasprintf("'%s' is not set", problem_key[e]);
		return -EINVAL;
	case CPMSYNC_SETTINGS_NO_PASSWORD:
		if (ret_error)
			*ret_error = xstrdup("neither 'password' nor 'password_file' is set");
		return -EINVAL;
	case CPMSYNC_SETTINGS_TWO_PASSWORDS:
		if (ret_error)
			*ret_error =
				xstrdup("both 'password' and 'password_file' are set; give one");
		return -EINVAL;
	default:
		if (ret_error)
			*ret_error =
				xasprintf("invalid value for '%s': it %s", problem_key[e], why);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (!keys[i].value || !*keys[i].value)
			continue;
		r = check_value(keys[i].key, keys[i].value, ret_error);
		if (r < 0)
			return r;
	}
	if (s->folders)
		for (const char *const *f = s->folders; *f; f++) {
			r = check_value("folders", *f, ret_error);
			if (r < 0)
				return r;
			if (strpbrk(*f, " \t")) {
				if (ret_error)
					*ret_error = xasprintf("invalid value for 'folders': "
							       "pattern '%s' contains a blank "
							       "(patterns are separated by "
							       "spaces)",
							       *f);
				return -EINVAL;
			}
		}
	return 0;
}

static void build_section(struct text *t, const char *name,
			  const struct cpmsync_account_settings *s, const char *password_file,
			  const char *ca_file, const char *client_cert, const char *eol)
{
	char port[16];

	text_adds(t, "[account ");
	text_adds(t, name);
	text_adds(t, "]");
	text_adds(t, eol);
	add_key(t, "host", s->host, eol);
	if (s->port) {
		snprintf(port, sizeof(port), "%u", (unsigned)s->port);
		add_key(t, "port", port, eol);
	}
	if (s->security && *s->security)
		add_key(t, "security", s->security, eol);
	add_key(t, "user", s->user, eol);
	add_key(t, "password_file", password_file, eol);
	if (ca_file && *ca_file)
		add_key(t, "ca_file", ca_file, eol);
	if (client_cert)
		add_key(t, "client_cert", client_cert, eol);
	if (s->folders && s->folders[0]) {
		text_adds(t, "folders =");
		for (const char *const *f = s->folders; *f; f++) {
			text_adds(t, " ");
			text_adds(t, *f);
		}
		text_adds(t, eol);
	}
	if (s->sync_bodies && *s->sync_bodies)
		add_key(t, "sync_bodies", s->sync_bodies, eol);
	if (s->cpm_root) /* no quoting in the file: "" stands for the top level */
		add_key(t, "cpm_root", *s->cpm_root ? s->cpm_root : "\"\"", eol);
}

/* DIR/NAME<suffix>: a file of the daemon's own for account name. */
static char *own_file(const char *dir, const char *name, const char *suffix)
{
	return xasprintf("%s%s%s%s", dir, str_eq(dir, "/") ? "" : "/", name, suffix);
}

int config_write_add_account(const char *config_path, const char *name,
			     const struct cpmsync_account_settings *s,
			     const struct config_account_pems *pems, char **ret_error)
{
	_cleanup_free_ char *real = NULL, *dir = NULL, *pw_path = NULL;
	_cleanup_free_ char *ca_path = NULL, *client_path = NULL;
	const char *made[3] = { NULL, NULL, NULL };
	struct text cur = { 0 }, out = { 0 };
	struct config *c = NULL;
	_cleanup_free_ char *err = NULL;
	const char *eol = "\n";
	bool exists = true;
	struct stat st;
	int r;

	if (!config_path || !name || !s) {
		if (ret_error)
			*ret_error = xstrdup("bad arguments");
		return -EINVAL;
	}
	if (!cpmsync_account_name_valid(name)) {
		if (ret_error)
			*ret_error = xasprintf("invalid account name '%s' (allowed: 1 to %d "
					       "letters, digits, '_' and '-')",
					       name, CONFIG_MAX_NAME);
		return -EINVAL;
	}
	r = check_settings(s, ret_error);
	if (r < 0)
		return r;
	if (pems && pems->ca && s->ca_file && *s->ca_file) {
		if (ret_error)
			*ret_error =
				xstrdup("both 'ca_file' and a CA certificate are set; give one");
		return -EINVAL;
	}

	r = real_config_path(config_path, &real);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("%s: %s", config_path, strerror(-r));
		return r;
	}
	r = read_config(real, &cur, &st, ret_error);
	if (r == -ENOENT) {
		exists = false;
	} else if (r < 0) {
		return r;
	}

	if (exists) {
		r = config_parse_buffer(config_path, cur.data, cur.len, &c, &err);
		if (r < 0) {
			if (ret_error)
				*ret_error = xasprintf("not changing %s: it is invalid: %s",
						       config_path, err);
			free(cur.data);
			return r;
		}
		if (config_find_account(c, name)) {
			if (ret_error)
				*ret_error = xasprintf("account '%s' exists already in %s", name,
						       config_path);
			config_free(c);
			free(cur.data);
			return -EEXIST;
		}
		c = config_free(c);
	}

	dir = abs_dir_of(config_path);
	if (!dir) {
		r = -errno;
		if (ret_error)
			*ret_error = xasprintf("%s: cannot find the current directory: %s",
					       config_path, strerror(-r));
		free(cur.data);
		return r;
	}
	if (s->password && *s->password)
		pw_path = own_file(dir, name, ".password");
	if (pems && pems->ca)
		ca_path = own_file(dir, name, ".ca.pem");
	if (pems && pems->client)
		client_path = own_file(dir, name, ".client.pem");

	/* The text: what is there, a blank line, the section. */
	if (memmem(cur.data ? cur.data : "", cur.len, "\r\n", 2))
		eol = "\r\n";
	text_add(&out, cur.data ? cur.data : "", cur.len);
	if (out.len == 0) {
		text_adds(&out, "# cpmsync configuration: see cpmsync.conf(5)");
		text_adds(&out, eol);
	}
	if (!text_ends_with(&out, "\n"))
		text_adds(&out, eol);
	if (!text_ends_with(&out, "\n\n") && !text_ends_with(&out, "\n\r\n"))
		text_adds(&out, eol);
	build_section(&out, name, s, pw_path ? pw_path : s->password_file,
		      ca_path ? ca_path : s->ca_file, client_path, eol);
	free(cur.data);

	r = config_parse_buffer(config_path, out.data, out.len, &c, &err);
	if (r < 0 || !config_find_account(c, name)) {
		if (ret_error)
			*ret_error = xasprintf("cannot add account '%s': %s", name,
					       r < 0 ? err : "not parsed");
		config_free(c);
		free(out.data);
		return r < 0 ? r : -EINVAL;
	}
	config_free(c);

	if (!exists) {
		_cleanup_free_ char *real_dir = dir_of(real);

		r = mkdir_parents(real_dir, 0700);
		if (r < 0) {
			if (ret_error)
				*ret_error = xasprintf("%s: cannot create directory %s: %s",
						       config_path, real_dir, strerror(-r));
			free(out.data);
			return r;
		}
	}
	/* The files first; each one made is removed again on failure. */
	if (pw_path) {
		r = write_password_file(pw_path, s->password, ret_error);
		if (r < 0)
			goto fail_written;
		made[0] = pw_path;
	}
	if (ca_path) {
		r = write_secret_file(ca_path, pems->ca, pems->ca_len, "CA certificate file",
				      "ca_file", ret_error);
		if (r < 0)
			goto fail_written;
		made[1] = ca_path;
	}
	if (client_path) {
		r = write_secret_file(client_path, pems->client, pems->client_len,
				      "client certificate file", "client_cert", ret_error);
		if (r < 0)
			goto fail_written;
		made[2] = client_path;
	}
	r = replace_file(real, config_path, out.data, out.len, exists ? &st : NULL, ret_error);
fail_written:
	free(out.data);
	if (r < 0)
		for (size_t i = 0; i < ARRAY_SIZE(made); i++)
			if (made[i])
				unlink(made[i]);
	return r;
}

static void free_own(char *(*own)[3])
{
	for (size_t i = 0; i < 3; i++)
		free((*own)[i]);
}

int config_write_remove_account(const char *config_path, const char *name, char **ret_error)
{
	_cleanup_free_ char *real = NULL, *dir = NULL;
	_cleanup_(free_own) char *own[3] = { NULL, NULL, NULL };
	bool is_own[3] = { false, false, false };
	_cleanup_free_ char *err = NULL;
	struct text cur = { 0 }, out = { 0 };
	struct config *c = NULL;
	size_t start, end;
	struct stat st;
	int r;

	if (!config_path || !name) {
		if (ret_error)
			*ret_error = xstrdup("bad arguments");
		return -EINVAL;
	}
	if (!cpmsync_account_name_valid(name)) {
		if (ret_error)
			*ret_error = xasprintf("invalid account name '%s'", name);
		return -EINVAL;
	}
	r = real_config_path(config_path, &real);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("%s: %s", config_path, strerror(-r));
		return r;
	}
	r = read_config(real, &cur, &st, ret_error);
	if (r == -ENOENT) {
		if (ret_error)
			*ret_error =
				xasprintf("no account '%s': %s does not exist", name, config_path);
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (r < 0)
		return r;
	if (!find_section(&cur, name, &start, &end)) {
		if (ret_error)
			*ret_error = xasprintf("no account '%s' in %s", name, config_path);
		free(cur.data);
		return -CPMSYNC_E_NOT_FOUND;
	}

	/* Its password file, if it is the one config_write_add_account()
	 * made.  Only a file that parses tells. */
	dir = abs_dir_of(config_path);
	if (dir) {
		own[0] = own_file(dir, name, ".password");
		own[1] = own_file(dir, name, ".ca.pem");
		own[2] = own_file(dir, name, ".client.pem");
	}
	if (dir && config_parse_buffer(config_path, cur.data, cur.len, &c, NULL) == 0) {
		const struct config_account *a = config_find_account(c, name);

		is_own[0] = a && str_eq_null(a->password_file, own[0]);
		is_own[1] = a && str_eq_null(a->ca_file, own[1]);
		is_own[2] = a && str_eq_null(a->client_cert, own[2]);
		c = config_free(c);
	}

	text_add(&out, cur.data, start);
	text_add(&out, cur.data + end, cur.len - end);
	free(cur.data);
	r = config_parse_buffer(config_path, out.data, out.len, &c, &err);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot remove account '%s': "
					       "the result would be "
					       "invalid: %s",
					       name, err);
		free(out.data);
		return r;
	}
	config_free(c);

	r = replace_file(real, config_path, out.data, out.len, &st, ret_error);
	free(out.data);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		if (is_own[i] && unlink(own[i]) < 0 && errno != ENOENT)
			log_warning("account '%s' removed, but cannot delete its file %s: %s", name,
				    own[i], strerror(errno));
	return 0;
}
