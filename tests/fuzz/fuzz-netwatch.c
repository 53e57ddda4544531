/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: arbitrary bytes as what agent/netwatch.c's rtnetlink socket
 * receives (one recv()'s worth of messages).  The kernel is the only
 * sender, but its messages are read with lengths taken from them: none may
 * lead a read past the buffer, and what comes out is a change or nothing.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/loop.h>

#include "netwatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void changed_cb(const char *why, void *userdata)
{
	(void)why;
	(void)userdata;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cpmsync_loop *loop;
	static struct netwatch *nw;
	uint32_t *buf;
	const char *why;

	if (!nw) {
		char *warning = NULL;

		if (cpmsync_loop_new(&loop) < 0 ||
		    netwatch_new(loop, changed_cb, NULL, &nw, &warning) < 0)
			abort();
		free(warning);
	}
	/* Exactly size bytes (no slack after them), aligned as recv()'s are. */
	buf = malloc(size ? size : 1);
	assert(buf);
	memcpy(buf, data, size);
	why = netwatch_feed(nw, buf, size);
	assert(!why || strncmp(why, "the network changed (", 21) == 0);
	free(buf);
	return 0;
}
