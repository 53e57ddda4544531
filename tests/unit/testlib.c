/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sqlite3.h>

#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

static int run_script(int fd, const struct script_step *s)
{
	static char line[65536];

	for (; s->op != SCRIPT_END; s++) {
		int r;

		switch (s->op) {
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
		_exit(run_script(sv[1], script));
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
		fd = accept(lfd, NULL, NULL);
		close(lfd);
		_exit(fd < 0 ? 2 : run_script(fd, script));
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
