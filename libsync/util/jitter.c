/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/jitter.h"

/*
 * random() was never seeded: every cpm-syncd drew the same delays (757,
 * 2302, 3351 ms ... in seven daemons a tester ran), so clients cut off
 * together came back together, what the jitter is for.  getrandom() never
 * blocks here (GRND_NONBLOCK; the pool is ready long after boot); if it
 * cannot answer, random() seeded from the clock and the pid does.
 */
unsigned jitter_quarter(unsigned delay)
{
	static int seeded;
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		if (!seeded) {
			srandom((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
			seeded = 1;
		}
		r = (uint32_t)random();
	}
	return delay - delay / 4 + (unsigned)(r % (delay / 2 + 1));
}
