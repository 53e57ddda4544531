/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * image-size FILE: prints "jpeg WxH", "png WxH" or "webp WxH" from the
 * file's own header (a JPEG's SOF, a PNG's IHDR, a WebP's VP8/VP8L/VP8X
 * chunk), or "unknown" and exits 1.  Independent of libvips on purpose:
 * the preview tests check libvips' output with it.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned char d[1 << 20];

static uint32_t be16(const unsigned char *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t le24(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

int main(int argc, char **argv)
{
	FILE *f;
	size_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: image-size FILE\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	n = fread(d, 1, sizeof(d), f);
	fclose(f);
	if (n >= 24 && memcmp(d, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16) == 0) {
		printf("png %ux%u\n", be16(d + 18) | be16(d + 16) << 16,
		       be16(d + 22) | be16(d + 20) << 16);
		return 0;
	}
	if (n >= 30 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) {
		if (memcmp(d + 12, "VP8 ", 4) == 0) {
			printf("webp %ux%u\n", (d[26] | d[27] << 8) & 0x3fff,
			       (d[28] | d[29] << 8) & 0x3fff);
			return 0;
		}
		if (memcmp(d + 12, "VP8L", 4) == 0) {
			uint32_t b = (uint32_t)d[21] | (uint32_t)d[22] << 8 |
				     (uint32_t)d[23] << 16 | (uint32_t)d[24] << 24;

			printf("webp %ux%u\n", (b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1);
			return 0;
		}
		if (memcmp(d + 12, "VP8X", 4) == 0) {
			printf("webp %ux%u\n", le24(d + 24) + 1, le24(d + 27) + 1);
			return 0;
		}
	}
	if (n >= 4 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) {
		for (size_t i = 2; i + 9 < n && d[i] == 0xff;) {
			if (d[i + 1] >= 0xc0 && d[i + 1] <= 0xc2) {
				printf("jpeg %ux%u\n", be16(d + i + 7), be16(d + i + 5));
				return 0;
			}
			i += 2 + be16(d + i + 2);
		}
	}
	printf("unknown\n");
	return 1;
}
