/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * agent/netwatch.c: which rtnetlink messages count as a network change
 * (crafted as the kernel sends them), the known addresses and default
 * routes that keep a re-announcement from counting twice, what a clock
 * cancel counts as, and one callback per burst.  The real socket and
 * timerfd are exercised by tests/integration/test-network.sh.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cpmsync/loop.h>

#include "netwatch.h"
#include "testlib.h"

/* A message being built: header, family header, attributes. */
struct msg {
	uint32_t buf[256];
	size_t len; /* bytes of buf used: the messages so far */
};

static struct nlmsghdr *msg_begin(struct msg *m, uint16_t type, size_t family_len)
{
	struct nlmsghdr *h = (struct nlmsghdr *)((char *)m->buf + m->len);

	memset(h, 0, NLMSG_SPACE(family_len));
	h->nlmsg_type = type;
	h->nlmsg_len = NLMSG_LENGTH(family_len);
	return h;
}

static void msg_attr(struct nlmsghdr *h, uint16_t type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static void msg_end(struct msg *m, struct nlmsghdr *h)
{
	m->len += NLMSG_ALIGN(h->nlmsg_len);
	ck_assert_uint_le(m->len, sizeof(m->buf));
}

/* RTM_NEWADDR/RTM_DELADDR of address text (IPv4 or IPv6) on ifindex. */
static void add_addr(struct msg *m, uint16_t type, const char *text, int ifindex,
		     unsigned char scope, uint32_t flags)
{
	struct nlmsghdr *h = msg_begin(m, type, sizeof(struct ifaddrmsg));
	struct ifaddrmsg *ifa = NLMSG_DATA(h);
	unsigned char a[16];
	bool v6 = strchr(text, ':') != NULL;

	ck_assert_int_eq(inet_pton(v6 ? AF_INET6 : AF_INET, text, a), 1);
	ifa->ifa_family = v6 ? AF_INET6 : AF_INET;
	ifa->ifa_prefixlen = v6 ? 64 : 24;
	ifa->ifa_scope = scope;
	ifa->ifa_index = (uint32_t)ifindex;
	ifa->ifa_flags = (unsigned char)flags;
	msg_attr(h, IFA_ADDRESS, a, v6 ? 16 : 4);
	if (!v6)
		msg_attr(h, IFA_LOCAL, a, 4);
	msg_attr(h, IFA_FLAGS, &flags, sizeof(flags));
	msg_end(m, h);
}

/* RTM_NEWROUTE/RTM_DELROUTE to dst/dst_len via gateway (IPv4) on ifindex,
 * in table (0: RT_TABLE_MAIN in rtm_table; above 255: in RTA_TABLE). */
static void add_route(struct msg *m, uint16_t type, const char *dst, unsigned char dst_len,
		      const char *gateway, int ifindex, uint32_t table)
{
	struct nlmsghdr *h = msg_begin(m, type, sizeof(struct rtmsg));
	struct rtmsg *rt = NLMSG_DATA(h);
	unsigned char a[4];

	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = dst_len;
	rt->rtm_table = table == 0 ? RT_TABLE_MAIN : table > 255 ? RT_TABLE_UNSPEC : table;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	if (table > 255)
		msg_attr(h, RTA_TABLE, &table, sizeof(table));
	if (dst_len) {
		ck_assert_int_eq(inet_pton(AF_INET, dst, a), 1);
		msg_attr(h, RTA_DST, a, 4);
	}
	ck_assert_int_eq(inet_pton(AF_INET, gateway, a), 1);
	msg_attr(h, RTA_GATEWAY, a, 4);
	msg_attr(h, RTA_OIF, &ifindex, sizeof(ifindex));
	msg_end(m, h);
}

struct seen {
	unsigned calls;
	char why[128];
};

static void seen_cb(const char *why, void *userdata)
{
	struct seen *s = userdata;

	s->calls++;
	snprintf(s->why, sizeof(s->why), "%s", why);
}

struct fixture {
	struct cpmsync_loop *loop;
	struct netwatch *nw;
	struct seen seen;
};

static void fixture_start(struct fixture *f)
{
	char *warning = NULL;

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(cpmsync_loop_new(&f->loop), 0);
	ck_assert_int_eq(netwatch_new(f->loop, seen_cb, &f->seen, &f->nw, &warning), 0);
	ck_assert_msg(!warning, "%s", warning);
}

static void fixture_end(struct fixture *f)
{
	netwatch_free(f->nw);
	cpmsync_loop_free(f->loop);
}

/* Feeds one message built by fn's arguments and returns netwatch's answer. */
#define FEED_ADDR(f, type, text, ifindex, scope, flags)                                            \
	({                                                                                         \
		struct msg m_ = { .len = 0 };                                                      \
		add_addr(&m_, type, text, ifindex, scope, flags);                                  \
		netwatch_feed((f)->nw, m_.buf, m_.len);                                            \
	})
#define FEED_ROUTE(f, type, dst, dst_len, gw, ifindex, table)                                      \
	({                                                                                         \
		struct msg m_ = { .len = 0 };                                                      \
		add_route(&m_, type, dst, dst_len, gw, ifindex, table);                            \
		netwatch_feed((f)->nw, m_.buf, m_.len);                                            \
	})

static void assert_why(const char *got, const char *want)
{
	if (!want) {
		ck_assert_msg(!got, "a change where none was wanted: %s", got);
		return;
	}
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
}

#define ADDED	"the network changed (an address was added)"
#define REMOVED "the network changed (an address was removed)"
#define R_ADDED "the network changed (a default route was added)"
#define R_GONE	"the network changed (a default route was removed)"

START_TEST(test_addresses)
{
	struct fixture f;

	fixture_start(&f);
	/* A new global address counts once: its re-announcement does not. */
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "192.0.2.7", 9999, RT_SCOPE_UNIVERSE, 0), ADDED);
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "192.0.2.7", 9999, RT_SCOPE_UNIVERSE, 0), NULL);
	/* The same address on another interface is another one. */
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "192.0.2.7", 9998, RT_SCOPE_UNIVERSE, 0), ADDED);
	/* IPv6: tentative (duplicate check running) does not count, and
	 * counts once it is usable (the flag is in IFA_FLAGS too). */
	assert_why(
		FEED_ADDR(&f, RTM_NEWADDR, "2001:db8::7", 9999, RT_SCOPE_UNIVERSE, IFA_F_TENTATIVE),
		NULL);
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "2001:db8::7", 9999, RT_SCOPE_UNIVERSE, 0), ADDED);
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "2001:db8::7", 9999, RT_SCOPE_UNIVERSE, 0), NULL);
	/* A tentative one that goes (its duplicate found) was never usable. */
	assert_why(FEED_ADDR(&f, RTM_DELADDR, "2001:db8::9", 9999, RT_SCOPE_UNIVERSE,
			     IFA_F_TENTATIVE | IFA_F_DADFAILED),
		   NULL);
	/* Link-local and host addresses carry no connection to a server. */
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "fe80::1", 9999, RT_SCOPE_LINK, 0), NULL);
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "127.0.0.2", 1, RT_SCOPE_HOST, 0), NULL);
	assert_why(FEED_ADDR(&f, RTM_DELADDR, "fe80::1", 9999, RT_SCOPE_LINK, 0), NULL);
	/* Removed: counts, and the same address back counts again. */
	assert_why(FEED_ADDR(&f, RTM_DELADDR, "192.0.2.7", 9999, RT_SCOPE_UNIVERSE, 0), REMOVED);
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "192.0.2.7", 9999, RT_SCOPE_UNIVERSE, 0), ADDED);
	/* One that was there before the start (never announced) goes. */
	assert_why(FEED_ADDR(&f, RTM_DELADDR, "198.51.100.3", 9999, RT_SCOPE_UNIVERSE, 0), REMOVED);
	fixture_end(&f);
}
END_TEST

START_TEST(test_default_routes)
{
	struct fixture f;

	fixture_start(&f);
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, 0), R_ADDED);
	/* announced again (a router advertisement's refresh, for IPv6) */
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, 0), NULL);
	/* another gateway: another way out */
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.254", 9999, 0), R_ADDED);
	/* not a default route, or not the main table's */
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, "10.0.0.0", 8, "192.0.2.1", 9999, 0), NULL);
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, RT_TABLE_LOCAL), NULL);
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, 1000), NULL);
	assert_why(FEED_ROUTE(&f, RTM_DELROUTE, "10.0.0.0", 8, "192.0.2.1", 9999, 0), NULL);
	assert_why(FEED_ROUTE(&f, RTM_DELROUTE, NULL, 0, "192.0.2.1", 9999, 0), R_GONE);
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, 0), R_ADDED);
	fixture_end(&f);
}
END_TEST

/*
 * A burst (an interface coming up: its address, then its default route,
 * in one read or several) is one callback, NETWATCH_SETTLE_MS after its
 * first change, naming that change; what the burst held is known after
 * it.  Messages that are not about addresses or routes, or cut short, are
 * no change and no harm.
 */
START_TEST(test_burst_one_callback)
{
	struct fixture f;
	struct msg m = { .len = 0 };
	struct nlmsghdr *h;
	bool never = false;

	fixture_start(&f);
	add_addr(&m, RTM_NEWADDR, "192.0.2.7", 9999, RT_SCOPE_UNIVERSE, 0);
	add_route(&m, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, 0);
	assert_why(netwatch_feed(f.nw, m.buf, m.len), ADDED);
	assert_why(FEED_ADDR(&f, RTM_NEWADDR, "2001:db8::7", 9999, RT_SCOPE_UNIVERSE, 0), ADDED);
	ck_assert_uint_eq(f.seen.calls, 0);
	test_loop_run_until(f.loop, &never, NETWATCH_SETTLE_MS + 300);
	ck_assert_uint_eq(f.seen.calls, 1);
	ck_assert_str_eq(f.seen.why, ADDED);
	assert_why(FEED_ROUTE(&f, RTM_NEWROUTE, NULL, 0, "192.0.2.1", 9999, 0), NULL);

	/* A link message; a message whose length runs past the data; one
	 * too short for its family header. */
	m.len = 0;
	h = msg_begin(&m, RTM_NEWLINK, sizeof(struct ifinfomsg));
	msg_end(&m, h);
	assert_why(netwatch_feed(f.nw, m.buf, m.len), NULL);
	m.len = 0;
	add_addr(&m, RTM_NEWADDR, "192.0.2.99", 9999, RT_SCOPE_UNIVERSE, 0);
	assert_why(netwatch_feed(f.nw, m.buf, m.len - 8), NULL);
	m.len = 0;
	h = msg_begin(&m, RTM_DELROUTE, 0);
	msg_end(&m, h);
	assert_why(netwatch_feed(f.nw, m.buf, m.len), NULL);
	test_loop_run_until(f.loop, &never, NETWATCH_SETTLE_MS + 300);
	ck_assert_uint_eq(f.seen.calls, 1);
	fixture_end(&f);
}
END_TEST

/* The clock's cancel: a resume (the host slept a second or more) counts;
 * a step of the wall clock alone does not. */
START_TEST(test_clock)
{
	struct fixture f;
	bool never = false;

	fixture_start(&f);
	assert_why(netwatch_clock_jumped(f.nw, 0), NULL);
	assert_why(netwatch_clock_jumped(f.nw, 999), NULL);
	assert_why(netwatch_clock_jumped(f.nw, 75400), "the system resumed after 75 s asleep");
	test_loop_run_until(f.loop, &never, NETWATCH_SETTLE_MS + 300);
	ck_assert_uint_eq(f.seen.calls, 1);
	ck_assert_str_eq(f.seen.why, "the system resumed after 75 s asleep");
	fixture_end(&f);
}
END_TEST

static Suite *netwatch_suite(void)
{
	Suite *s = suite_create("netwatch");
	TCase *tc = tcase_create("netwatch");

	tcase_add_test(tc, test_addresses);
	tcase_add_test(tc, test_default_routes);
	tcase_add_test(tc, test_burst_one_callback);
	tcase_add_test(tc, test_clock);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(netwatch_suite)
