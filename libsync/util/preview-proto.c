/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The preview helper's wire format (cpmsync/preview.h).  One header layout
 * for both directions:
 *
 *   0  magic "CPMP"           4  version (u16)   6  kind (u16: 1 request, 2 response)
 *   8  format | status (u32) 12  width (u32)    16  height (u32)
 *  20  input_size | length (u64)                28  reserved, zero (u32)
 *
 * Self-contained on purpose: the helper links this file and nothing else
 * of libcpmsync.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/preview.h>

enum { KIND_REQUEST = 1, KIND_RESPONSE = 2 };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_header(uint8_t *out, uint16_t kind, uint32_t a, uint32_t w, uint32_t h,
		       uint64_t size)
{
	memset(out, 0, CPMSYNC_PREVIEW_HEADER_SIZE);
	memcpy(out, "CPMP", 4);
	put16(out + 4, CPMSYNC_PREVIEW_VERSION);
	put16(out + 6, kind);
	put32(out + 8, a);
	put32(out + 12, w);
	put32(out + 16, h);
	put64(out + 20, size);
}

static int check_header(const uint8_t *in, uint16_t kind)
{
	if (memcmp(in, "CPMP", 4) != 0 || get16(in + 4) != CPMSYNC_PREVIEW_VERSION ||
	    get16(in + 6) != kind)
		return -EPROTO;
	return get32(in + 28) == 0 ? 0 : -EINVAL;
}

static int request_check(const struct cpmsync_preview_request *r)
{
	if (r->format < CPMSYNC_PREVIEW_JPEG || r->format > CPMSYNC_PREVIEW_WEBP)
		return -EINVAL;
	if (r->width < 1 || r->width > CPMSYNC_PREVIEW_MAX_SIDE || r->height < 1 ||
	    r->height > CPMSYNC_PREVIEW_MAX_SIDE)
		return -EINVAL;
	if (r->input_size < 1 || r->input_size > CPMSYNC_PREVIEW_MAX_INPUT)
		return -EINVAL;
	return 0;
}

static int response_check(const struct cpmsync_preview_response *r)
{
	if (r->status >= _CPMSYNC_PREVIEW_STATUS_MAX)
		return -EINVAL;
	if (r->status == CPMSYNC_PREVIEW_OK) {
		if (r->width < 1 || r->width > CPMSYNC_PREVIEW_MAX_SIDE || r->height < 1 ||
		    r->height > CPMSYNC_PREVIEW_MAX_SIDE || r->length < 1 ||
		    r->length > CPMSYNC_PREVIEW_MAX_OUTPUT)
			return -EINVAL;
	} else if (r->width || r->height || r->length > CPMSYNC_PREVIEW_MAX_TEXT) {
		return -EINVAL;
	}
	return 0;
}

int cpmsync_preview_request_encode(const struct cpmsync_preview_request *req, uint8_t *out)
{
	int r;

	if (!req || !out)
		return -EINVAL;
	r = request_check(req);
	if (r < 0)
		return r;
	put_header(out, KIND_REQUEST, req->format, req->width, req->height, req->input_size);
	return 0;
}

int cpmsync_preview_request_decode(const uint8_t *in, struct cpmsync_preview_request *ret)
{
	struct cpmsync_preview_request req;
	int r;

	if (!in || !ret)
		return -EINVAL;
	r = check_header(in, KIND_REQUEST);
	if (r < 0)
		return r;
	req = (struct cpmsync_preview_request){
		.format = get32(in + 8),
		.width = get32(in + 12),
		.height = get32(in + 16),
		.input_size = get64(in + 20),
	};
	r = request_check(&req);
	if (r < 0)
		return r;
	*ret = req;
	return 0;
}

int cpmsync_preview_response_encode(const struct cpmsync_preview_response *resp, uint8_t *out)
{
	int r;

	if (!resp || !out)
		return -EINVAL;
	r = response_check(resp);
	if (r < 0)
		return r;
	put_header(out, KIND_RESPONSE, resp->status, resp->width, resp->height, resp->length);
	return 0;
}

int cpmsync_preview_response_decode(const uint8_t *in, struct cpmsync_preview_response *ret)
{
	struct cpmsync_preview_response resp;
	int r;

	if (!in || !ret)
		return -EINVAL;
	r = check_header(in, KIND_RESPONSE);
	if (r < 0)
		return r;
	resp = (struct cpmsync_preview_response){
		.status = get32(in + 8),
		.width = get32(in + 12),
		.height = get32(in + 16),
		.length = get64(in + 20),
	};
	r = response_check(&resp);
	if (r < 0)
		return r;
	*ret = resp;
	return 0;
}

uint32_t cpmsync_preview_format_from_type(const char *media_type)
{
	static const struct {
		const char *type;
		uint32_t format;
	} map[] = {
		{ "image/jpeg", CPMSYNC_PREVIEW_JPEG },
		{ "image/png", CPMSYNC_PREVIEW_PNG },
		{ "image/webp", CPMSYNC_PREVIEW_WEBP },
	};

	for (size_t i = 0; media_type && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(media_type, map[i].type) == 0)
			return map[i].format;
	return 0;
}
