/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * session-watch: runs one cpmsync_session per account of a configuration
 * (no D-Bus) and prints what happens, one line each, flushed at once:
 *
 *   state ACCOUNT STATE PUSH         a property changed
 *   synced ACCOUNT R REASON          a sync ended (R 0: ok)
 *   added|changed|removed FOLDER ID  committed store changes (message)
 *   folder-added|folder-changed|folder-removed FOLDER
 *
 * Commands read from stdin, one per line (for tests):
 *   sync | online | offline | quit | active FOLDER-ID
 *
 * Usage: session-watch CONFIG [--seconds N] [--offline]
 *                             [--poll MS] [--refresh MS] [--retry MS]
 *
 * Log lines ("<LEVEL>text") go to stderr: warnings and worse, every
 * level with SESSION_WATCH_DEBUG set, and with SESSION_WATCH_WIRE set
 * too the IMAP commands sent (the -v wire log).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "config.h"

static struct cpmsync_loop *loop;
static struct cpmsync_store *store;
static struct cpmsync_session *sessions[64];
static size_t n_sessions;
static struct cpmsync_loop_source *drain_src;

static void on_changed(struct cpmsync_session *s, void *userdata)
{
	static char last[64][128];
	size_t i = (size_t)(uintptr_t)userdata;
	char now[128];

	snprintf(now, sizeof(now), "%s %s",
		 cpmsync_session_state_name(cpmsync_session_get_state(s)),
		 cpmsync_push_state_name(cpmsync_session_get_push_state(s)));
	if (strcmp(now, last[i]) == 0)
		return;
	strcpy(last[i], now);
	printf("state %s %s\n", cpmsync_session_name(s), now);
	fflush(stdout);
}

static void on_synced(struct cpmsync_session *s, int r, const char *reason,
		      const struct cpmsync_sync_stats *st, void *userdata)
{
	(void)userdata;
	printf("synced %s %d %s (+%u ~%u -%u, %u sent, %u kept)\n", cpmsync_session_name(s), r,
	       reason ? reason : "", st->messages_added, st->messages_changed, st->messages_removed,
	       st->ops_replayed, st->ops_failed);
	fflush(stdout);
}

static void log_cb(int level, unsigned category, const char *msg, void *userdata)
{
	(void)category;
	(void)userdata;
	fprintf(stderr, "<%d>%s\n", level, msg);
}

static const struct cpmsync_session_callbacks callbacks = {
	.changed = on_changed,
	.synced = on_synced,
};

static void drain_cb(struct cpmsync_loop_source *src, void *userdata)
{
	static const char *const names[] = { "",
					     "added",
					     "changed",
					     "removed",
					     "folder-added",
					     "folder-changed",
					     "folder-removed" };
	struct cpmsync_change c[256];
	int n;

	(void)src;
	(void)userdata;
	drain_src = NULL;
	while ((n = cpmsync_store_take_changes(store, c, 256)) > 0)
		for (int i = 0; i < n; i++) {
			if (c[i].message_id)
				printf("%s %lld %lld\n", names[c[i].kind],
				       (long long)c[i].folder_id, (long long)c[i].message_id);
			else
				printf("%s %lld\n", names[c[i].kind], (long long)c[i].folder_id);
		}
	fflush(stdout);
}

static void notify(void *userdata)
{
	(void)userdata;
	if (!drain_src)
		cpmsync_loop_defer(loop, drain_cb, NULL, NULL, &drain_src);
}

static void stdin_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	static char buf[256];
	static size_t len;
	ssize_t n;
	char *nl;

	(void)src;
	(void)events;
	(void)userdata;
	n = read(fd, buf + len, sizeof(buf) - 1 - len);
	if (n <= 0) {
		cpmsync_loop_source_remove(src);
		return;
	}
	len += (size_t)n;
	buf[len] = '\0';
	while ((nl = strchr(buf, '\n'))) {
		*nl = '\0';
		for (size_t i = 0; i < n_sessions; i++) {
			if (strcmp(buf, "sync") == 0)
				cpmsync_session_sync_now(sessions[i]);
			else if (strcmp(buf, "online") == 0)
				cpmsync_session_set_online(sessions[i], true);
			else if (strcmp(buf, "offline") == 0)
				cpmsync_session_set_online(sessions[i], false);
		}
		if (strncmp(buf, "active ", 7) == 0)
			for (size_t i = 0; i < n_sessions; i++)
				cpmsync_session_set_active(sessions[i], atoll(buf + 7), true);
		if (strcmp(buf, "quit") == 0)
			cpmsync_loop_quit(loop, 0);
		len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, len + 1);
	}
}

static void quit_cb(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	(void)userdata;
	cpmsync_loop_quit(loop, 0);
}

int main(int argc, char **argv)
{
	struct cpmsync_session_options opt = { 0 };
	struct config *cfg = NULL;
	char *err = NULL;
	unsigned seconds = 0;
	bool offline = false;
	unsigned cats;
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: session-watch CONFIG [--seconds N] [--offline] "
				"[--poll MS] [--refresh MS] [--retry MS]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--offline") == 0)
			offline = true;
		else if (i + 1 < argc && strcmp(argv[i], "--seconds") == 0)
			seconds = (unsigned)atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--poll") == 0)
			opt.poll_interval_ms = (unsigned)atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--refresh") == 0)
			opt.idle_refresh_ms = (unsigned)atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--retry") == 0)
			opt.retry_min_ms = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "session-watch: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	cats = CPMSYNC_LOG_CAT_ENGINE | CPMSYNC_LOG_CAT_IMAP;
	if (getenv("SESSION_WATCH_WIRE"))
		cats |= CPMSYNC_LOG_CAT_IMAP_WIRE;
	cpmsync_log_set_handler(getenv("SESSION_WATCH_DEBUG") ? CPMSYNC_LOG_DEBUG
							      : CPMSYNC_LOG_WARNING,
				cats, log_cb, NULL);
	r = config_load(argv[1], &cfg, &err);
	if (r < 0) {
		fprintf(stderr, "session-watch: %s\n", err ? err : strerror(-r));
		return 1;
	}
	r = cpmsync_store_open(cfg->database, 0, &store, &err);
	if (r < 0) {
		fprintf(stderr, "session-watch: %s\n", err ? err : strerror(-r));
		return 1;
	}
	cpmsync_loop_new(&loop);
	cpmsync_store_watch(store, notify, NULL);
	cpmsync_loop_add_fd(loop, 0, CPMSYNC_LOOP_IN, stdin_cb, NULL, NULL, NULL);
	if (seconds)
		cpmsync_loop_add_timer(loop, seconds * 1000ull, 0, quit_cb, NULL, NULL, NULL);
	for (size_t i = 0; i < cfg->n_accounts && i < 64; i++) {
		struct cpmsync_account a;

		config_account_to_settings(&cfg->accounts[i], &a);
		r = cpmsync_session_new(loop, store, &a, &opt, &callbacks, (void *)(uintptr_t)i,
					&sessions[n_sessions]);
		if (r < 0) {
			fprintf(stderr, "session-watch: %s: %s\n", cfg->accounts[i].name,
				cpmsync_strerror(r));
			return 1;
		}
		if (offline)
			cpmsync_session_set_online(sessions[n_sessions], false);
		n_sessions++;
	}
	r = cpmsync_loop_run(loop);
	for (size_t i = 0; i < n_sessions; i++)
		cpmsync_session_free(sessions[i]);
	cpmsync_loop_free(loop);
	cpmsync_store_close(store);
	config_free(cfg);
	return r;
}
