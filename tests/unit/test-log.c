/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * agent/log.c: one message is one line on stderr, whatever it quotes
 * (an outbox file name with a newline and "<3>" cannot forge a line of its
 * own, at the journal's error priority).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/utf8.h>

#include "log.h"
#include "testlib.h"

/* What agent_log(level, "%s", msg) writes on stderr. */
static const char *logged(const char *msg)
{
	static char out[65536];
	char path[] = "/tmp/test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(saved, 0);
	unlink(path);
	ck_assert_int_eq(dup2(fd, 2), 2);
	agent_log(LOG_LEVEL_INFO, "%s", msg);
	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(fd);
	return out;
}

START_TEST(test_one_line)
{
	static char many[4200];
	const char *out;

	unsetenv("JOURNAL_STREAM");
	agent_log_init(false);
	ck_assert_str_eq(logged("plain ü"), "cpm-syncd: plain ü\n");
	ck_assert_str_eq(
		logged("outbox: stored a/INBOX/evil\n<3>cpm-syncd: fake error line"),
		"cpm-syncd: outbox: stored a/INBOX/evil\\n<3>cpm-syncd: fake error line\n");
	ck_assert_str_eq(logged("a\rb\tc\x01"
				"d\x7f"
				"e\x1b[31m"),
			 "cpm-syncd: a\\rb\\tc\\x01d\\x7fe\\x1b[31m\n");
	/* Not UTF-8 (journald would keep the line as a blob), C1 and
	 * bidirectional formatting characters, as the library's log does;
	 * the rest of the UTF-8 as it is. */
	ck_assert_str_eq(logged("outbox: na\xefve\xff.eml"
				"\xe2\x80\xae"
				"evil\xc2\x85"
				"x \xe6\x97\xa5"),
			 "cpm-syncd: outbox: na\\xefve\\xff.eml\\u202eevil\\u0085x \xe6\x97\xa5\n");
	/* Cut short inside a run of 2-byte characters: never inside one. */
	for (size_t i = 0; i + 2 < sizeof(many); i += 2)
		memcpy(many + i, "\xc3\xa9", 2);
	many[sizeof(many) - 2] = '\n';
	many[sizeof(many) - 1] = '\0';
	out = logged(many);
	ck_assert(cpmsync_utf8_valid(out, strlen(out)));
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	/* A long message, all of it to escape: cut short, still one line. */
	memset(many, '\n', sizeof(many) - 1);
	out = logged(many);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_uint_gt(strlen(out), 4000);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_test(tc, test_one_line);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(log_suite)
