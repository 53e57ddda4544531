/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Previews: the helper protocol (cpmsync/preview.h) and the preview cache
 * in the store.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/preview.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */
/* Protocol */

START_TEST(test_request_roundtrip)
{
	struct cpmsync_preview_request in = { CPMSYNC_PREVIEW_PNG, 160, 120, 12345 }, out;
	uint8_t buf[CPMSYNC_PREVIEW_HEADER_SIZE];

	ck_assert_int_eq(cpmsync_preview_request_encode(&in, buf), 0);
	ck_assert_int_eq(memcmp(buf, "CPMP\1\0\1\0\2\0\0\0\240\0\0\0\170\0\0\0\071\060\0\0", 24),
			 0);
	ck_assert_int_eq(cpmsync_preview_request_decode(buf, &out), 0);
	ck_assert_uint_eq(out.format, CPMSYNC_PREVIEW_PNG);
	ck_assert_uint_eq(out.width, 160);
	ck_assert_uint_eq(out.height, 120);
	ck_assert_uint_eq(out.input_size, 12345);
}
END_TEST

START_TEST(test_request_refused)
{
	struct cpmsync_preview_request ok = { CPMSYNC_PREVIEW_JPEG, 1, 1, 1 }, r;
	struct cpmsync_preview_response resp = { 0 };
	uint8_t buf[CPMSYNC_PREVIEW_HEADER_SIZE], bad[CPMSYNC_PREVIEW_HEADER_SIZE];
	struct cpmsync_preview_request bad_values[] = {
		{ 0, 1, 1, 1 },
		{ 4, 1, 1, 1 },
		{ CPMSYNC_PREVIEW_JPEG, 0, 1, 1 },
		{ CPMSYNC_PREVIEW_JPEG, 1, CPMSYNC_PREVIEW_MAX_SIDE + 1, 1 },
		{ CPMSYNC_PREVIEW_JPEG, 1, 1, 0 },
		{ CPMSYNC_PREVIEW_JPEG, 1, 1, CPMSYNC_PREVIEW_MAX_INPUT + 1ull },
	};

	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++)
		ck_assert_int_eq(cpmsync_preview_request_encode(&bad_values[i], buf), -EINVAL);
	ck_assert_int_eq(cpmsync_preview_request_encode(&ok, buf), 0);

	/* magic, version, kind: not this protocol */
	for (size_t off = 0; off < 8; off++) {
		memcpy(bad, buf, sizeof(buf));
		bad[off] ^= 0x40;
		ck_assert_int_eq(cpmsync_preview_request_decode(bad, &r), -EPROTO);
	}
	/* a response is not a request, nor the other way round */
	resp.status = CPMSYNC_PREVIEW_E_NOT_IMAGE;
	ck_assert_int_eq(cpmsync_preview_response_encode(&resp, bad), 0);
	ck_assert_int_eq(cpmsync_preview_request_decode(bad, &r), -EPROTO);
	{
		struct cpmsync_preview_response rr;

		ck_assert_int_eq(cpmsync_preview_response_decode(buf, &rr), -EPROTO);
	}
	/* values out of range, and the reserved word */
	memcpy(bad, buf, sizeof(buf));
	bad[8] = 9; /* format */
	ck_assert_int_eq(cpmsync_preview_request_decode(bad, &r), -EINVAL);
	memcpy(bad, buf, sizeof(buf));
	bad[27] = 1; /* input_size 2^56 + 1 */
	ck_assert_int_eq(cpmsync_preview_request_decode(bad, &r), -EINVAL);
	memcpy(bad, buf, sizeof(buf));
	bad[31] = 1;
	ck_assert_int_eq(cpmsync_preview_request_decode(bad, &r), -EINVAL);
}
END_TEST

START_TEST(test_response_bounds)
{
	struct cpmsync_preview_response ok = { CPMSYNC_PREVIEW_OK, 160, 90, 5000 }, r;
	struct cpmsync_preview_response bad_values[] = {
		{ CPMSYNC_PREVIEW_OK, 0, 90, 5000 },
		{ CPMSYNC_PREVIEW_OK, 160, 90, 0 },
		{ CPMSYNC_PREVIEW_OK, 160, 90, CPMSYNC_PREVIEW_MAX_OUTPUT + 1ull },
		{ CPMSYNC_PREVIEW_E_DAMAGED, 0, 0, CPMSYNC_PREVIEW_MAX_TEXT + 1ull },
		{ CPMSYNC_PREVIEW_E_DAMAGED, 1, 0, 10 },
		{ _CPMSYNC_PREVIEW_STATUS_MAX, 0, 0, 10 },
	};
	uint8_t buf[CPMSYNC_PREVIEW_HEADER_SIZE];

	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++)
		ck_assert_int_eq(cpmsync_preview_response_encode(&bad_values[i], buf), -EINVAL);
	ck_assert_int_eq(cpmsync_preview_response_encode(&ok, buf), 0);
	ck_assert_int_eq(cpmsync_preview_response_decode(buf, &r), 0);
	ck_assert_uint_eq(r.width, 160);
	ck_assert_uint_eq(r.height, 90);
	ck_assert_uint_eq(r.length, 5000);
	/* a length the decoder must refuse, whatever the sender says */
	buf[23] = 0x10; /* 5000 + 2^24 * 16 > CPMSYNC_PREVIEW_MAX_OUTPUT */
	ck_assert_int_eq(cpmsync_preview_response_decode(buf, &r), -EINVAL);
}
END_TEST

START_TEST(test_format_names)
{
	ck_assert_uint_eq(cpmsync_preview_format_from_type("image/jpeg"), CPMSYNC_PREVIEW_JPEG);
	ck_assert_uint_eq(cpmsync_preview_format_from_type("IMAGE/PNG"), CPMSYNC_PREVIEW_PNG);
	ck_assert_uint_eq(cpmsync_preview_format_from_type("image/webp"), CPMSYNC_PREVIEW_WEBP);
	ck_assert_uint_eq(cpmsync_preview_format_from_type("image/gif"), 0);
	ck_assert_uint_eq(cpmsync_preview_format_from_type("text/plain"), 0);
	ck_assert_uint_eq(cpmsync_preview_format_from_type(NULL), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Cache */

static char tmpdir[] = "/tmp/test-preview-XXXXXX";
static struct cpmsync_store *cs;

static void setup(void)
{
	char path[sizeof(tmpdir) + 16];
	char *err = NULL;

	strcpy(tmpdir, "/tmp/test-preview-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/store.db", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(path, 0, &cs, &err), 0);
	ck_assert_int_eq(
		store_exec(store_from_public(cs),
			   "INSERT INTO account (id, name) VALUES (1, 'a');"
			   "INSERT INTO folder (id, account_id, name, delimiter, server_name)"
			   " VALUES (1, 1, 'INBOX', '/', 'INBOX');"
			   "INSERT INTO message (id, folder_id, uid, flags, size)"
			   " VALUES (1, 1, 5, '', 5), (2, 1, 6, '', 5);"),
		0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void expect_cached(int64_t id, const char *section, const char *format, uint32_t w,
			  uint32_t h, const char *want)
{
	void *data = NULL;
	size_t len = 0;
	int r = cpmsync_store_preview_get(cs, id, section, format, w, h, &data, &len);

	if (!want) {
		ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
		return;
	}
	ck_assert_msg(r == 0, "get: %d %s", r, cpmsync_store_error(cs));
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_int_eq(memcmp(data, want, len), 0);
	free(data);
}

START_TEST(test_cache_keys)
{
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "2", "image/jpeg", 160, 120, "J1", 2), 0);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "2", "image/png", 160, 120, "P1", 2), 0);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "", "text/plain", 40, 3, "hello", 5), 0);
	expect_cached(1, "2", "image/jpeg", 160, 120, "J1");
	expect_cached(1, "2", "image/png", 160, 120, "P1");
	expect_cached(1, "", "text/plain", 40, 3, "hello");
	/* each part of the key counts */
	expect_cached(2, "2", "image/jpeg", 160, 120, NULL);
	expect_cached(1, "3", "image/jpeg", 160, 120, NULL);
	expect_cached(1, "2", "image/webp", 160, 120, NULL);
	expect_cached(1, "2", "image/jpeg", 120, 160, NULL);
	expect_cached(1, "2", "image/jpeg", 160, 121, NULL);
	/* a second put replaces */
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "2", "image/jpeg", 160, 120, "J2", 2), 0);
	expect_cached(1, "2", "image/jpeg", 160, 120, "J2");
	/* no message, no preview; too large, not kept */
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 9, "1", "image/jpeg", 1, 1, "x", 1),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "1", "image/jpeg", 1, 1, "x",
						   CPMSYNC_PREVIEW_MAX_CACHED + 1),
			 -EFBIG);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "1", "", 1, 1, "x", 1), -EINVAL);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "1", "image/png", 0, 1, "x", 1), -EINVAL);
}
END_TEST

START_TEST(test_cache_dropped_with_message)
{
	int64_t id = 1;

	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "2", "image/jpeg", 160, 120, "J1", 2), 0);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 2, "2", "image/jpeg", 160, 120, "J2", 2), 0);
	/* Removed locally (expunge pending): not served any more. */
	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	expect_cached(1, "2", "image/jpeg", 160, 120, NULL);
	ck_assert_int_eq(cpmsync_store_preview_put(cs, 1, "2", "image/jpeg", 160, 120, "J1", 2),
			 -CPMSYNC_E_NOT_FOUND);
	/* The row gone: its previews are gone, the other message's stay. */
	ck_assert_int_eq(store_exec(store_from_public(cs), "DELETE FROM message WHERE id = 1"), 0);
	ck_assert_str_eq(test_store_text(store_from_public(cs),
					 "SELECT group_concat(message_id) FROM preview"),
			 "2");
	expect_cached(2, "2", "image/jpeg", 160, 120, "J2");
}
END_TEST

static Suite *preview_suite(void)
{
	Suite *s = suite_create("preview");
	TCase *tc = tcase_create("protocol");

	tcase_add_test(tc, test_request_roundtrip);
	tcase_add_test(tc, test_request_refused);
	tcase_add_test(tc, test_response_bounds);
	tcase_add_test(tc, test_format_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cache_keys);
	tcase_add_test(tc, test_cache_dropped_with_message);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(preview_suite)
