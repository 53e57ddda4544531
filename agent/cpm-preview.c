/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpm-preview: scales one image for Folder1.Preview, in a process of its
 * own so that a hostile image cannot take cpm-syncd down.
 *
 * The protocol is in cpmsync/preview.h: fd 0 a socket (one request in,
 * with the image's memfd attached, one response out), nothing else.  The
 * order:
 *   1. start libvips with only the JPEG, PNG, WebP and GIF loaders, one
 *      worker thread, no operation cache, no modules (this may happen
 *      before there is a request: cpm-syncd keeps a spare started), and
 *      when no request is there yet, warm up on an image made here;
 *   2. read and check the request, map the image;
 *   3. resource limits (address space, CPU time, no file growth, no new
 *      descriptors) and a seccomp filter, on every thread: from here on,
 *      no open(), no socket, no exec; a forbidden call kills the process;
 *   4. find the loader by the bytes (not by what the message says), read
 *      the header and refuse more than CPMSYNC_PREVIEW_MAX_PIXELS before
 *      decoding anything; then vips_thumbnail_buffer() (shrink-on-load:
 *      a JPEG decodes at 1/2, 1/4 or 1/8 scale), failing on truncated
 *      data instead of filling in grey;
 *   5. write the response and exit.
 * Errors go back as a status and a one-line text; the exit status is 0
 * whenever a response was written.
 *
 * Only this program links libvips and libseccomp (never cpm-syncd).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vips/vips.h>

#include <cpmsync/io.h>
#include <cpmsync/preview.h>

/* libvips exports it; its header, vips/vector.h, needs orc's. */
void vips_vector_set_enabled(gboolean enabled);

#define SOCK 0
/* Limits once libvips is loaded (cpm-syncd sets looser ones before exec). */
#define AS_LIMIT  (768ull * 1024 * 1024)
#define CPU_LIMIT 10

static const char *const loaders[] = {
	"VipsForeignLoadJpegBuffer",
	"VipsForeignLoadPngBuffer",
	"VipsForeignLoadWebpBuffer",
	"VipsForeignLoadNsgifBuffer",
};

static int respond_error(uint32_t status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int respond_error(uint32_t status, const char *fmt, ...)
{
	struct cpmsync_preview_response resp = { .status = status };
	uint8_t hdr[CPMSYNC_PREVIEW_HEADER_SIZE];
	char text[CPMSYNC_PREVIEW_MAX_TEXT];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	/* One line: libvips messages end in "\n" and may hold several. */
	for (int i = 0; i < n; i++)
		if (text[i] == '\n' || text[i] == '\r') {
			n = i;
			break;
		}
	resp.length = (uint64_t)n;
	if (cpmsync_preview_response_encode(&resp, hdr) < 0 ||
	    cpmsync_write_all(SOCK, hdr, sizeof(hdr)) < 0 ||
	    cpmsync_write_all(SOCK, text, (size_t)n) < 0)
		return 1;
	return 0;
}

/* The first line of libvips' error buffer, without the "loader: " noise. */
static const char *vips_reason(void)
{
	const char *e = vips_error_buffer();

	return e && *e ? e : "unknown error";
}

static int limit(int resource, rlim_t value)
{
	struct rlimit rl;

	if (getrlimit(resource, &rl) < 0)
		return -1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < value)
		value = rl.rlim_max;
	rl.rlim_cur = value;
	rl.rlim_max = value;
	return setrlimit(resource, &rl);
}

static int sandbox(void)
{
	static const int allowed[] = {
		SCMP_SYS(read),
		SCMP_SYS(write),
		SCMP_SYS(writev),
		SCMP_SYS(close),
		SCMP_SYS(fstat),
		SCMP_SYS(newfstatat),
		SCMP_SYS(lseek),
		SCMP_SYS(mmap),
		SCMP_SYS(munmap),
		SCMP_SYS(mremap),
		SCMP_SYS(mprotect),
		SCMP_SYS(madvise),
		SCMP_SYS(brk),
		SCMP_SYS(futex),
		SCMP_SYS(set_robust_list),
		SCMP_SYS(rseq),
		SCMP_SYS(rt_sigaction),
		SCMP_SYS(rt_sigprocmask),
		SCMP_SYS(rt_sigreturn),
		SCMP_SYS(sigaltstack),
		SCMP_SYS(sched_yield),
		SCMP_SYS(sched_getaffinity),
		SCMP_SYS(getpid),
		SCMP_SYS(gettid),
		SCMP_SYS(clock_gettime),
		SCMP_SYS(clock_nanosleep),
		SCMP_SYS(nanosleep),
		SCMP_SYS(getrandom),
		SCMP_SYS(exit),
		SCMP_SYS(exit_group),
		SCMP_SYS(eventfd2),
		SCMP_SYS(poll),
		SCMP_SYS(ppoll),
		SCMP_SYS(prctl),
		SCMP_SYS(getrusage),
		SCMP_SYS(tgkill),
		SCMP_SYS(umask),
		SCMP_SYS(times),
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = ctx ? 0 : -ENOMEM;

	/* Every thread, not only this one: the warm-up leaves libvips'
	 * worker threads waiting for work. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);

	for (size_t i = 0; r == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	/* Threads only (libvips' worker), never a new process. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* clone3's flags are in memory a filter cannot read: ENOSYS makes
	 * glibc fall back to clone(). */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* GLib's logging asks whether stderr is the journal's socket or a
	 * terminal: it is neither. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTSOCK), SCMP_SYS(getpeername), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 0);
	/* No files: opening fails (GLib and libvips cope), it does not kill. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(access), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

static bool loader_allowed(const char *name)
{
	for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++)
		if (strcmp(name, loaders[i]) == 0)
			return true;
	return false;
}

/* The four formats by their first bytes, before any libvips code looks:
 * libvips' own detection asks every loader it has. */
static bool sniff(const unsigned char *d, size_t n)
{
	return (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) ||
	       (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) ||
	       (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) ||
	       (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0);
}

/*
 * The spare's warm-up, before there is a request: one preview of an image
 * made here (not untrusted input), JPEG in and out, the path that almost
 * every real preview takes.  The first libvips operation in a process
 * pays for what libvips does once: the GType classes of the loader,
 * thumbnail, resize and saver; libjpeg's set-up; the lazy binding of the
 * library functions on that path; the worker threads.  Measured (a
 * 200x150 JPEG to 160x120 in a test program): 15-20 ms of CPU the first
 * time, 5 ms afterwards; paid here, it is off the request's path.  The
 * worker threads it leaves are covered by the seccomp filter (TSYNC).
 */
static void warm_up(void)
{
	VipsImage *black = NULL, *thumb = NULL;
	void *jpg = NULL, *out = NULL;
	size_t jpg_len = 0, out_len = 0;

	/* orc's code generation would look for a directory to map its code
	 * from (it tries /tmp): off here, so that the warm-up touches no
	 * file; in the sandbox it falls back to anonymous memory. */
	vips_vector_set_enabled(FALSE);
	if (vips_black(&black, 64, 48, "bands", 3, NULL) == 0 &&
	    vips_image_write_to_buffer(black, ".jpg[Q=80,strip]", &jpg, &jpg_len, NULL) == 0 &&
	    vips_thumbnail_buffer(jpg, jpg_len, &thumb, 32, "height", 24, "size", VIPS_SIZE_DOWN,
				  "option_string", "fail_on=truncated", NULL) == 0)
		(void)vips_image_write_to_buffer(thumb, ".jpg[Q=80,strip]", &out, &out_len, NULL);
	if (thumb)
		g_object_unref(thumb);
	if (black)
		g_object_unref(black);
	g_free(jpg);
	g_free(out);
	vips_error_clear();
	vips_vector_set_enabled(TRUE);
}

static int convert(const struct cpmsync_preview_request *req, void *data, size_t len)
{
	static const char *const savers[] = {
		[CPMSYNC_PREVIEW_JPEG] = ".jpg[Q=80,strip]",
		[CPMSYNC_PREVIEW_PNG] = ".png[compression=6,strip]",
		[CPMSYNC_PREVIEW_WEBP] = ".webp[Q=80,strip]",
	};
	struct cpmsync_preview_response resp = { .status = CPMSYNC_PREVIEW_OK };
	uint8_t hdr[CPMSYNC_PREVIEW_HEADER_SIZE];
	VipsImage *head, *thumb = NULL, *flat = NULL;
	const char *loader = NULL;
	void *out = NULL;
	size_t out_len = 0;
	uint64_t pixels;
	int w, h, r;

	vips_error_clear();
	if (sniff(data, len))
		loader = vips_foreign_find_load_buffer(data, len);
	if (!loader || !loader_allowed(loader))
		return respond_error(CPMSYNC_PREVIEW_E_NOT_IMAGE,
				     "not a JPEG, PNG, WebP or GIF image");
	/* The header only: nothing is decoded yet. */
	head = vips_image_new_from_buffer(data, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (!head)
		return respond_error(CPMSYNC_PREVIEW_E_DAMAGED, "unreadable image header: %s",
				     vips_reason());
	w = vips_image_get_width(head);
	h = vips_image_get_height(head);
	g_object_unref(head);
	pixels = (uint64_t)w * (uint64_t)h;
	if (pixels > CPMSYNC_PREVIEW_MAX_PIXELS)
		return respond_error(CPMSYNC_PREVIEW_E_TOO_LARGE,
				     "image of %dx%d pixels: more than the %u-megapixel limit", w,
				     h, CPMSYNC_PREVIEW_MAX_PIXELS / 1000000);

	r = vips_thumbnail_buffer(data, len, &thumb, (int)req->width, "height", (int)req->height,
				  "size", VIPS_SIZE_DOWN, "option_string", "fail_on=truncated",
				  NULL);
	if (r == 0 && req->format == CPMSYNC_PREVIEW_JPEG && vips_image_hasalpha(thumb)) {
		double white[] = { 255, 255, 255 };

		r = vips_flatten(thumb, &flat, "background", vips_array_double_new(white, 3), NULL);
		g_object_unref(thumb);
		thumb = r == 0 ? flat : NULL;
	}
	if (r == 0)
		r = vips_image_write_to_buffer(thumb, savers[req->format], &out, &out_len, NULL);
	if (r != 0) {
		if (thumb)
			g_object_unref(thumb);
		return respond_error(CPMSYNC_PREVIEW_E_DAMAGED, "damaged image data: %s",
				     vips_reason());
	}
	resp.width = (uint32_t)vips_image_get_width(thumb);
	resp.height = (uint32_t)vips_image_get_height(thumb);
	resp.length = out_len;
	g_object_unref(thumb);
	if (cpmsync_preview_response_encode(&resp, hdr) < 0) {
		g_free(out);
		return respond_error(CPMSYNC_PREVIEW_E_INTERNAL,
				     "the preview came out larger than %u bytes",
				     CPMSYNC_PREVIEW_MAX_OUTPUT);
	}
	r = cpmsync_write_all(SOCK, hdr, sizeof(hdr)) < 0 ||
	    cpmsync_write_all(SOCK, out, out_len) < 0;
	g_free(out);
	return r;
}

/*
 * The request: the header, with the image's fd attached (SCM_RIGHTS) to
 * its first byte.  Returns the fd, -1 when none came (*ret_hdr_ok tells
 * whether the header arrived whole).
 */
static int receive_request(uint8_t *hdr, bool *ret_hdr_ok)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = hdr, .iov_len = CPMSYNC_PREVIEW_HEADER_SIZE };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	*ret_hdr_ok = false;
	do
		n = recvmsg(SOCK, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if ((size_t)n < CPMSYNC_PREVIEW_HEADER_SIZE &&
	    cpmsync_read_exact(SOCK, hdr + n, CPMSYNC_PREVIEW_HEADER_SIZE - (size_t)n) < 0)
		return fd;
	*ret_hdr_ok = true;
	return fd;
}

int main(int argc, char **argv)
{
	uint8_t hdr[CPMSYNC_PREVIEW_HEADER_SIZE];
	struct cpmsync_preview_request req;
	struct stat st;
	bool hdr_ok;
	void *data;
	int r, in;

	(void)argc;
	if (fstat(SOCK, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "cpm-preview: a helper of cpm-syncd; fd 0 must be its socket\n");
		return 2;
	}
	/* libvips first: cpm-syncd may start this process before there is
	 * an image for it (a spare), so that the start-up cost is paid
	 * ahead of the request.  Before its threads: one malloc arena, so
	 * that the address-space limit is spent on pixels, not on arena
	 * reservations. */
	mallopt(M_ARENA_MAX, 1);
	/* A write past RLIMIT_FSIZE (0, from cpm-syncd) fails (EFBIG)
	 * instead of killing. */
	signal(SIGXFSZ, SIG_IGN);
	setenv("VIPS_CONCURRENCY", "1", 1);
	/* No loadable modules (ImageMagick, poppler, OpenSlide, HEIF, JPEG XL):
	 * libvips looks for them under $VIPSHOME, and they are neither wanted
	 * nor cheap to load. */
	setenv("VIPSHOME", "/nonexistent/cpm-preview", 1);
	if (VIPS_INIT(argv[0]))
		return respond_error(CPMSYNC_PREVIEW_E_INTERNAL, "libvips did not start: %s",
				     vips_reason());
	vips_concurrency_set(1);
	vips_cache_set_max(0);
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++)
		vips_operation_block_set(loaders[i], FALSE);
	/* A spare warms up while it waits; a helper started for a request
	 * that is already there goes straight to it. */
	if (poll(&(struct pollfd){ .fd = SOCK, .events = POLLIN }, 1, 0) == 0)
		warm_up();

	in = receive_request(hdr, &hdr_ok);
	if (!hdr_ok)
		return 1; /* cpm-syncd went away, or a spare was retired */
	r = cpmsync_preview_request_decode(hdr, &req);
	if (r < 0)
		return respond_error(CPMSYNC_PREVIEW_E_REQUEST, "request refused: %s",
				     r == -EPROTO ? "not protocol version 1"
						  : "value out of range");
	if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != req.input_size)
		return respond_error(CPMSYNC_PREVIEW_E_REQUEST,
				     "request refused: the image is not the size announced");
	/* MAP_POPULATE: the page tables in one go, not a page fault every
	 * 16 pages while the decoder reads (page faults are dear on a
	 * paravirtualised machine). */
	data = mmap(NULL, (size_t)req.input_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, in, 0);
	if (data == MAP_FAILED)
		return respond_error(CPMSYNC_PREVIEW_E_INTERNAL, "cannot map the image: %s",
				     strerror(errno));
	close(in);

	if (limit(RLIMIT_AS, AS_LIMIT) < 0 || limit(RLIMIT_CPU, CPU_LIMIT) < 0 ||
	    limit(RLIMIT_FSIZE, 0) < 0 || limit(RLIMIT_CORE, 0) < 0 || limit(RLIMIT_NOFILE, 8) < 0)
		return respond_error(CPMSYNC_PREVIEW_E_INTERNAL, "cannot set resource limits: %s",
				     strerror(errno));
	r = sandbox();
	if (r < 0) {
		/* libseccomp's errno says little (ENOMEM where seccomp() was
		 * refused, when it asks whether TSYNC is there): ask the kernel
		 * whether seccomp() may be called at all, with a request that
		 * changes nothing. */
		uint32_t action = SECCOMP_RET_KILL_PROCESS;

		if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0)
			return respond_error(
				CPMSYNC_PREVIEW_E_INTERNAL,
				"the kernel refused to install the seccomp filter: "
				"seccomp() fails with \"%s\"; a system call filter around "
				"cpm-syncd (systemd's SystemCallFilter=) may forbid seccomp()",
				strerror(errno));
		return respond_error(CPMSYNC_PREVIEW_E_INTERNAL,
				     "cannot install the seccomp filter (libseccomp: %s)",
				     strerror(-r));
	}

	return convert(&req, data, (size_t)req.input_size);
}
