/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * image-gen: writes a test image with libvips, for the preview tests and
 * tests/bench/bench-preview.sh (large images are made when needed rather
 * than committed).
 *
 *   image-gen WIDTH HEIGHT FILE      FILE's suffix picks the format
 *                                    (.jpg .png .webp .gif; options as
 *                                    libvips takes them: "x.jpg[Q=90]")
 *
 * The picture is a colour gradient with a diagonal stripe pattern, so that
 * it compresses like a photograph more than a flat fill would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <vips/vips.h>

int main(int argc, char **argv)
{
	VipsImage *x = NULL, *r = NULL, *g = NULL, *rgb = NULL, *out = NULL;
	VipsImage *bands[3];
	char *end;
	long w, h;
	int ret = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: image-gen WIDTH HEIGHT FILE\n");
		return 2;
	}
	w = strtol(argv[1], &end, 10);
	if (*end || w < 1 || w > 100000)
		return fprintf(stderr, "image-gen: bad width\n"), 2;
	h = strtol(argv[2], &end, 10);
	if (*end || h < 1 || h > 100000)
		return fprintf(stderr, "image-gen: bad height\n"), 2;
	if (VIPS_INIT(argv[0]))
		vips_error_exit(NULL);
	/* r = x * 255 / w, g = y * 255 / h, b = ((x + y) / 8) % 2 * 255 */
	if (vips_xyz(&x, (int)w, (int)h, NULL) || vips_extract_band(x, &r, 0, NULL) ||
	    vips_extract_band(x, &g, 1, NULL))
		goto out;
	{
		VipsImage *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL, *t5 = NULL;

		if (vips_linear1(r, &t1, 255.0 / (double)w, 0, NULL) ||
		    vips_linear1(g, &t2, 255.0 / (double)h, 0, NULL) || vips_add(r, g, &t3, NULL) ||
		    vips_remainder_const1(t3, &t4, 16, NULL) ||
		    vips_moreeq_const1(t4, &t5, 8, NULL))
			goto out;
		bands[0] = t1;
		bands[1] = t2;
		bands[2] = t5;
		if (vips_bandjoin(bands, &rgb, 3, NULL) ||
		    vips_cast(rgb, &out, VIPS_FORMAT_UCHAR, NULL))
			goto out;
		vips_image_set_int(out, "interpretation", VIPS_INTERPRETATION_sRGB);
		out->Type = VIPS_INTERPRETATION_sRGB;
		g_object_unref(t1);
		g_object_unref(t2);
		g_object_unref(t3);
		g_object_unref(t4);
		g_object_unref(t5);
	}
	if (vips_image_write_to_file(out, argv[3], NULL))
		goto out;
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "image-gen: %s", vips_error_buffer());
	return ret;
}
