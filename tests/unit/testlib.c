/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sqlite3.h>

#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/loop.h>
#include <cpmsync/store.h>

#include "store/store.h"

static int read_line(int fd, char *line, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		char ch;
		ssize_t r = read(fd, &ch, 1);

		if (r <= 0)
			return r == 0 ? 0 : -1;
		if (ch == '\n') {
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			return 1;
		}
		line[n++] = ch;
	}
	line[n] = '\0';
	return 1;
}

/* lfd: the listening socket of a TCP peer (SCRIPT_ACCEPT), or -1. */
static int run_script(int fd, int lfd, const struct script_step *s)
{
	static char line[65536];

	for (; s->op != SCRIPT_END; s++) {
		int r;

		switch (s->op) {
		case SCRIPT_ACCEPT:
			if (lfd < 0) {
				fprintf(stderr, "peer: SCRIPT_ACCEPT needs a TCP peer\n");
				return 6;
			}
			if (strcmp(s->arg, "keep") != 0)
				close(fd); /* "keep": open until the peer exits */
			fd = accept(lfd, NULL, NULL);
			if (fd < 0) {
				fprintf(stderr, "peer: accept failed: %s\n", strerror(errno));
				return 7;
			}
			break;
		case SCRIPT_NO_ACCEPT: {
			struct pollfd pfd = { .fd = lfd, .events = POLLIN };

			if (lfd < 0) {
				fprintf(stderr, "peer: SCRIPT_NO_ACCEPT needs a TCP peer\n");
				return 6;
			}
			r = poll(&pfd, 1, (int)strtol(s->arg, NULL, 10));
			if (r != 0) {
				fprintf(stderr, "peer: %s\n",
					r > 0 ? "a connection came, none was expected"
					      : "poll failed");
				return 9;
			}
			break;
		}
		case SCRIPT_SEND:
			if (write(fd, s->arg, strlen(s->arg)) < 0) {
				fprintf(stderr, "peer: write failed: %s\n", strerror(errno));
				return 2;
			}
			break;
		case SCRIPT_EXPECT:
			r = read_line(fd, line, sizeof(line));
			if (r <= 0) {
				fprintf(stderr, "peer: expected '%s', got end of stream\n", s->arg);
				return 3;
			}
			if (strncmp(line, s->arg, strlen(s->arg)) != 0) {
				fprintf(stderr, "peer: expected '%s', got '%s'\n", s->arg, line);
				return 4;
			}
			break;
		case SCRIPT_CLOSE:
			close(fd);
			return 0;
		case SCRIPT_STALL:
			while (read(fd, line, sizeof(line)) > 0)
				;
			return 0;
		case SCRIPT_EXPECT_EOF:
			r = read_line(fd, line, sizeof(line));
			if (r > 0) {
				fprintf(stderr, "peer: expected the client to close, got '%s'\n",
					line);
				return 5;
			}
			return 0;
		case SCRIPT_SKIP: {
			long long left = strtoll(s->arg, NULL, 10);

			while (left > 0) {
				ssize_t k = read(fd, line,
						 left < (long long)sizeof(line) ? (size_t)left
										: sizeof(line));

				if (k <= 0) {
					fprintf(stderr, "peer: %lld bytes short of %s\n", left,
						s->arg);
					return 8;
				}
				left -= k;
			}
			break;
		}
		case SCRIPT_SLEEP: {
			long ms = strtol(s->arg, NULL, 10);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

			nanosleep(&ts, NULL);
			break;
		}
		case SCRIPT_END:
			break;
		}
	}
	return 0;
}

int script_peer_start(const struct script_step *script, struct script_peer *ret)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		close(sv[0]);
		_exit(run_script(sv[1], -1, script));
	}
	close(sv[1]);
	ret->pid = pid;
	ret->fd = sv[0];
	return 0;
}

int script_peer_listen(const struct script_step *script, struct script_peer *ret,
		       uint16_t *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int lfd;
	pid_t pid;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		close(lfd);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		close(lfd);
		return -errno;
	}
	if (pid == 0) {
		int fd;

		signal(SIGPIPE, SIG_IGN);
		bool more = false;

		for (const struct script_step *st = script; st->op != SCRIPT_END; st++)
			more = more || st->op == SCRIPT_ACCEPT || st->op == SCRIPT_NO_ACCEPT;
		fd = accept(lfd, NULL, NULL);
		if (!more) { /* a reconnection is refused, as by a server gone */
			close(lfd);
			lfd = -1;
		}
		_exit(fd < 0 ? 2 : run_script(fd, lfd, script));
	}
	close(lfd);
	ret->pid = pid;
	ret->fd = -1;
	*ret_port = ntohs(sa.sin_port);
	return 0;
}

int script_peer_wait(struct script_peer *peer)
{
	int status;

	if (waitpid(peer->pid, &status, 0) < 0)
		return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void test_rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool test_loop_run_until(struct cpmsync_loop *loop, const bool *done, unsigned timeout_ms)
{
	uint64_t end = cpmsync_now_ms() + timeout_ms;

	while (!*done) {
		uint64_t now = cpmsync_now_ms();

		if (now >= end)
			break;
		cpmsync_loop_iterate(loop, (int)(end - now));
	}
	return *done;
}

void test_env_start(struct test_env *env, const struct script_step *script, unsigned flags)
{
	char path[96];

	memset(env, 0, sizeof(*env));
	env->flags = flags;
	env->peer.fd = -1;
	ck_assert_int_eq(cpmsync_loop_new(&env->loop), 0);
	if (flags & TEST_ENV_STORE) {
		snprintf(env->dir, sizeof(env->dir), "/tmp/cpmsync-test-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(env->dir));
		snprintf(path, sizeof(path), "%s/store.db", env->dir);
		ck_assert_int_eq(cpmsync_store_open(path, 0, &env->store, NULL), 0);
	}
	if (!script)
		return;
	if (flags & TEST_ENV_TCP)
		ck_assert_int_eq(script_peer_listen(script, &env->peer, &env->port), 0);
	else
		ck_assert_int_eq(script_peer_start(script, &env->peer), 0);
	env->has_peer = true;
}

void test_env_end(struct test_env *env)
{
	char cmd[128];

	if (env->has_peer)
		ck_assert_int_eq(script_peer_wait(&env->peer), 0);
	if (env->store) {
		for (int i = 0; i < 5; i++)
			cpmsync_loop_iterate(env->loop, 10);
		cpmsync_store_close(env->store);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
		ck_assert_int_eq(system(cmd), 0);
	}
	cpmsync_loop_free(env->loop);
	memset(env, 0, sizeof(*env));
}

int testlib_run_suite(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void sync_result_cb(int r, const char *reason, const struct cpmsync_sync_stats *stats,
		    void *userdata)
{
	struct sync_result *res = userdata;

	res->done = true;
	res->r = r;
	snprintf(res->reason, sizeof(res->reason), "%s", reason ? reason : "");
	res->stats = *stats;
}

const char *test_store_text(struct store *s, const char *sql)
{
	static char v[256];
	sqlite3_stmt *st;

	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	snprintf(v, sizeof(v), "%s",
		 sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "(null)");
	sqlite3_reset(st);
	return v;
}

/*
 * A VFS over the default one that counts xSync calls on WAL files, made
 * the default by test_wal_syncs_install(): a connection opened after it
 * goes through it.  Every other call is passed on unchanged.
 */
struct counting_file {
	sqlite3_file base; /* pMethods: counting_io */
	bool wal;
	sqlite3_file *real; /* follows this struct, szOsFile of the real VFS */
};

static sqlite3_vfs counting_vfs;
static sqlite3_vfs *real_vfs;
static unsigned long wal_syncs;

#define REAL(f) (((struct counting_file *)(f))->real)

static int c_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}
static int c_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int c_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int c_sync(sqlite3_file *f, int flags)
{
	if (((struct counting_file *)f)->wal)
		wal_syncs++;
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int c_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int c_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int c_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int c_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int c_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int c_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int c_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int c_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int c_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void c_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int c_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int c_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), o, n, pp);
}
static int c_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods counting_io = {
	.iVersion = 3,
	.xClose = c_close,
	.xRead = c_read,
	.xWrite = c_write,
	.xTruncate = c_truncate,
	.xSync = c_sync,
	.xFileSize = c_file_size,
	.xLock = c_lock,
	.xUnlock = c_unlock,
	.xCheckReservedLock = c_check_reserved,
	.xFileControl = c_file_control,
	.xSectorSize = c_sector_size,
	.xDeviceCharacteristics = c_device_characteristics,
	.xShmMap = c_shm_map,
	.xShmLock = c_shm_lock,
	.xShmBarrier = c_shm_barrier,
	.xShmUnmap = c_shm_unmap,
	.xFetch = c_fetch,
	.xUnfetch = c_unfetch,
};

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct counting_file *cf = (struct counting_file *)f;
	int rc;

	(void)vfs;
	cf->base.pMethods = NULL;
	cf->wal = flags & SQLITE_OPEN_WAL;
	cf->real = (sqlite3_file *)(cf + 1);
	rc = real_vfs->xOpen(real_vfs, name, cf->real, flags, out);
	/* The real file's methods may be NULL after a failure: then so are
	 * ours, and SQLite does not close it. */
	if (cf->real->pMethods)
		cf->base.pMethods = &counting_io;
	return rc;
}

void test_wal_syncs_install(void)
{
	if (real_vfs)
		return;
	real_vfs = sqlite3_vfs_find(NULL);
	ck_assert_ptr_nonnull(real_vfs);
	counting_vfs = *real_vfs;
	counting_vfs.zName = "counting";
	counting_vfs.szOsFile = (int)sizeof(struct counting_file) + real_vfs->szOsFile;
	counting_vfs.xOpen = c_open;
	counting_vfs.pNext = NULL;
	ck_assert_int_eq(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
}

unsigned long test_wal_syncs(void)
{
	return wal_syncs;
}
