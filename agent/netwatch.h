/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * netwatch: tells the daemon when what its connections run on may have
 * changed under them, so that push does not stay silently dead for the
 * minutes a half-open connection takes to be found (peers.md's first
 * complaint: "push silently stops after suspend or a network change"):
 *   - the network: an address or a default route came or went (rtnetlink,
 *     NETLINK_ROUTE multicast groups; no privilege needed);
 *   - a resume from suspend: a CLOCK_REALTIME timerfd armed with
 *     TFD_TIMER_CANCEL_ON_SET, which the kernel cancels on resume as on a
 *     clock step; a resume is told from a step by CLOCK_BOOTTIME having
 *     gained on CLOCK_MONOTONIC (which stops while the host sleeps).
 * What is only noise is left out: link-local and host-scope addresses, an
 * address still tentative (its duplicate check not done), a route that is
 * not a default route of the main table, and an address or default route
 * already seen (IPv6 router advertisements announce the same ones again
 * every few minutes; the first announcement after the start counts once,
 * as nothing is dumped at the start).  A burst (an interface coming up
 * sends several messages) is one callback, NETWATCH_SETTLE_MS after its
 * first message.
 */

#include <stddef.h>
#include <stdint.h>

#define NETWATCH_SETTLE_MS 500u
/* Addresses and default routes remembered; past that, every new one counts. */
#define NETWATCH_MAX_KNOWN 256

struct cpmsync_loop;
struct netwatch;

/* why: "the network changed (...)" or "the system resumed after N s asleep". */
typedef void (*netwatch_cb_t)(const char *why, void *userdata);

/*
 * Starts watching; cb is called from the loop.  Returns 0, or -errno when
 * neither the network nor the clock can be watched (one of the two alone
 * is enough: the other is then left out, said in *ret_warning, to be
 * freed, which is NULL otherwise).
 */
int netwatch_new(struct cpmsync_loop *loop, netwatch_cb_t cb, void *userdata, struct netwatch **ret,
		 char **ret_warning);
/* Accepts NULL; returns NULL. */
struct netwatch *netwatch_free(struct netwatch *nw);

/*
 * What the socket does with what it receives, for tests: reads buf as
 * netlink messages (len bytes), updates the known addresses and routes,
 * and returns what changed ("the network changed (...)"), or NULL for
 * nothing that matters; for a change the callback is then due within
 * NETWATCH_SETTLE_MS (once for a burst).
 */
const char *netwatch_feed(struct netwatch *nw, const void *buf, size_t len);
/*
 * What the clock's cancel does, for tests: the host slept slept_ms more
 * than at the last check.  Returns "the system resumed after N s asleep"
 * (the callback then due as above), or NULL below a second (a step of the
 * wall clock: connections do not care).
 */
const char *netwatch_clock_jumped(struct netwatch *nw, int64_t slept_ms);
