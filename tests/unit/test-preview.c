/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Previews: the helper protocol (cpmsync/preview.h) and the preview cache
 * in the store.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/loop.h>
#include <cpmsync/ops.h>
#include <cpmsync/preview.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "testlib.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/preview-part.h"

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
			   "INSERT INTO message (id, folder_id, uid, size)"
			   " VALUES (1, 1, 5, 5), (2, 1, 6, 5);"
			   "INSERT INTO message_state (id) VALUES (1), (2);"),
		0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	test_rm_rf(tmpdir);
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

/* ------------------------------------------------------------------ */
/* Parts and text */

static void expect_info(const char *hdr, const char *type, const char *charset,
			enum transfer_encoding enc)
{
	struct part_info pi;

	part_info_parse(hdr, strlen(hdr), &pi);
	ck_assert_str_eq(pi.type, type);
	ck_assert_str_eq(pi.charset, charset);
	ck_assert_int_eq(pi.encoding, enc);
}

START_TEST(test_part_info)
{
	expect_info("", "text/plain", "", TRANSFER_IDENTITY);
	expect_info("Subject: x\r\n\r\n", "text/plain", "", TRANSFER_IDENTITY);
	expect_info("Content-Type: IMAGE/JPEG; name=a.jpg\r\n"
		    "Content-Transfer-Encoding: Base64\r\n\r\n",
		    "image/jpeg", "", TRANSFER_BASE64);
	expect_info("content-type:text/plain;\r\n\tformat=flowed; (c) charset=\"ISO-8859-2\"\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n",
		    "text/plain", "iso-8859-2", TRANSFER_QP);
	expect_info("Content-Type: (comment) text/html ; charset=utf-8\n", "text/html", "utf-8",
		    TRANSFER_IDENTITY);
	/* unreadable: the defaults */
	expect_info("Content-Type: ;;;\r\nContent-Transfer-Encoding: x-uuencode\r\n", "text/plain",
		    "", TRANSFER_IDENTITY);
	/* a field that only starts like one */
	expect_info("Content-Type-X: image/png\r\n", "text/plain", "", TRANSFER_IDENTITY);
}
END_TEST

static char *decoded(enum transfer_encoding enc, const char *in, size_t max)
{
	struct buf b = BUF_INIT(max);

	ck_assert_int_eq(transfer_decode(enc, in, strlen(in), &b), 0);
	return b.data ? buf_steal(&b) : strdup("");
}

START_TEST(test_part_decode)
{
	char *s;
	struct buf b = BUF_INIT(4);

	s = decoded(TRANSFER_BASE64, "aGVs\r\nbG8g\r\nd29y bGQ=\r\n", 100);
	ck_assert_str_eq(s, "hello world");
	free(s);
	s = decoded(TRANSFER_QP, "caf=C3=A9 =\r\nau lait=3D=\nyes =XY", 100);
	ck_assert_str_eq(s, "caf\xc3\xa9 au lait=yes =XY");
	free(s);
	s = decoded(TRANSFER_IDENTITY, "as is", 100);
	ck_assert_str_eq(s, "as is");
	free(s);
	/* bounded */
	ck_assert_int_eq(transfer_decode(TRANSFER_BASE64, "aGVsbG8gd29ybGQ=", 16, &b), -E2BIG);
	buf_free(&b);
}
END_TEST

/* The base64 decoder as it was (a digit at a time), to compare with. */
static size_t base64_reference(const char *in, size_t len, unsigned char *out)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	for (size_t i = 0; i < len && in[i] != '='; i++) {
		const char *d = in[i] ? strchr(digits, in[i]) : NULL;

		if (!d)
			continue;
		acc = (acc << 6) | (uint32_t)(d - digits);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

/*
 * base64 four digits at a time: the same bytes as a digit at a time, for
 * 200 KB of random data (more than the decoder's 16 KiB chunk) in lines of
 * every length from 1 to 80, with CRLF, LF, spaces and bytes outside the
 * alphabet between and inside the groups of four, and a '=' that ends it
 * early; and the bound still holds.
 */
START_TEST(test_part_decode_base64_long)
{
	const size_t raw_len = 200 * 1024;
	unsigned char *raw = malloc(raw_len), *want = malloc(raw_len * 2);
	char *enc = NULL, *in;
	size_t in_len = 0, want_len;
	unsigned seed = 12345;

	ck_assert_ptr_nonnull(raw);
	ck_assert_ptr_nonnull(want);
	for (size_t i = 0; i < raw_len; i++)
		raw[i] = (unsigned char)((seed = seed * 1103515245 + 12345) >> 16);
	ck_assert_int_eq(base64_encode(raw, raw_len, &enc), 0);
	in = malloc(strlen(enc) * 3 + 16);
	ck_assert_ptr_nonnull(in);
	for (size_t i = 0, line = 1; enc[i]; i++) {
		static const char *const junk[] = { "\r\n", "\n", " ", "\t", "*", "\xff", "-" };

		in[in_len++] = enc[i];
		if ((i + 1) % line == 0) {
			const char *j = junk[(i / line) % 7];

			memcpy(in + in_len, j, strlen(j));
			in_len += strlen(j);
			line = line % 80 + 1;
		}
	}
	in[in_len] = '\0';
	for (int pass = 0; pass < 2; pass++) {
		struct buf b = BUF_INIT(raw_len * 2);
		size_t len = pass == 0 ? in_len : in_len / 2;

		if (pass == 1)
			in[len] = '='; /* the end, in the middle */
		ck_assert_int_eq(transfer_decode(TRANSFER_BASE64, in, in_len, &b), 0);
		want_len = base64_reference(in, in_len, want);
		ck_assert_uint_eq(b.len, want_len);
		ck_assert_int_eq(memcmp(b.data, want, want_len), 0);
		if (pass == 0) {
			ck_assert_uint_eq(b.len, raw_len);
			ck_assert_int_eq(memcmp(b.data, raw, raw_len), 0);
		} else {
			ck_assert_uint_lt(b.len, raw_len / 2 + 16);
		}
		buf_free(&b);
	}
	/* bounded: one byte short of the output */
	{
		struct buf b = BUF_INIT(raw_len - 1);

		in[in_len / 2] = 'A';
		ck_assert_int_eq(transfer_decode(TRANSFER_BASE64, in, in_len, &b), -E2BIG);
		ck_assert_uint_le(b.len, raw_len - 1);
		buf_free(&b);
	}
	free(raw);
	free(want);
	free(enc);
	free(in);
}
END_TEST

static void expect_excerpt(const char *in, const char *charset, int html, uint32_t w, uint32_t h,
			   const char *want)
{
	struct buf out = BUF_INIT(1 << 20);

	ck_assert_int_eq(part_text_excerpt(in, strlen(in), charset, html, w, h, &out), 0);
	ck_assert_str_eq(out.data, want);
	buf_free(&out);
}

START_TEST(test_text_excerpt)
{
	/* blank lines at the start and runs of them, trailing white space */
	expect_excerpt("\r\n\r\nHello,  \r\n\r\n\r\nthis is\tthe text.\r\nMore.", "", 0, 80, 10,
		       "Hello,\n\nthis is the text.\nMore.");
	/* wrapped at width characters (not bytes), at most height lines */
	expect_excerpt("h\xc3\xa9llo w\xc3\xb6rld", "utf-8", 0, 4, 2, "h\xc3\xa9ll\no w\xc3\xb6");
	expect_excerpt("one\ntwo\nthree\nfour", "", 0, 80, 2, "one\ntwo");
	/* charsets: iconv, and ISO-8859-1 for bytes that are not UTF-8 */
	expect_excerpt("\xa3 \xb9", "iso-8859-2", 0, 80, 1, "\xc5\x81 \xc5\xa1");
	expect_excerpt("caf\xe9", "", 0, 80, 1, "caf\xc3\xa9");
	expect_excerpt("caf\xe9", "x-unknown-charset", 0, 80, 1, "caf\xc3\xa9");
	/* a byte the charset does not have: U+FFFD */
	expect_excerpt("a\xff"
		       "b",
		       "euc-jp", 0, 80, 1,
		       "a\xef\xbf\xbd"
		       "b");
	/* control characters */
	expect_excerpt("a\x01"
		       "b\x7f"
		       "c\xc2\x85"
		       "d",
		       "utf-8", 0, 80, 1, "a b c d");
	/* HTML */
	expect_excerpt("<html><head><style>p {color: red}</style><script>x()</script></head>"
		       "<body><!-- note --><p>Fish &amp; chips</p><p>for &lt;two&gt;</p></body>",
		       "", 1, 80, 5, "Fish & chips\n\nfor <two>");
	expect_excerpt("", "", 0, 10, 10, "");
}
END_TEST

/* ------------------------------------------------------------------ */
/* The helper, through cpmsync_preview_image() */

static char helper[PATH_MAX + 64], datadir[PATH_MAX + 64];

static void find_paths(void)
{
	char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	char *slash;

	ck_assert_int_gt(n, 0);
	dir[n] = '\0';
	/* <B>/tests/unit/test-preview -> <B>/cpm-preview */
	for (int i = 0; i < 3; i++) {
		slash = strrchr(dir, '/');
		ck_assert_ptr_nonnull(slash);
		*slash = '\0';
	}
	snprintf(helper, sizeof(helper), "%s/cpm-preview", dir);
	ck_assert_msg(access(helper, X_OK) == 0, "no helper at %s", helper);
	for (;;) {
		snprintf(datadir, sizeof(datadir), "%s/tests/data/preview", dir);
		if (access(datadir, R_OK) == 0)
			return;
		slash = strrchr(dir, '/');
		ck_assert_msg(slash && slash != dir, "tests/data/preview not found");
		*slash = '\0';
	}
}

struct result {
	bool done;
	int r;
	char reason[1024];
	char *data;
	size_t len;
};

static void result_cb(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct result *res = userdata;

	res->done = true;
	res->r = r;
	snprintf(res->reason, sizeof(res->reason), "%s", reason ? reason : "");
	if (r == 0) {
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(cpmsync_read_all(fd, 64 << 20, &res->data, &res->len), 0);
		ck_assert_uint_eq(res->len, size);
		close(fd);
	} else {
		ck_assert_int_eq(fd, -1);
	}
}

static char *read_data(const char *name, size_t *ret_len)
{
	char path[2 * PATH_MAX], *data = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", datadir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s", path);
	ck_assert_int_eq(cpmsync_read_all(fd, 16 << 20, &data, ret_len), 0);
	close(fd);
	return data;
}

static uint32_t be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* The size of a JPEG (its SOF) or PNG (IHDR); fails on anything else. */
static void image_size(const char *d, size_t n, const char *format, uint32_t *w, uint32_t *h)
{
	const unsigned char *u = (const unsigned char *)d;

	if (strcmp(format, "image/png") == 0) {
		ck_assert_uint_ge(n, 24);
		ck_assert_int_eq(memcmp(d, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), 0);
		*w = be32(d + 16);
		*h = be32(d + 20);
		return;
	}
	if (strcmp(format, "image/webp") == 0) {
		ck_assert_uint_ge(n, 30);
		ck_assert_int_eq(memcmp(d, "RIFF", 4), 0);
		ck_assert_int_eq(memcmp(d + 8, "WEBP", 4), 0);
		if (memcmp(d + 12, "VP8 ", 4) == 0) { /* lossy: 14-bit sizes at 26 */
			*w = (uint32_t)(u[26] | u[27] << 8) & 0x3fff;
			*h = (uint32_t)(u[28] | u[29] << 8) & 0x3fff;
		} else if (memcmp(d + 12, "VP8L", 4) == 0) { /* lossless: 14+14 bits at 21 */
			uint32_t b = (uint32_t)u[21] | (uint32_t)u[22] << 8 |
				     (uint32_t)u[23] << 16 | (uint32_t)u[24] << 24;

			*w = (b & 0x3fff) + 1;
			*h = ((b >> 14) & 0x3fff) + 1;
		} else {
			ck_assert_int_eq(memcmp(d + 12, "VP8X", 4), 0); /* 24-bit sizes at 24 */
			*w = ((uint32_t)u[24] | (uint32_t)u[25] << 8 | (uint32_t)u[26] << 16) + 1;
			*h = ((uint32_t)u[27] | (uint32_t)u[28] << 8 | (uint32_t)u[29] << 16) + 1;
		}
		return;
	}
	ck_assert_str_eq(format, "image/jpeg");
	ck_assert_uint_ge(n, 4);
	ck_assert(u[0] == 0xff && u[1] == 0xd8 && u[2] == 0xff);
	for (size_t i = 2; i + 9 < n;) {
		size_t len = (size_t)(u[i + 2] << 8 | u[i + 3]);

		ck_assert_int_eq(u[i], 0xff);
		if (u[i + 1] >= 0xc0 && u[i + 1] <= 0xc2) {
			*h = (uint32_t)(u[i + 5] << 8 | u[i + 6]);
			*w = (uint32_t)(u[i + 7] << 8 | u[i + 8]);
			return;
		}
		i += 2 + len;
	}
	ck_abort_msg("no SOF in the JPEG");
}

static struct cpmsync_loop *loop;
static struct cpmsync_previewer *pv;

static void helper_setup(void)
{
	find_paths();
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_previewer_new(loop, NULL, helper, &pv), 0);
}

static void helper_teardown(void)
{
	pv = cpmsync_previewer_free(pv);
	loop = cpmsync_loop_free(loop);
}

static void run_image(const char *name, const char *format, uint32_t w, uint32_t h,
		      struct result *res)
{
	size_t len;
	char *data = read_data(name, &len);

	memset(res, 0, sizeof(*res));
	ck_assert_int_eq(cpmsync_preview_image(pv, data, len, format, w, h, result_cb, res), 0);
	free(data);
	ck_assert(!res->done); /* never from inside the call */
	ck_assert(test_loop_run_until(loop, &res->done, 30000));
}

START_TEST(test_helper_images)
{
	static const struct {
		const char *file, *format;
		uint32_t w, h, want_w, want_h;
	} cases[] = {
		{ "good.jpg", "image/jpeg", 160, 120, 160, 120 }, /* 200x150 */
		{ "good.jpg", "image/png", 100, 100, 100, 75 },
		{ "good.jpg", "image/webp", 50, 20, 27, 20 },
		{ "good.png", "image/jpeg", 60, 60, 60, 40 },	   /* 150x100 */
		{ "good.png", "image/png", 4096, 4096, 150, 100 }, /* never enlarged */
		{ "good.gif", "image/png", 32, 32, 32, 24 },	   /* 64x48 */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result res;
		uint32_t w = 0, h = 0;

		run_image(cases[i].file, cases[i].format, cases[i].w, cases[i].h, &res);
		ck_assert_msg(res.r == 0, "%s: %d %s", cases[i].file, res.r, res.reason);
		image_size(res.data, res.len, cases[i].format, &w, &h);
		ck_assert_msg(w == cases[i].want_w && h == cases[i].want_h,
			      "%s -> %s %ux%u: got %ux%u", cases[i].file, cases[i].format,
			      cases[i].w, cases[i].h, w, h);
		free(res.data);
	}
}
END_TEST

START_TEST(test_helper_hostile)
{
	static const struct {
		const char *file;
		int r;
		const char *reason;
	} cases[] = {
		{ "truncated.jpg", -EBADMSG,
		  "part the body: damaged image data: VipsJpeg: Premature end of input file" },
		{ "truncated.png", -EBADMSG,
		  "part the body: damaged image data: vipspng: libpng read error" },
		{ "corrupt.png", -EBADMSG,
		  "part the body: damaged image data: vipspng: libpng read error" },
		{ "huge-dimensions.jpg", -EFBIG,
		  "part the body: image of 60000x60000 pixels: more than the 80-megapixel limit" },
		{ "huge-dimensions.png", -EFBIG,
		  "part the body: image of 100000x100000 pixels: more than the 80-megapixel "
		  "limit" },
		{ "bomb.png", -EFBIG,
		  "part the body: image of 20000x20000 pixels: more than the 80-megapixel limit" },
		{ "not-an-image.jpg", -EBADMSG,
		  "part the body: not a JPEG, PNG, WebP or GIF image" },
		{ "image.svg", -EBADMSG, "part the body: not a JPEG, PNG, WebP or GIF image" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result res;

		run_image(cases[i].file, "image/jpeg", 160, 120, &res);
		ck_assert_msg(res.r == cases[i].r, "%s: %d %s", cases[i].file, res.r, res.reason);
		ck_assert_str_eq(res.reason, cases[i].reason);
	}
}
END_TEST

/* Not the helper: its exit is reported, the caller goes on. */
START_TEST(test_helper_failures)
{
	struct cpmsync_previewer *p2;
	struct result res = { 0 };
	char script[PATH_MAX];
	FILE *f;

	/* none there */
	ck_assert_int_eq(cpmsync_previewer_new(loop, NULL, "/nonexistent/cpm-preview", &p2), 0);
	ck_assert_int_eq(
		cpmsync_preview_image(p2, "\xff\xd8\xff", 3, "image/png", 8, 8, result_cb, &res),
		0);
	ck_assert(test_loop_run_until(loop, &res.done, 10000));
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_SUPPORTED);
	ck_assert_str_eq(res.reason,
			 "no image converter: /nonexistent/cpm-preview: No such file or directory");
	cpmsync_previewer_free(p2);

	/* one that dies of a signal, one that answers nonsense */
	snprintf(script, sizeof(script), "/tmp/test-preview-helper-%d", (int)getpid());
	for (int pass = 0; pass < 2; pass++) {
		f = fopen(script, "w");
		ck_assert_ptr_nonnull(f);
		fputs(pass == 0 ? "#!/bin/sh\nkill -SEGV $$\n"
				: "#!/bin/sh\nhead -c 32 >/dev/null; echo nonsense\n",
		      f);
		fclose(f);
		chmod(script, 0700);
		ck_assert_int_eq(cpmsync_previewer_new(loop, NULL, script, &p2), 0);
		memset(&res, 0, sizeof(res));
		ck_assert_int_eq(cpmsync_preview_image(p2, "\xff\xd8\xff", 3, "image/png", 8, 8,
						       result_cb, &res),
				 0);
		ck_assert(test_loop_run_until(loop, &res.done, 10000));
		ck_assert_int_eq(res.r, -EIO);
		ck_assert_str_eq(
			res.reason,
			pass == 0 ? "part the body: the image converter was stopped (signal "
				    "11): it crashed (out of memory, or a decoder bug)"
				  : "part the body: the image converter gave no valid answer "
				    "(exit status 0)");
		cpmsync_previewer_free(p2);
	}
	unlink(script);
	/* bad arguments */
	ck_assert_int_eq(cpmsync_preview_image(pv, "x", 1, "image/gif", 8, 8, result_cb, &res),
			 -EINVAL);
	ck_assert_int_eq(cpmsync_preview_image(pv, "x", 1, "image/png", 0, 8, result_cb, &res),
			 -EINVAL);
}
END_TEST

/* Files in dir (one per helper started, made by the wrapper below). */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_msg(d != NULL, "%s", dir);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Runs the loop until dir holds n files (false: it did not in 10 s, or
 * holds more). */
static bool wait_files(const char *dir, int n)
{
	for (int i = 0; i < 1000 && count_files(dir) < n; i++)
		cpmsync_loop_iterate(loop, 10);
	return count_files(dir) == n;
}

struct spare_result {
	struct result res;
	const char *starts;
	int started; /* helpers started when the preview was delivered */
};

static void spare_cb(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct spare_result *s = userdata;

	s->started = count_files(s->starts);
	result_cb(r, reason, fd, size, &s->res);
}

/*
 * The spare: the next preview takes it (no helper started for it), and the
 * next spare is started once the preview is delivered, not while it runs
 * (on one or two CPUs, where its start-up would compete with the preview;
 * with more CPUs it may start at once, and the count at delivery is not
 * checked).  A wrapper of the helper leaves a file per start.
 */
START_TEST(test_helper_spare)
{
	char dir[] = "/tmp/test-preview-spare-XXXXXX", starts[64], script[PATH_MAX];
	bool few_cpus = sysconf(_SC_NPROCESSORS_ONLN) <= 2;
	struct cpmsync_previewer *p2;
	size_t len;
	char *data = read_data("good.jpg", &len);
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(starts, sizeof(starts), "%s/starts", dir);
	ck_assert_int_eq(mkdir(starts, 0700), 0);
	snprintf(script, sizeof(script), "%s/cpm-preview", dir);
	f = fopen(script, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\n: >'%s/'$$\nexec '%s' \"$@\"\n", starts, helper);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(script, 0700), 0);
	ck_assert_int_eq(cpmsync_previewer_new(loop, NULL, script, &p2), 0);
	for (int pass = 0; pass < 3; pass++) {
		struct spare_result s = { .starts = starts };
		uint32_t w = 0, h = 0;

		ck_assert_int_eq(
			cpmsync_preview_image(p2, data, len, "image/jpeg", 160, 120, spare_cb, &s),
			0);
		ck_assert(test_loop_run_until(loop, &s.res.done, 30000));
		ck_assert_msg(s.res.r == 0, "pass %d: %d %s", pass, s.res.r, s.res.reason);
		image_size(s.res.data, s.res.len, "image/jpeg", &w, &h);
		ck_assert_uint_eq(w, 160);
		ck_assert_uint_eq(h, 120);
		free(s.res.data);
		/* pass 0: the helper started for it; then each took the spare */
		if (few_cpus)
			ck_assert_msg(s.started == pass + 1,
				      "pass %d: %d helpers started by the delivery, want %d", pass,
				      s.started, pass + 1);
		ck_assert_msg(wait_files(starts, pass + 2), "pass %d: %d helpers started, want %d",
			      pass, count_files(starts), pass + 2);
	}
	cpmsync_previewer_free(p2);
	free(data);
	test_rm_rf(dir);
}
END_TEST

/* The pid of this process's only child (the spare), 0 if none or more. */
static pid_t only_child(void)
{
	char path[64], buf[256];
	ssize_t n;
	int fd;
	pid_t pid = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)gettid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%d %*d", &pid) != 1 || strchr(buf, ' ') != strrchr(buf, ' '))
		return 0; /* "PID " is one child: one space, at the end */
	return pid;
}

/* The "Seccomp:" mode of each of pid's threads: the main thread's in
 * *main_mode, the lowest in *min_mode (a thread that ends while it is read
 * is left out); returns the number of threads, -1 if pid is gone. */
static int seccomp_modes(pid_t pid, int *main_mode, int *min_mode)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	*main_mode = *min_mode = -1;
	while ((e = readdir(d))) {
		char status[sizeof(path) + 300], line[256];
		int mode = -1;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(status, sizeof(status), "%s/%s/status", path, e->d_name);
		f = fopen(status, "re");
		if (!f) {
			n = -1;
			break;
		}
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Seccomp: %d", &mode) == 1)
				break;
		fclose(f);
		/* No Seccomp line: the thread ended between the open and the
		 * read (a worker finishing), not a thread outside the sandbox. */
		if (mode < 0)
			continue;
		if (atoi(e->d_name) == (int)pid)
			*main_mode = mode;
		if (*min_mode < 0 || mode < *min_mode)
			*min_mode = mode;
		n++;
	}
	closedir(d);
	return n;
}

/*
 * The spare warms up while it waits (libvips' worker threads exist before
 * any request), and the seccomp filter covers those threads too: while
 * the helper decodes a 12-megapixel JPEG, every sample of its threads
 * taken after its main thread is filtered shows all of them filtered.
 */
START_TEST(test_helper_sandbox_threads)
{
	char gen[PATH_MAX + 64], img[64], arg[80], *slash;
	struct spare_result s = { 0 };
	int status, threads = 0, filtered = 0, unfiltered = 0, mode_main, mode_min;
	size_t len;
	char *data;
	pid_t pid;

	/* <B>/cpm-preview -> <B>/tests/tools/image-gen */
	snprintf(gen, sizeof(gen), "%s", helper);
	slash = strrchr(gen, '/');
	ck_assert_ptr_nonnull(slash);
	snprintf(slash, sizeof(gen) - (size_t)(slash - gen), "/tests/tools/image-gen");
	ck_assert_msg(access(gen, X_OK) == 0, "no %s (make tests)", gen);
	snprintf(img, sizeof(img), "/tmp/test-preview-big-%d.jpg", (int)getpid());
	snprintf(arg, sizeof(arg), "%s[Q=90]", img);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl(gen, "image-gen", "4000", "3000", arg, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "image-gen: status %d",
		      status);
	{
		int fd = open(img, O_RDONLY | O_CLOEXEC);

		ck_assert_int_ge(fd, 0);
		data = NULL;
		ck_assert_int_eq(cpmsync_read_all(fd, 64 << 20, &data, &len), 0);
		close(fd);
		unlink(img);
	}

	/* a first preview, so that a spare is started after it */
	run_image("good.jpg", "image/jpeg", 160, 120, &s.res);
	ck_assert_msg(s.res.r == 0, "%d %s", s.res.r, s.res.reason);
	free(s.res.data);
	for (int i = 0; i < 1000 && (!(pid = only_child()) || threads < 2); i++) {
		cpmsync_loop_iterate(loop, 10);
		threads = pid ? seccomp_modes(pid, &mode_main, &mode_min) : 0;
	}
	ck_assert_msg(pid > 0 && threads >= 2,
		      "the spare has %d threads before its request, want its workers too", threads);
	ck_assert_int_ge(seccomp_modes(pid, &mode_main, &mode_min), 2);
	ck_assert_int_eq(mode_main, 0); /* not yet: no request */

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(
		cpmsync_preview_image(pv, data, len, "image/jpeg", 160, 120, result_cb, &s.res), 0);
	while (!s.res.done) {
		cpmsync_loop_iterate(loop, 1);
		if (seccomp_modes(pid, &mode_main, &mode_min) > 0 && mode_main == 2) {
			filtered++;
			unfiltered += mode_min != 2;
		}
	}
	ck_assert_msg(s.res.r == 0, "%d %s", s.res.r, s.res.reason);
	free(s.res.data);
	free(data);
	ck_assert_msg(filtered > 0, "the helper was never seen at work");
	ck_assert_msg(unfiltered == 0, "%d of %d samples show a thread outside the sandbox",
		      unfiltered, filtered);
}
END_TEST

/* ------------------------------------------------------------------ */
/* cpmsync_preview(): stored messages, the cache, no server */

static struct cpmsync_previewer *spv;

static void store_setup(void)
{
	setup();
	find_paths();
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_previewer_new(loop, cs, helper, &spv), 0);
}

static void store_teardown(void)
{
	spv = cpmsync_previewer_free(spv);
	loop = cpmsync_loop_free(loop);
	teardown();
}

/* A message with a text part (QP, ISO-8859-1), good.jpg, good.png and a
 * PDF; stored locally (its body is in the store). */
static int64_t store_mixed(void)
{
	size_t jlen, plen;
	char *jpg = read_data("good.jpg", &jlen), *png = read_data("good.png", &plen);
	char *j64, *p64, *msg;
	int64_t id = 0;
	int n;

	ck_assert_int_eq(base64_encode(jpg, jlen, &j64), 0);
	ck_assert_int_eq(base64_encode(png, plen, &p64), 0);
	n = asprintf(&msg,
		     "From: a@example.org\r\nSubject: pictures\r\nMIME-Version: 1.0\r\n"
		     "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
		     "--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		     "Voil=E0 les photos de l'=E9t=E9.=\r\n Bonne journ=E9e!\r\n\r\n"
		     "--b1\r\nContent-Type: image/jpeg; name=a.jpg\r\n"
		     "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n"
		     "--b1\r\nContent-Type: image/png\r\n"
		     "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n"
		     "--b1\r\nContent-Type: application/pdf\r\n\r\n%%PDF-1.4\r\n"
		     "--b1--\r\n",
		     j64, p64);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, (size_t)n, NULL, 0, &id), 0);
	free(jpg);
	free(png);
	free(j64);
	free(p64);
	free(msg);
	return id;
}

static void run_preview(struct cpmsync_previewer *p, int64_t id, const char *section,
			const char *format, uint32_t w, uint32_t h, struct result *res)
{
	memset(res, 0, sizeof(*res));
	ck_assert_int_eq(cpmsync_preview(p, NULL, id, section, format, w, h, result_cb, res), 0);
	ck_assert(!res->done);
	ck_assert(test_loop_run_until(loop, &res->done, 30000));
}

START_TEST(test_preview_stored)
{
	int64_t id = store_mixed();
	struct cpmsync_previewer *broken;
	struct result res;
	uint32_t w, h;

	run_preview(spv, id, "2", "image/jpeg", 160, 120, &res);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	image_size(res.data, res.len, "image/jpeg", &w, &h);
	ck_assert_uint_eq(w, 160);
	ck_assert_uint_eq(h, 120);
	free(res.data);
	run_preview(spv, id, "3", "image/png", 75, 75, &res);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	image_size(res.data, res.len, "image/png", &w, &h);
	ck_assert_uint_eq(w, 75);
	ck_assert_uint_eq(h, 50);
	free(res.data);
	run_preview(spv, id, "1", "text/plain", 20, 3, &res);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	{
		const char *want =
			"Voil\xc3\xa0 les photos de\nl'\xc3\xa9t\xc3\xa9. Bonne journ\xc3\xa9"
			"e\n!";

		ck_assert_uint_eq(res.len, strlen(want));
		ck_assert_int_eq(memcmp(res.data, want, res.len), 0);
	}
	free(res.data);

	/* Cached: a previewer whose helper does not exist answers the same. */
	ck_assert_int_eq(cpmsync_previewer_new(loop, cs, "/nonexistent", &broken), 0);
	run_preview(broken, id, "2", "image/jpeg", 160, 120, &res);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	image_size(res.data, res.len, "image/jpeg", &w, &h);
	ck_assert_uint_eq(w, 160);
	free(res.data);
	/* ... and a size not cached yet needs the helper */
	run_preview(broken, id, "2", "image/jpeg", 80, 60, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_SUPPORTED);
	ck_assert_str_eq(res.reason, "no image converter: /nonexistent: No such file or directory");
	cpmsync_previewer_free(broken);
	ck_assert_str_eq(
		test_store_text(store_from_public(cs),
				"SELECT group_concat(section || ' ' || format || ' ' || width"
				" || 'x' || height, ', ') FROM preview"),
		"1 text/plain 20x3, 2 image/jpeg 160x120, 3 image/png 75x75");
	/* dropped with the message */
	ck_assert_int_eq(store_exec(store_from_public(cs), "DELETE FROM message"), 0);
	ck_assert_str_eq(test_store_text(store_from_public(cs), "SELECT count(*) FROM preview"),
			 "0");
}
END_TEST

START_TEST(test_preview_refused)
{
	int64_t id = store_mixed(), plain = 0;
	struct result res;
	const char *text = "Subject: t\r\n\r\nJust text.\r\n";

	run_preview(spv, id, "4", "image/png", 160, 120, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_SUPPORTED);
	ck_assert_str_eq(res.reason, "application/pdf (no image/png preview of it)");
	run_preview(spv, id, "1", "image/jpeg", 160, 120, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_SUPPORTED);
	ck_assert_str_eq(res.reason, "text/plain (no image/jpeg preview of it)");
	run_preview(spv, id, "2", "text/plain", 160, 120, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_SUPPORTED);
	ck_assert_str_eq(res.reason, "image/jpeg (no text/plain preview of it)");
	run_preview(spv, id, "", "image/jpeg", 160, 120, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_SUPPORTED);
	ck_assert_str_eq(res.reason, "multipart/mixed (no image/jpeg preview of it)");
	run_preview(spv, id, "9", "image/jpeg", 160, 120, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(res.reason, "section: the message has no part '9'");
	run_preview(spv, id + 100, "1", "image/jpeg", 160, 120, &res);
	ck_assert_int_eq(res.r, -CPMSYNC_E_NOT_FOUND);
	/* the body of a single-part message: section "" (or "1") */
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", text, strlen(text), NULL, 0, &plain),
			 0);
	run_preview(spv, plain, "", "text/plain", 80, 5, &res);
	ck_assert_int_eq(res.r, 0);
	ck_assert_int_eq(memcmp(res.data, "Just text.", res.len), 0);
	free(res.data);
	/* bad arguments are refused at once */
	ck_assert_int_eq(cpmsync_preview(spv, NULL, id, "1", "image/gif", 1, 1, result_cb, &res),
			 -EINVAL);
	ck_assert_int_eq(cpmsync_preview(spv, NULL, id, "1", "text/plain", 0, 1, result_cb, &res),
			 -EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Through a session whose server offers CONVERT (a scripted peer: no
 * real server does) */

static int pw_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup("pw");
	return *ret ? 0 : -ENOMEM;
}

static void session_changed(struct cpmsync_session *s, void *userdata)
{
	if (cpmsync_session_get_state(s) == CPMSYNC_SESSION_IDLE)
		*(bool *)userdata = true;
}

static int id_cb(const struct cpmsync_message_info *m, void *userdata)
{
	if (m->uid == 5)
		*(int64_t *)userdata = m->id;
	return 0;
}

START_TEST(test_preview_convert)
{
	char gif_literal[8192], header_literal[256], *gif, *gif64;
	struct cpmsync_session_callbacks cbs = { .changed = session_changed };
	struct cpmsync_account account = {
		.name = "a",
		.host = "127.0.0.1",
		.security = CPMSYNC_SECURITY_NONE,
		.user = "alice",
		.sync_bodies = CPMSYNC_SYNC_BODIES_NONE,
		.password_cb = pw_cb,
		.connect_timeout_ms = 5000,
		.command_timeout_ms = 5000,
	};
	const char *header = "Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n";
	struct cpmsync_session *session = NULL;
	struct script_peer peer;
	struct result res;
	bool idle = false;
	int64_t id = 0, folder_id = 0;
	size_t glen;
	uint32_t w, h;

	gif = read_data("good.gif", &glen);
	ck_assert_int_eq(base64_encode(gif, glen, &gif64), 0);
	snprintf(header_literal, sizeof(header_literal),
		 "* 1 FETCH (UID 5 BODY[2.MIME] {%zu}\r\n%s)\r\na10 OK fetched\r\n", strlen(header),
		 header);
	ck_assert_int_lt(snprintf(gif_literal, sizeof(gif_literal),
				  "* 1 FETCH (UID 5 BODY[2] {%zu}\r\n%s)\r\na12 OK fetched\r\n",
				  strlen(gif64), gif64),
			 (int)sizeof(gif_literal));
	{
		const struct script_step script[] = {
			{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 BINARY CONVERT] hi\r\n" },
			{ SCRIPT_EXPECT, "a1 LOGIN alice" },
			{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 BINARY CONVERT] in\r\n" },
			{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
			{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na2 OK list\r\n" },
			{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
			{ SCRIPT_SEND,
			  "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 6] n\r\n"
			  "a3 OK [READ-WRITE] selected\r\n" },
			{ SCRIPT_EXPECT, "a4 UID FETCH 1:* " },
			{ SCRIPT_SEND, "* 1 FETCH (UID 5 FLAGS ())\r\na4 OK fetched\r\n" },
			/* the first preview: converted by the server */
			{ SCRIPT_EXPECT, "a5 EXAMINE INBOX" },
			{ SCRIPT_SEND, "a5 OK [READ-ONLY] examined\r\n" },
			{ SCRIPT_EXPECT,
			  "a6 UID CONVERT 5 (\"image/jpeg\" (\"pix-x\" \"160\" \"pix-y\" "
			  "\"120\")) BINARY[2]" },
			{ SCRIPT_SEND, "* 1 CONVERTED (TAG \"a6\") (UID 5 BINARY[2] ~{9}\r\n"
				       "\xff\xd8\xffSERVER)\r\na6 OK converted\r\n" },
			/* the second: from the cache, nothing sent; the third:
			 * the server cannot, so fetched and converted here */
			{ SCRIPT_EXPECT, "a7 EXAMINE INBOX" },
			{ SCRIPT_SEND, "a7 OK [READ-ONLY] examined\r\n" },
			{ SCRIPT_EXPECT,
			  "a8 UID CONVERT 5 (\"image/jpeg\" (\"pix-x\" \"80\" \"pix-y\" "
			  "\"60\")) BINARY[2]" },
			{ SCRIPT_SEND, "* 1 CONVERTED (TAG \"a8\") (UID 5 BINARY[2] NIL)\r\n"
				       "a8 OK converted\r\n" },
			{ SCRIPT_EXPECT, "a9 EXAMINE INBOX" },
			{ SCRIPT_SEND, "a9 OK [READ-ONLY] examined\r\n" },
			{ SCRIPT_EXPECT, "a10 UID FETCH 5 (BODY.PEEK[2.MIME])" },
			{ SCRIPT_SEND, header_literal },
			{ SCRIPT_EXPECT, "a11 EXAMINE INBOX" },
			{ SCRIPT_SEND, "a11 OK [READ-ONLY] examined\r\n" },
			{ SCRIPT_EXPECT, "a12 UID FETCH 5 (BODY.PEEK[2])" },
			{ SCRIPT_SEND, gif_literal },
			/* text: never CONVERT, always fetched and made here */
			{ SCRIPT_EXPECT, "a13 EXAMINE INBOX" },
			{ SCRIPT_SEND, "a13 OK [READ-ONLY] examined\r\n" },
			{ SCRIPT_EXPECT, "a14 UID FETCH 5 (BODY.PEEK[1.MIME])" },
			{ SCRIPT_SEND, "* 1 FETCH (UID 5 BODY[1.MIME] {43}\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n\r\n)\r\n"
				       "a14 OK fetched\r\n" },
			{ SCRIPT_EXPECT, "a15 EXAMINE INBOX" },
			{ SCRIPT_SEND, "a15 OK [READ-ONLY] examined\r\n" },
			{ SCRIPT_EXPECT, "a16 UID FETCH 5 (BODY.PEEK[1])" },
			{ SCRIPT_SEND, "* 1 FETCH (UID 5 BODY[1] {13}\r\nHello there\r\n)\r\n"
				       "a16 OK fetched\r\n" },
			{ SCRIPT_STALL, NULL },
			{ SCRIPT_END, NULL },
		};
		uint16_t port;

		ck_assert_int_eq(script_peer_listen(script, &peer, &port), 0);
		account.port = port;
		ck_assert_int_eq(
			cpmsync_session_new(loop, cs, &account, NULL, &cbs, &idle, &session), 0);
		ck_assert(test_loop_run_until(loop, &idle, 10000));
	}
	ck_assert(cpmsync_session_has_capability(session, "CONVERT"));
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "INBOX", &folder_id), 0);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, folder_id, 0, 0, id_cb, &id), 0);
	ck_assert_int_gt(id, 0);

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(
		cpmsync_preview(spv, session, id, "2", "image/jpeg", 160, 120, result_cb, &res), 0);
	ck_assert(test_loop_run_until(loop, &res.done, 10000));
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.len, 9);
	ck_assert_int_eq(memcmp(res.data, "\xff\xd8\xffSERVER", 9), 0);
	free(res.data);

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(
		cpmsync_preview(spv, session, id, "2", "image/jpeg", 160, 120, result_cb, &res), 0);
	ck_assert(test_loop_run_until(loop, &res.done, 10000));
	ck_assert_int_eq(res.r, 0);
	ck_assert_int_eq(memcmp(res.data, "\xff\xd8\xffSERVER", 9), 0);
	free(res.data);

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(
		cpmsync_preview(spv, session, id, "2", "image/jpeg", 80, 60, result_cb, &res), 0);
	ck_assert(test_loop_run_until(loop, &res.done, 20000));
	ck_assert_msg(res.r == 0, "%s", res.reason);
	image_size(res.data, res.len, "image/jpeg", &w, &h);
	ck_assert_uint_eq(w, 64); /* good.gif is 64x48: never enlarged */
	ck_assert_uint_eq(h, 48);
	free(res.data);

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(
		cpmsync_preview(spv, session, id, "1", "text/plain", 40, 2, result_cb, &res), 0);
	ck_assert(test_loop_run_until(loop, &res.done, 10000));
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.len, 11);
	ck_assert_int_eq(memcmp(res.data, "Hello there", 11), 0);
	free(res.data);

	cpmsync_session_free(session);
	ck_assert_int_eq(script_peer_wait(&peer), 0);
	free(gif);
	free(gif64);
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

	tc = tcase_create("part");
	tcase_add_test(tc, test_part_info);
	tcase_add_test(tc, test_part_decode);
	tcase_add_test(tc, test_part_decode_base64_long);
	tcase_add_test(tc, test_text_excerpt);
	suite_add_tcase(s, tc);

	tc = tcase_create("helper");
	tcase_add_checked_fixture(tc, helper_setup, helper_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_helper_images);
	tcase_add_test(tc, test_helper_hostile);
	tcase_add_test(tc, test_helper_failures);
	tcase_add_test(tc, test_helper_spare);
	tcase_add_test(tc, test_helper_sandbox_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("stored");
	tcase_add_checked_fixture(tc, store_setup, store_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_preview_stored);
	tcase_add_test(tc, test_preview_refused);
	tcase_add_test(tc, test_preview_convert);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cache_keys);
	tcase_add_test(tc, test_cache_dropped_with_message);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(preview_suite)
