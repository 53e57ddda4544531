/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmsync-dbus: a small D-Bus client for the integration tests, because
 * dbus-send cannot pass a{sv}, file descriptors or nested arrays.
 *
 *   cpmsync-dbus call PATH IFACE METHOD [SIG ARG...]
 *   cpmsync-dbus get PATH IFACE PROPERTY
 *   cpmsync-dbus set PATH IFACE PROPERTY SIG VALUE
 *   cpmsync-dbus monitor [SECONDS]     signals of org.cpmsync, one per line
 *   cpmsync-dbus wait-owner SECONDS    until org.cpmsync has an owner
 *   cpmsync-dbus owner-pid             the process id of org.cpmsync's owner,
 *                                      as the bus knows it
 *                                      (GetConnectionUnixProcessID)
 *   cpmsync-dbus latency SECONDS       Manager1.Version read over and over for
 *                                      SECONDS, 20 ms apart, on one connection;
 *                                      prints "N calls, median D ms, max M ms"
 *                                      (the middle answer, the slowest one);
 *                                      exit 1 on an error
 *
 * SIG is the whole input signature; one ARG per complete type in it:
 *   s o g          the text
 *   b              true|false
 *   y q u t n i x d   decimal
 *   h              a file name, opened for reading (- for stdin)
 *   as ao          items separated by ',' ("" for none)
 *   at au          numbers separated by ','
 *   ay             @FILE (the file's bytes) or the text itself
 *   a{ss}          k=v,k=v
 *   a{sv}          k=T:v,...  with T one of s b q u t x; T "as" takes
 *                  items separated by '|', T "ay" @FILE or the text
 * Replies are printed one value per line in a plain form: basic values as
 * text, arrays as one line per element prefixed by "- ", dicts as
 * "key=value", ay as its bytes (raw, to stdout), h as the file's content.
 * Errors: "error NAME: MESSAGE" on stdout, exit 1.
 */
#include <dbus/dbus.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEST "org.cpmsync"

static DBusConnection *bus;

/* what: a sentence with "%s" standing for arg. */
static void die(const char *what, const char *arg)
{
	const char *p = strstr(what, "%s");

	fprintf(stderr, "cpmsync-dbus: %.*s%s%s\n", p ? (int)(p - what) : (int)strlen(what), what,
		p ? arg : "", p ? p + 2 : "");
	exit(2);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);

	if (!f || !buf)
		die("cannot read %s", path);
	for (;;) {
		size_t k = fread(buf + n, 1, cap - n, f);

		n += k;
		if (n < cap)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
		if (!buf)
			die("%s", "out of memory");
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
}

/* Splits s at sep into a NULL-terminated vector (s is modified). */
static char **split(char *s, char sep, int *ret_n)
{
	char **v = calloc(strlen(s) + 2, sizeof(char *));
	int n = 0;

	if (!v)
		die("%s", "out of memory");
	if (*s) {
		v[n++] = s;
		for (char *p = s; *p; p++)
			if (*p == sep) {
				*p = '\0';
				v[n++] = p + 1;
			}
	}
	*ret_n = n;
	return v;
}

static void append_basic(DBusMessageIter *it, char type, const char *arg)
{
	union {
		dbus_bool_t b;
		uint8_t y;
		uint16_t q;
		uint32_t u;
		uint64_t t;
		int16_t n;
		int32_t i;
		int64_t x;
		double d;
		int h;
	} v;

	switch (type) {
	case 's':
	case 'o':
	case 'g':
		dbus_message_iter_append_basic(it, type, &arg);
		return;
	case 'b':
		v.b = strcmp(arg, "true") == 0;
		break;
	case 'y':
		v.y = (uint8_t)strtoul(arg, NULL, 0);
		break;
	case 'q':
		v.q = (uint16_t)strtoul(arg, NULL, 0);
		break;
	case 'u':
		v.u = (uint32_t)strtoul(arg, NULL, 0);
		break;
	case 't':
		v.t = strtoull(arg, NULL, 0);
		break;
	case 'n':
		v.n = (int16_t)strtol(arg, NULL, 0);
		break;
	case 'i':
		v.i = (int32_t)strtol(arg, NULL, 0);
		break;
	case 'x':
		v.x = strtoll(arg, NULL, 0);
		break;
	case 'd':
		v.d = strtod(arg, NULL);
		break;
	case 'h':
		v.h = strcmp(arg, "-") == 0 ? 0 : open(arg, O_RDONLY | O_CLOEXEC);
		if (v.h < 0)
			die("cannot open %s", arg);
		break;
	default:
		die("unsupported type %s", (char[]){ type, 0 });
	}
	dbus_message_iter_append_basic(it, type, &v);
}

/* Appends one complete type starting at sig; returns its length. */
static size_t append_arg(DBusMessageIter *it, const char *sig, char *arg)
{
	DBusMessageIter a, e, var;
	char **items;
	int n;

	if (sig[0] != 'a') {
		append_basic(it, sig[0], arg);
		return 1;
	}
	if (sig[1] == 'y') {
		size_t len;
		char *data = arg[0] == '@' ? read_file(arg + 1, &len) : (len = strlen(arg), arg);
		const char *p = data;

		dbus_message_iter_open_container(it, 'a', "y", &a);
		dbus_message_iter_append_fixed_array(&a, 'y', &p, (int)len);
		dbus_message_iter_close_container(it, &a);
		return 2;
	}
	if (strncmp(sig, "a{ss}", 5) == 0 || strncmp(sig, "a{sv}", 5) == 0) {
		bool variant = sig[3] == 'v';

		items = split(arg, ',', &n);
		dbus_message_iter_open_container(it, 'a', variant ? "{sv}" : "{ss}", &a);
		for (int i = 0; i < n; i++) {
			char *eq = strchr(items[i], '=');
			const char *key = items[i];

			if (!eq)
				die("dict item without '=': %s", items[i]);
			*eq = '\0';
			dbus_message_iter_open_container(&a, 'e', NULL, &e);
			dbus_message_iter_append_basic(&e, 's', &key);
			if (!variant) {
				const char *val = eq + 1;

				dbus_message_iter_append_basic(&e, 's', &val);
			} else {
				char *colon = strchr(eq + 1, ':');

				if (!colon)
					die("a{sv} value needs TYPE:VALUE: %s", eq + 1);
				*colon = '\0';
				if (strcmp(eq + 1, "ay") == 0) {
					dbus_message_iter_open_container(&e, 'v', "ay", &var);
					append_arg(&var, "ay", colon + 1);
					dbus_message_iter_close_container(&e, &var);
				} else if (strcmp(eq + 1, "as") == 0) {
					DBusMessageIter arr;
					char **sv;
					int m;

					sv = split(colon + 1, '|', &m);
					dbus_message_iter_open_container(&e, 'v', "as", &var);
					dbus_message_iter_open_container(&var, 'a', "s", &arr);
					for (int k = 0; k < m; k++)
						dbus_message_iter_append_basic(&arr, 's', &sv[k]);
					dbus_message_iter_close_container(&var, &arr);
					dbus_message_iter_close_container(&e, &var);
					free(sv);
				} else {
					dbus_message_iter_open_container(&e, 'v', eq + 1, &var);
					append_basic(&var, eq[1], colon + 1);
					dbus_message_iter_close_container(&e, &var);
				}
			}
			dbus_message_iter_close_container(&a, &e);
		}
		dbus_message_iter_close_container(it, &a);
		free(items);
		return 5;
	}
	/* as ao at au ... */
	items = split(arg, ',', &n);
	dbus_message_iter_open_container(it, 'a', (char[]){ sig[1], 0 }, &a);
	for (int i = 0; i < n; i++)
		append_basic(&a, sig[1], items[i]);
	dbus_message_iter_close_container(it, &a);
	free(items);
	return 2;
}

static void print_value(DBusMessageIter *it, int depth);

static void print_basic(DBusMessageIter *it)
{
	int type = dbus_message_iter_get_arg_type(it);
	DBusBasicValue v;

	dbus_message_iter_get_basic(it, &v);
	switch (type) {
	case 's':
	case 'o':
	case 'g':
		printf("%s", v.str);
		break;
	case 'b':
		printf("%s", v.bool_val ? "true" : "false");
		break;
	case 'y':
		printf("%u", v.byt);
		break;
	case 'q':
		printf("%u", v.u16);
		break;
	case 'u':
		printf("%" PRIu32, v.u32);
		break;
	case 't':
		printf("%" PRIu64, v.u64);
		break;
	case 'n':
		printf("%d", v.i16);
		break;
	case 'i':
		printf("%" PRId32, v.i32);
		break;
	case 'x':
		printf("%" PRId64, v.i64);
		break;
	case 'd':
		printf("%g", v.dbl);
		break;
	case 'h': {
		char buf[65536];
		ssize_t n;

		fflush(stdout);
		while ((n = read(v.fd, buf, sizeof(buf))) > 0)
			if (write(1, buf, (size_t)n) != n)
				break;
		close(v.fd);
		break;
	}
	default:
		printf("?");
	}
}

static void print_value(DBusMessageIter *it, int depth)
{
	int type = dbus_message_iter_get_arg_type(it);
	DBusMessageIter sub;

	if (type == 'a') {
		int et = dbus_message_iter_get_element_type(it);

		dbus_message_iter_recurse(it, &sub);
		if (et == 'y') {
			const char *p;
			int n;

			dbus_message_iter_get_fixed_array(&sub, &p, &n);
			fflush(stdout);
			if (n > 0 && write(1, p, (size_t)n) != n)
				exit(1);
			return;
		}
		if (et == 'e') {
			/* dict: key=value, one per line; nested dicts on one
			 * line each, braced. */
			if (depth > 0)
				printf("{");
			while (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID) {
				DBusMessageIter e;

				dbus_message_iter_recurse(&sub, &e);
				print_basic(&e);
				printf("=");
				dbus_message_iter_next(&e);
				print_value(&e, depth + 1);
				dbus_message_iter_next(&sub);
				if (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID)
					printf(depth > 0 ? ";" : "\n");
			}
			if (depth > 0)
				printf("}");
			return;
		}
		if (depth > 0)
			printf("[");
		while (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID) {
			if (depth == 0)
				printf("- ");
			print_value(&sub, depth + 1);
			dbus_message_iter_next(&sub);
			if (depth == 0)
				printf("\n");
			else if (dbus_message_iter_get_arg_type(&sub) != DBUS_TYPE_INVALID)
				printf("|");
		}
		if (depth > 0)
			printf("]");
		return;
	}
	if (type == 'v' || type == 'r' || type == 'e') {
		dbus_message_iter_recurse(it, &sub);
		print_value(&sub, depth);
		return;
	}
	print_basic(it);
}

static int print_reply(DBusMessage *reply)
{
	DBusMessageIter it;

	if (dbus_message_get_type(reply) == DBUS_MESSAGE_TYPE_ERROR) {
		const char *msg = "";

		dbus_message_get_args(reply, NULL, DBUS_TYPE_STRING, &msg, DBUS_TYPE_INVALID);
		printf("error %s: %s\n", dbus_message_get_error_name(reply), msg);
		return 1;
	}
	if (!dbus_message_iter_init(reply, &it))
		return 0;
	do {
		int t = dbus_message_iter_get_arg_type(&it);

		print_value(&it, 0);
		/* Raw content (ay, h) and element lists end as they are. */
		if (t != 'h' && (t != 'a' || dbus_message_iter_get_element_type(&it) == 'e'))
			printf("\n");
	} while (dbus_message_iter_next(&it));
	return 0;
}

static int call(DBusMessage *m)
{
	DBusMessage *reply;
	DBusError err;
	int r;

	dbus_error_init(&err);
	reply = dbus_connection_send_with_reply_and_block(bus, m, 60000, &err);
	dbus_message_unref(m);
	if (!reply) {
		printf("error %s: %s\n", err.name, err.message);
		dbus_error_free(&err);
		return 1;
	}
	r = print_reply(reply);
	dbus_message_unref(reply);
	fflush(stdout);
	return r;
}

/* Seconds on the monotonic clock: only differences are used. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int monitor(int seconds)
{
	double end = now_s() + (seconds > 0 ? seconds : 1e9);
	DBusError err;

	dbus_error_init(&err);
	dbus_bus_add_match(bus, "type='signal',sender='" DEST "'", &err);
	if (dbus_error_is_set(&err)) {
		printf("error %s: %s\n", err.name, err.message);
		return 1;
	}
	dbus_bus_add_match(bus, "type='signal',path_namespace='/org/cpmsync'", NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (now_s() < end) {
		DBusMessage *m;

		dbus_connection_read_write(bus, 100);
		while ((m = dbus_connection_pop_message(bus))) {
			if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_SIGNAL &&
			    strcmp(dbus_message_get_interface(m), "org.freedesktop.DBus") != 0) {
				DBusMessageIter it;

				printf("%s %s %s", dbus_message_get_path(m),
				       dbus_message_get_interface(m), dbus_message_get_member(m));
				if (dbus_message_iter_init(m, &it))
					do {
						printf(" ");
						print_value(&it, 1);
					} while (dbus_message_iter_next(&it));
				printf("\n");
			}
			dbus_message_unref(m);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	DBusError err;
	DBusMessage *m;

	if (argc < 2)
		die("%s", "usage: cpmsync-dbus call|get|set|monitor|wait-owner|owner-pid ...");
	dbus_error_init(&err);
	bus = dbus_bus_get(DBUS_BUS_SESSION, &err);
	if (!bus) {
		printf("error %s: %s\n", err.name, err.message);
		return 1;
	}
	if (strcmp(argv[1], "monitor") == 0)
		return monitor(argc > 2 ? atoi(argv[2]) : 0);
	if (strcmp(argv[1], "wait-owner") == 0) {
		double end = now_s() + (argc > 2 ? atof(argv[2]) : 10);

		while (now_s() < end) {
			if (dbus_bus_name_has_owner(bus, DEST, NULL))
				return 0;
			usleep(50000);
		}
		printf("error: %s has no owner\n", DEST);
		return 1;
	}
	if (strcmp(argv[1], "owner-pid") == 0 && argc == 2) {
		const char *name = DEST;
		dbus_uint32_t pid = 0;
		DBusMessage *reply;

		m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
						 DBUS_INTERFACE_DBUS, "GetConnectionUnixProcessID");
		if (!m || !dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID))
			die("%s", "out of memory");
		reply = dbus_connection_send_with_reply_and_block(bus, m, 30000, &err);
		dbus_message_unref(m);
		if (!reply) {
			printf("error %s: %s\n", err.name, err.message);
			return 1;
		}
		if (!dbus_message_get_args(reply, &err, DBUS_TYPE_UINT32, &pid,
					   DBUS_TYPE_INVALID)) {
			printf("error %s: %s\n", err.name, err.message);
			return 1;
		}
		dbus_message_unref(reply);
		printf("%" PRIu32 "\n", (uint32_t)pid);
		return 0;
	}
	if (strcmp(argv[1], "latency") == 0 && argc == 3) {
		double end = now_s() + atof(argv[2]), max = 0, *took = NULL;
		unsigned n = 0;

		while (now_s() < end) {
			const char *iface = "org.cpmsync.Manager1", *prop = "Version";
			double t0 = now_s();
			DBusMessage *reply;

			m = dbus_message_new_method_call(DEST, "/org/cpmsync",
							 DBUS_INTERFACE_PROPERTIES, "Get");
			dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING,
						 &prop, DBUS_TYPE_INVALID);
			reply = dbus_connection_send_with_reply_and_block(bus, m, 30000, &err);
			dbus_message_unref(m);
			if (!reply) {
				printf("error %s: %s\n", err.name, err.message);
				return 1;
			}
			dbus_message_unref(reply);
			took = realloc(took, (n + 1) * sizeof(*took));
			if (!took) {
				printf("error: out of memory\n");
				return 1;
			}
			took[n] = now_s() - t0;
			if (took[n] > max)
				max = took[n];
			n++;
			usleep(20000);
		}
		if (n)
			qsort(took, n, sizeof(*took), cmp_double);
		printf("%u calls, median %.1f ms, max %.1f ms\n", n, n ? took[n / 2] * 1000 : 0,
		       max * 1000);
		free(took);
		return 0;
	}
	if (strcmp(argv[1], "get") == 0 && argc == 5) {
		const char *iface = argv[3], *prop = argv[4];

		m = dbus_message_new_method_call(DEST, argv[2], DBUS_INTERFACE_PROPERTIES, "Get");
		dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &prop,
					 DBUS_TYPE_INVALID);
		return call(m);
	}
	if (strcmp(argv[1], "set") == 0 && argc == 7) {
		const char *iface = argv[3], *prop = argv[4];
		DBusMessageIter it, var;

		m = dbus_message_new_method_call(DEST, argv[2], DBUS_INTERFACE_PROPERTIES, "Set");
		dbus_message_iter_init_append(m, &it);
		dbus_message_iter_append_basic(&it, 's', &iface);
		dbus_message_iter_append_basic(&it, 's', &prop);
		dbus_message_iter_open_container(&it, 'v', argv[5], &var);
		append_arg(&var, argv[5], argv[6]);
		dbus_message_iter_close_container(&it, &var);
		return call(m);
	}
	if (strcmp(argv[1], "call") == 0 && argc >= 5) {
		DBusMessageIter it;
		const char *sig = argc > 5 ? argv[5] : "";
		int a = argc > 5 ? 6 : 5;

		m = dbus_message_new_method_call(DEST, argv[2], argv[3], argv[4]);
		dbus_message_iter_init_append(m, &it);
		while (*sig) {
			if (a >= argc)
				die("missing argument for %s", sig);
			sig += append_arg(&it, sig, argv[a++]);
		}
		if (a != argc)
			die("extra argument %s", argv[a]);
		return call(m);
	}
	die("%s", "bad usage");
	return 2;
}
