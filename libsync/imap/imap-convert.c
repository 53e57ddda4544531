/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CONVERT (RFC 5259) commands and responses (see imap-convert.h).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-client.h"
#include "imap/imap-convert.h"

static bool media_type_valid(const char *t)
{
	const char *slash = strchr(t, '/');

	if (!slash || slash == t || !slash[1] || strchr(slash + 1, '/') || strlen(t) > 127)
		return false;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || strchr("!#$&^_.+-/", *t)))
			return false;
	return true;
}

/* A part number: digits separated by single dots. */
static bool part_valid(const char *s)
{
	bool digit = false;

	if (strlen(s) > 128)
		return false;
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9') {
			digit = true;
		} else if (*s == '.' && digit) {
			digit = false;
		} else {
			return false;
		}
	}
	return digit;
}

int imap_cmd_add_convert(struct imap_cmd *cmd, uint32_t uid, const char *type, uint32_t width,
			 uint32_t height, const char *section)
{
	if (!cmd || uid == 0 || !type || !media_type_valid(type) || !section || width == 0 ||
	    height == 0)
		return -EINVAL;
	if (!*section)
		section = "1";
	if (!part_valid(section))
		return -EINVAL;
	return imap_cmd_addf(
		cmd, "UID CONVERT %u (\"%s\" (\"pix-x\" \"%u\" \"pix-y\" \"%u\")) BINARY[%s]", uid,
		type, width, height, section);
}

bool imap_convert_is_part(const char *name, const char *item)
{
	return name && item && strcasecmp(name, "CONVERTED") == 0 &&
	       strncasecmp(item, "BINARY[", 7) == 0;
}
