/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * netwatch: network changes (rtnetlink) and resumes from suspend
 * (TFD_TIMER_CANCEL_ON_SET) for the daemon; see netwatch.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <cpmsync/loop.h>

#include "netwatch.h"

/* An address or default route seen: family, interface, the address or
 * gateway (zeros for a default route without one). */
struct known {
	uint8_t family;
	uint8_t is_route;
	int32_t ifindex;
	uint8_t bytes[16];
};

struct netwatch {
	struct cpmsync_loop *loop;
	netwatch_cb_t cb;
	void *userdata;
	int nl_fd;
	struct cpmsync_loop_source *nl_src;
	int clock_fd;
	struct cpmsync_loop_source *clock_src;
	int64_t asleep_ms; /* CLOCK_BOOTTIME - CLOCK_MONOTONIC at the last check */
	struct cpmsync_loop_source *settle;
	char why[128];	    /* the first change of the burst the settle timer ends */
	char clock_why[96]; /* netwatch_clock_jumped()'s answer */
	struct known known[NETWATCH_MAX_KNOWN];
	size_t n_known;
};

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void changed(struct netwatch *nw, const char *why);

/* ------------------------------------------------------------------ */
/* What a message changed */

static bool known_eq(const struct known *a, const struct known *b)
{
	return a->family == b->family && a->is_route == b->is_route && a->ifindex == b->ifindex &&
	       memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

static struct known *known_find(struct netwatch *nw, const struct known *k)
{
	for (size_t i = 0; i < nw->n_known; i++)
		if (known_eq(&nw->known[i], k))
			return &nw->known[i];
	return NULL;
}

/* A new one: whether it was not known (then it is, while there is room). */
static bool known_add(struct netwatch *nw, const struct known *k)
{
	if (known_find(nw, k))
		return false;
	if (nw->n_known < NETWATCH_MAX_KNOWN)
		nw->known[nw->n_known++] = *k;
	return true;
}

static void known_remove(struct netwatch *nw, const struct known *k)
{
	struct known *e = known_find(nw, k);

	if (e)
		*e = nw->known[--nw->n_known];
}

/* Copies attribute a's payload (at most 16 bytes) into bytes. */
static void attr_bytes(const struct rtattr *a, uint8_t bytes[16])
{
	size_t n = RTA_PAYLOAD(a);

	memcpy(bytes, RTA_DATA(a), n < 16 ? n : 16);
}

/* RTM_NEWADDR / RTM_DELADDR: an address that a connection may use. */
static const char *address_change(struct netwatch *nw, const struct nlmsghdr *h)
{
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifa));
	const struct rtattr *local = NULL, *address = NULL;
	uint32_t flags;
	struct known k = { 0 };

	if (len < 0)
		return NULL;
	flags = ifa->ifa_flags;
	for (const struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFA_LOCAL)
			local = a;
		else if (a->rta_type == IFA_ADDRESS)
			address = a;
		else if (a->rta_type == IFA_FLAGS && RTA_PAYLOAD(a) >= sizeof(uint32_t))
			memcpy(&flags, RTA_DATA(a), sizeof(flags));
	}
	/* Link-local and host addresses carry no connection to a server. */
	if (ifa->ifa_scope >= RT_SCOPE_LINK)
		return NULL;
	k.family = ifa->ifa_family;
	k.ifindex = (int32_t)ifa->ifa_index;
	if (local || address)
		attr_bytes(local ? local : address, k.bytes);
	if (h->nlmsg_type == RTM_DELADDR) {
		if (!known_find(nw, &k) && (flags & IFA_F_TENTATIVE))
			return NULL; /* never usable, never known */
		known_remove(nw, &k);
		return "the network changed (an address was removed)";
	}
	if (flags & IFA_F_TENTATIVE)
		return NULL; /* a NEWADDR without it follows once usable */
	return known_add(nw, &k) ? "the network changed (an address was added)" : NULL;
}

/* RTM_NEWROUTE / RTM_DELROUTE: a default route of the main table. */
static const char *route_change(struct netwatch *nw, const struct nlmsghdr *h)
{
	const struct rtmsg *rt = NLMSG_DATA(h);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*rt));
	uint32_t table;
	struct known k = { .is_route = 1 };

	if (len < 0)
		return NULL;
	table = rt->rtm_table;
	k.family = rt->rtm_family;
	for (const struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= sizeof(uint32_t))
			memcpy(&table, RTA_DATA(a), sizeof(table));
		else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int32_t))
			memcpy(&k.ifindex, RTA_DATA(a), sizeof(k.ifindex));
		else if (a->rta_type == RTA_GATEWAY)
			attr_bytes(a, k.bytes);
	}
	if (rt->rtm_dst_len != 0 || table != RT_TABLE_MAIN || rt->rtm_type != RTN_UNICAST)
		return NULL;
	if (h->nlmsg_type == RTM_DELROUTE) {
		known_remove(nw, &k);
		return "the network changed (a default route was removed)";
	}
	return known_add(nw, &k) ? "the network changed (a default route was added)" : NULL;
}

static const char *netwatch_process(struct netwatch *nw, const void *buf, size_t len)
{
	const char *why = NULL;
	/* int: NLMSG_NEXT() takes off the aligned length, which may pass the
	 * end of a short last message; NLMSG_OK() then sees it below zero. */
	int left = len > INT_MAX ? INT_MAX : (int)len;

	for (const struct nlmsghdr *h = buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
		const char *w = NULL;

		switch (h->nlmsg_type) {
		case RTM_NEWADDR:
		case RTM_DELADDR:
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
				w = address_change(nw, h);
			break;
		case RTM_NEWROUTE:
		case RTM_DELROUTE:
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct rtmsg)))
				w = route_change(nw, h);
			break;
		default:
			break;
		}
		if (w && !why)
			why = w; /* the first of a burst names it; the rest update the sets */
	}
	return why;
}

/* ------------------------------------------------------------------ */
/* The loop side */

static void settle_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct netwatch *nw = userdata;

	(void)src;
	nw->settle = cpmsync_loop_source_remove(nw->settle);
	nw->cb(nw->why, nw->userdata);
}

/* A change: the callback after NETWATCH_SETTLE_MS, once for a burst. */
static void changed(struct netwatch *nw, const char *why)
{
	if (nw->settle)
		return;
	snprintf(nw->why, sizeof(nw->why), "%s", why);
	if (cpmsync_loop_add_timer(nw->loop, NETWATCH_SETTLE_MS, 0, settle_cb, nw, NULL,
				   &nw->settle) < 0)
		nw->cb(nw->why, nw->userdata); /* out of memory: no coalescing */
}

static void netlink_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct netwatch *nw = userdata;
	/* Aligned for struct nlmsghdr; 8 KiB as libmnl's MNL_SOCKET_BUFFER_SIZE. */
	static uint32_t buf[8192 / sizeof(uint32_t)];

	(void)src;
	(void)events;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOBUFS) {
			/* The socket's buffer overflowed: messages were lost. */
			changed(nw, "the network changed (many changes at once)");
			continue;
		}
		if (n <= 0)
			return; /* EAGAIN: all read */
		netwatch_feed(nw, buf, (size_t)n);
	}
}

const char *netwatch_feed(struct netwatch *nw, const void *buf, size_t len)
{
	const char *why = netwatch_process(nw, buf, len);

	if (why)
		changed(nw, why);
	return why;
}

const char *netwatch_clock_jumped(struct netwatch *nw, int64_t slept_ms)
{
	/* A step of the wall clock (settimeofday) is no reason: the host did
	 * not sleep, and connections do not care about wall time. */
	if (slept_ms < 1000)
		return NULL;
	snprintf(nw->clock_why, sizeof(nw->clock_why), "the system resumed after %lld s asleep",
		 (long long)(slept_ms / 1000));
	changed(nw, nw->clock_why);
	return nw->clock_why;
}

/* Armed ten years ahead: it only ever ends by being cancelled. */
static int clock_arm(int fd)
{
	struct itimerspec its = { 0 };

	clock_gettime(CLOCK_REALTIME, &its.it_value);
	its.it_value.tv_sec += 10 * 365 * 24 * 3600;
	return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) < 0
		       ? -errno
		       : 0;
}

static void clock_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct netwatch *nw = userdata;
	uint64_t expirations;
	int64_t asleep, slept;

	(void)src;
	(void)events;
	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno == EAGAIN)
		return;
	/* ECANCELED (a step or a resume) or, in ten years, an expiry. */
	clock_arm(fd);
	asleep = clock_ms(CLOCK_BOOTTIME) - clock_ms(CLOCK_MONOTONIC);
	slept = asleep - nw->asleep_ms;
	nw->asleep_ms = asleep;
	netwatch_clock_jumped(nw, slept);
}

static int netlink_open(struct netwatch *nw)
{
	struct sockaddr_nl sa = {
		.nl_family = AF_NETLINK,
		.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
			     RTMGRP_IPV6_ROUTE,
	};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	int r;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = cpmsync_loop_add_fd(nw->loop, fd, CPMSYNC_LOOP_IN, netlink_cb, nw, NULL, &nw->nl_src);
	if (r < 0) {
		close(fd);
		return r;
	}
	nw->nl_fd = fd;
	return 0;
}

static int clock_open(struct netwatch *nw)
{
	int fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = clock_arm(fd);
	if (r >= 0)
		r = cpmsync_loop_add_fd(nw->loop, fd, CPMSYNC_LOOP_IN, clock_cb, nw, NULL,
					&nw->clock_src);
	if (r < 0) {
		close(fd);
		return r;
	}
	nw->clock_fd = fd;
	nw->asleep_ms = clock_ms(CLOCK_BOOTTIME) - clock_ms(CLOCK_MONOTONIC);
	return 0;
}

int netwatch_new(struct cpmsync_loop *loop, netwatch_cb_t cb, void *userdata, struct netwatch **ret,
		 char **ret_warning)
{
	struct netwatch *nw;
	int r_net, r_clock;
	char *warning = NULL;

	*ret_warning = NULL;
	nw = calloc(1, sizeof(*nw));
	if (!nw)
		return -ENOMEM;
	nw->loop = loop;
	nw->cb = cb;
	nw->userdata = userdata;
	nw->nl_fd = nw->clock_fd = -1;
	r_net = netlink_open(nw);
	r_clock = clock_open(nw);
	if (r_net < 0 && r_clock < 0) {
		netwatch_free(nw);
		return r_net;
	}
	if (r_net < 0 && asprintf(&warning, "network changes are not watched: rtnetlink: %s",
				  strerror(-r_net)) < 0)
		warning = NULL;
	if (r_clock < 0 && asprintf(&warning, "resumes from suspend are not watched: timerfd: %s",
				    strerror(-r_clock)) < 0)
		warning = NULL;
	*ret_warning = warning;
	*ret = nw;
	return 0;
}

struct netwatch *netwatch_free(struct netwatch *nw)
{
	if (!nw)
		return NULL;
	cpmsync_loop_source_remove(nw->settle);
	cpmsync_loop_source_remove(nw->nl_src);
	cpmsync_loop_source_remove(nw->clock_src);
	if (nw->nl_fd >= 0)
		close(nw->nl_fd);
	if (nw->clock_fd >= 0)
		close(nw->clock_fd);
	free(nw);
	return NULL;
}
