/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pack-churn: the disk space that bodies in pack files (store-pack.c) keep
 * after rounds of deletions, for tests/bench/bench-packs.sh.
 *
 *   pack-churn PATH N ROUNDS PERCENT [SEED]
 *
 * Makes a store at PATH (which must not exist) with N messages whose
 * bodies are 4 KiB + 1 to 20 KiB (uniform, from SEED, default 1), stored
 * 500 to a transaction as a sync stores them; then ROUNDS times deletes
 * PERCENT % of the messages still there, at random, in one transaction
 * (an expunge batch; the store punches their bodies out after the
 * commit).  It prints one line after the bodies are stored and one after
 * the last round:
 *
 *   round R live L allocated A waste W% packs P written B/deleted
 *
 * L: the bytes of the bodies still there; A: the blocks the pack files
 * take on the disk (st_blocks); W: (A - L) / L; B: write_bytes of this
 * process (/proc/self/io: the store, its WAL and the packs) during the
 * rounds, per deleted message.
 */
#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"

#define BODY_MIN (STORE_BODY_INLINE_MAX + 1)
#define BODY_MAX (20 * 1024)
#define BATCH	 500

static uint64_t rnd_state;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(rnd_state >> 33);
}

static void die(struct store *s, const char *what, int r)
{
	fprintf(stderr, "pack-churn: %s: %s (%d)\n", what, s ? store_error(s) : "", r);
	exit(1);
}

static uint64_t write_bytes(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	uint64_t v = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "write_bytes: %" SCNu64, &v) == 1)
			break;
	fclose(f);
	return v;
}

/* The blocks the pack files take, in bytes, and how many there are. */
static uint64_t allocated(const char *path, unsigned *packs)
{
	char dir[4096];
	struct dirent *e;
	uint64_t sum = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s-packs", path);
	*packs = 0;
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[4096 + 256];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0) {
			sum += (uint64_t)st.st_blocks * 512;
			(*packs)++;
		}
	}
	closedir(d);
	return sum;
}

static int64_t query_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = 0;
	int r = store_prepare(s, sql, &st);

	if (r < 0)
		die(s, sql, r);
	r = store_step(s, st);
	if (r < 0)
		die(s, sql, r);
	if (r > 0) {
		v = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	return v;
}

static void report(struct store *s, const char *path, unsigned round, uint64_t written,
		   uint64_t deleted)
{
	uint64_t live = (uint64_t)query_int(s, "SELECT ifnull(sum(len), 0) FROM body_pack");
	unsigned packs;
	uint64_t alloc = allocated(path, &packs);

	printf("round %u live %" PRIu64 " allocated %" PRIu64
	       " waste %.1f%% packs %u written %" PRIu64 "/deleted\n",
	       round, live, alloc, live ? 100.0 * ((double)alloc - (double)live) / (double)live : 0,
	       packs, deleted ? written / deleted : 0);
}

int main(int argc, char **argv)
{
	struct store *s = NULL;
	char *err = NULL, *body;
	unsigned long n, rounds, percent;
	int64_t *ids;
	size_t live;
	uint64_t w0, deleted = 0;
	int r;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: pack-churn PATH N ROUNDS PERCENT [SEED]\n");
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	rounds = strtoul(argv[3], NULL, 10);
	percent = strtoul(argv[4], NULL, 10);
	rnd_state = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
	if (n == 0 || percent == 0 || percent > 100) {
		fprintf(stderr, "pack-churn: N >= 1 and PERCENT 1..100\n");
		return 2;
	}
	r = store_open(argv[1], 0, &s, &err);
	if (r < 0) {
		fprintf(stderr, "pack-churn: %s: %s\n", argv[1], err ? err : "");
		return 1;
	}
	body = malloc(BODY_MAX);
	ids = calloc(n, sizeof(*ids));
	if (!body || !ids)
		die(s, "out of memory", -ENOMEM);
	for (size_t i = 0; i < BODY_MAX; i++)
		body[i] = (char)('a' + rnd() % 26);
	r = store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
			  "INSERT INTO folder (id, account_id, name, delimiter)"
			  " VALUES (10, 1, 'INBOX', '/')");
	if (r < 0)
		die(s, "account", r);
	for (unsigned long i = 0; i < n; i++) {
		sqlite3_stmt *st;
		size_t len = BODY_MIN + rnd() % (BODY_MAX - BODY_MIN + 1);

		if (i % BATCH == 0 && (r = store_begin(s)) < 0)
			die(s, "begin", r);
		r = store_prepare(s, "INSERT INTO message (folder_id, uid) VALUES (10, ?1)", &st);
		if (r < 0)
			die(s, "insert", r);
		sqlite3_bind_int64(st, 1, (int64_t)i + 1);
		r = store_step_done(s, st);
		if (r < 0)
			die(s, "insert", r);
		ids[i] = store_last_insert_id(s);
		r = store_body_put(s, ids[i], body + rnd() % (BODY_MAX - len + 1), len);
		if (r < 0)
			die(s, "body", r);
		if ((i % BATCH == BATCH - 1 || i == n - 1) && (r = store_commit(s)) < 0)
			die(s, "commit", r);
	}
	report(s, argv[1], 0, 0, 0);

	live = n;
	w0 = write_bytes();
	for (unsigned long round = 1; round <= rounds && live > 0; round++) {
		size_t k = live * percent / 100;

		if (k == 0)
			k = 1;
		r = store_begin(s);
		if (r < 0)
			die(s, "begin", r);
		for (size_t j = 0; j < k; j++) {
			size_t at = rnd() % live;

			r = store_exec_id(s, "DELETE FROM message WHERE id = ?1", ids[at]);
			if (r < 0)
				die(s, "delete", r);
			ids[at] = ids[--live];
		}
		r = store_commit(s);
		if (r < 0)
			die(s, "commit", r);
		deleted += k;
	}
	report(s, argv[1], (unsigned)rounds, write_bytes() - w0, deleted);
	free(body);
	free(ids);
	store_close(s);
	return 0;
}
