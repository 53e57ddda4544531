/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: cpmsync_message_section().  The first line of the input is
 * the section spec, the rest the message.  Whatever the input, the answer
 * is 0, -EINVAL, -CPMSYNC_E_NOT_FOUND or -CPMSYNC_E_PROTOCOL, and a range
 * inside the message; a few fixed sections are tried too, with the ranges
 * checked against each other (HEADER + TEXT cover the message, N.MIME ends
 * where N starts).  The message is copied to an exactly sized buffer so
 * that the replay driver's ASan build catches any read beyond it.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>
#include <cpmsync/message.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int section(const char *msg, size_t len, const char *spec, size_t *off, size_t *n)
{
	int r = cpmsync_message_section(msg, len, spec, off, n);

	assert(r == 0 || r == -EINVAL || r == -CPMSYNC_E_NOT_FOUND || r == -CPMSYNC_E_PROTOCOL);
	if (r == 0) {
		assert(*off <= len);
		assert(*n <= len - *off);
	}
	return r;
}

static const char *const fixed[] = {
	"1", "2", "1.1", "1.2", "2.1", "1.1.1", "3", "2.2.1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t spec_len = nl ? (size_t)(nl - data) : size;
	size_t len = nl ? size - spec_len - 1 : 0;
	char *spec, *msg;
	size_t off, n, off2, n2;
	int r;

	spec = malloc(spec_len + 1);
	msg = malloc(len ? len : 1);
	if (!spec || !msg)
		abort();
	memcpy(spec, data, spec_len);
	if (spec_len && spec[spec_len - 1] == '\r')
		spec_len--;
	spec[spec_len] = '\0';
	if (len)
		memcpy(msg, nl + 1, len);

	section(msg, len, spec, &off, &n);

	r = section(msg, len, "", &off, &n);
	assert(r == 0 && off == 0 && n == len);
	r = section(msg, len, "HEADER", &off, &n);
	assert(r == 0 && off == 0);
	r = section(msg, len, "TEXT", &off2, &n2);
	assert(r == 0 && off2 == n && off2 + n2 == len);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		char mime[32];

		r = section(msg, len, fixed[i], &off, &n);
		strcpy(mime, fixed[i]);
		strcat(mime, ".MIME");
		assert(section(msg, len, mime, &off2, &n2) == r);
		if (r == 0)
			assert(off2 + n2 == off);
		strcpy(mime, fixed[i]);
		strcat(mime, ".HEADER");
		if (section(msg, len, mime, &off2, &n2) == 0) {
			strcpy(mime, fixed[i]);
			strcat(mime, ".TEXT");
			assert(section(msg, len, mime, &off, &n) == 0);
			assert(off2 + n2 == off);
		}
	}
	free(spec);
	free(msg);
	return 0;
}
