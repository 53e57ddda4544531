/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Previews (cpmsync/preview.h): the cache, CONVERT through the session,
 * else the part (stored, or fetched: its MIME header, then its content)
 * converted here (text) or by cpm-preview (images).
 *
 * Why here, in the library, and not in the D-Bus front end: middleware
 * that links libcpmsync gets the same previews as D-Bus clients, and the
 * store (the cache), the session (fetch, CONVERT) and the loop (the
 * helper's socket and pidfd) are all library objects.  The library never
 * decodes an image: cpm-preview does, one process per image.
 *
 * A helper run: a sealed memfd holds the decoded image; a socketpair
 * carries the request (with the memfd attached, SCM_RIGHTS) and the
 * response; the child gets fd 0 (socket), 1 and 2 (/dev/null) and nothing
 * else, outer resource limits (address space, CPU time, no core, no file
 * growth), and an empty environment.  After the first preview one helper
 * is kept started ahead (a spare, still one process per image): its
 * start-up and warm-up, most of a small preview's cost, are then paid
 * before the request; a spare unused for a minute is stopped.  The spare
 * is started once the preview it replaces is delivered, unless a preview
 * waits or a CPU is free: on a machine of one or two CPUs its start-up
 * would otherwise compete with that preview.  The parent waits on the socket (response,
 * bounded) and on a pidfd (exit), with a wall-clock timer that kills.  No SIGCHLD handler is
 * involved: the pidfd reaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/message.h>
#include <cpmsync/preview.h>

#include "util/buf.h"
#include "util/macro.h"
#include "util/preview-part.h"

#ifndef CPMSYNC_LIBEXECDIR
#define CPMSYNC_LIBEXECDIR "/usr/local/libexec"
#endif
#define HELPER_DEFAULT CPMSYNC_LIBEXECDIR "/cpmsync/cpm-preview"

/* Outer limits of the helper (it sets tighter ones once libvips is in). */
#define HELPER_AS_LIMIT	 (1024ull * 1024 * 1024)
#define HELPER_CPU_LIMIT 12
/* Largest MIME header and encoded part read for a preview. */
#define MAX_HEADER (256u * 1024)
#define MAX_PART   (CPMSYNC_PREVIEW_MAX_INPUT / 3 * 4 + 1024 * 1024)
/* A spare helper unused for this long is stopped. */
#define SPARE_IDLE_MS 60000

enum stage { ST_NEW, ST_CONVERT, ST_FETCH_HEADER, ST_FETCH_PART, ST_QUEUED, ST_HELPER, ST_DONE };

struct job {
	struct cpmsync_previewer *p; /* NULL once orphaned (previewer freed) */
	struct job *next;
	enum stage stage;
	int64_t message_id;
	char *section, *format;
	uint32_t width, height, fmt;
	bool cache;
	struct cpmsync_session *session;
	cpmsync_data_cb_t cb;
	void *userdata;
	char *header; /* a fetched MIME header */
	size_t header_len;

	int input_fd; /* the helper's image */
	pid_t pid;
	int pidfd, sock;
	struct cpmsync_loop_source *sock_src, *pid_src, *timer, *defer;
	struct buf resp;
	bool sock_done, exited, timed_out;
	siginfo_t si;

	int r;
	char *reason;
	void *data;
	size_t len;
};

/* A started helper process: its socket (fd 0 there) and pidfd. */
struct proc {
	pid_t pid;
	int pidfd, sock;
};

struct cpmsync_previewer {
	struct cpmsync_loop *loop;
	struct cpmsync_store *store;
	char *helper;
	struct job *jobs;
	unsigned running;
	struct proc spare; /* started ahead, waiting for a request */
	bool have_spare;
	struct cpmsync_loop_source *spare_timer;
	struct cpmsync_loop_source *refill; /* spare_refill_later() pending */
};

static void job_free(struct job *j)
{
	/* sources first: an fd is closed only once nothing watches it */
	cpmsync_loop_source_remove(j->sock_src);
	cpmsync_loop_source_remove(j->pid_src);
	cpmsync_loop_source_remove(j->timer);
	cpmsync_loop_source_remove(j->defer);
	free(j->section);
	free(j->format);
	free(j->header);
	if (j->input_fd >= 0)
		close(j->input_fd);
	if (j->sock >= 0)
		close(j->sock);
	if (j->pidfd >= 0)
		close(j->pidfd);
	buf_free(&j->resp);
	free(j->reason);
	free(j->data);
	free(j);
}

static void job_unlink(struct job *j)
{
	if (!j->p)
		return;
	for (struct job **pp = &j->p->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	j->next = NULL;
}

static void set_error(struct job *j, int r, const char *fmt, ...) ATTR_FORMAT(3, 4);
static void set_error(struct job *j, int r, const char *fmt, ...)
{
	va_list ap;

	j->r = r;
	free(j->reason);
	j->reason = NULL;
	va_start(ap, fmt);
	if (vasprintf(&j->reason, fmt, ap) < 0)
		j->reason = NULL;
	va_end(ap);
}

/* The result to the caller, now; the job is gone afterwards. */
static void deliver(struct job *j)
{
	int fd = -1, r = j->r;

	job_unlink(j);
	j->stage = ST_DONE;
	if (r == 0) {
		fd = memfd_create("cpmsync-preview", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		r = fd < 0 ? -errno : cpmsync_write_all(fd, j->data, j->len);
		if (r >= 0 && lseek(fd, 0, SEEK_SET) < 0)
			r = -errno;
		if (r >= 0)
			fcntl(fd, F_ADD_SEALS,
			      F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
		if (r < 0 && fd >= 0) {
			close(fd);
			fd = -1;
		}
		if (r < 0)
			set_error(j, r, "cannot hand the preview over: %s", cpmsync_strerror(r));
	}
	if (r == 0)
		j->cb(0, NULL, fd, j->len, j->userdata);
	else
		j->cb(r, j->reason ? j->reason : cpmsync_strerror(r), -1, 0, j->userdata);
	job_free(j);
}

static void deferred(struct cpmsync_loop_source *src, void *userdata)
{
	struct job *j = userdata;

	(void)src;
	cpmsync_loop_source_remove(j->defer);
	j->defer = NULL;
	deliver(j);
}

/* The result from the loop (never from inside cpmsync_preview()). */
static void deliver_later(struct job *j)
{
	if (!j->p || cpmsync_loop_defer(j->p->loop, deferred, j, NULL, &j->defer) < 0)
		deliver(j);
}

static void keep(struct job *j)
{
	if (j->cache && j->p && j->r == 0)
		(void)cpmsync_store_preview_put(j->p->store, j->message_id, j->section, j->format,
						j->width, j->height, j->data, j->len);
}

/* ------------------------------------------------------------------ */
/* The helper */

static void helper_next(struct cpmsync_previewer *p);
static void spare_refill_later(struct cpmsync_previewer *p);

static const char *signal_text(int sig)
{
	switch (sig) {
	case SIGKILL:
	case SIGXCPU:
		return "it used more than its CPU time limit";
	case SIGSYS:
		return "it made a system call its sandbox forbids";
	case SIGABRT:
	case SIGSEGV:
	case SIGBUS:
		return "it crashed (out of memory, or a decoder bug)";
	default:
		return "it was killed";
	}
}

static bool magic_ok(uint32_t fmt, const unsigned char *d, size_t n)
{
	switch (fmt) {
	case CPMSYNC_PREVIEW_JPEG:
		return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff;
	case CPMSYNC_PREVIEW_PNG:
		return n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0;
	case CPMSYNC_PREVIEW_WEBP:
		return n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0;
	default:
		return false;
	}
}

static void helper_result(struct job *j)
{
	struct cpmsync_preview_response resp;
	const char *what = *j->section ? j->section : "the body";
	const unsigned char *body;

	if (j->timed_out) {
		set_error(j, -ETIMEDOUT,
			  "part %s: the image converter took longer than %u s and was stopped",
			  what, CPMSYNC_PREVIEW_TIMEOUT_MS / 1000);
		return;
	}
	if (j->si.si_code == CLD_KILLED || j->si.si_code == CLD_DUMPED) {
		set_error(j, -EIO, "part %s: the image converter was stopped (signal %d): %s", what,
			  j->si.si_status, signal_text(j->si.si_status));
		return;
	}
	if (j->resp.len < CPMSYNC_PREVIEW_HEADER_SIZE ||
	    cpmsync_preview_response_decode((const uint8_t *)j->resp.data, &resp) < 0 ||
	    j->resp.len != CPMSYNC_PREVIEW_HEADER_SIZE + resp.length) {
		set_error(j, -EIO,
			  "part %s: the image converter gave no valid answer (exit status %d)",
			  what, j->si.si_status);
		return;
	}
	body = (const unsigned char *)j->resp.data + CPMSYNC_PREVIEW_HEADER_SIZE;
	if (resp.status != CPMSYNC_PREVIEW_OK) {
		int r = resp.status == CPMSYNC_PREVIEW_E_TOO_LARGE ? -EFBIG
			: resp.status == CPMSYNC_PREVIEW_E_NOT_IMAGE ||
					resp.status == CPMSYNC_PREVIEW_E_DAMAGED
				? -EBADMSG
				: -EIO;
		struct buf t = BUF_INIT(CPMSYNC_PREVIEW_MAX_TEXT * 2);

		/* The helper's text, made safe (it came from a sandbox). */
		for (size_t i = 0; i < resp.length; i++)
			buf_append_char(&t,
					body[i] >= 0x20 && body[i] < 0x7f ? (char)body[i] : '?');
		set_error(j, r, "part %s: %s", what, t.data ? t.data : "");
		buf_free(&t);
		return;
	}
	if (!magic_ok(j->fmt, body, resp.length)) {
		set_error(j, -EIO, "part %s: the image converter's output is not %s", what,
			  j->format);
		return;
	}
	j->data = malloc(resp.length);
	if (!j->data) {
		set_error(j, -ENOMEM, "out of memory");
		return;
	}
	memcpy(j->data, body, resp.length);
	j->len = resp.length;
	j->r = 0;
}

static void helper_maybe_done(struct job *j)
{
	struct cpmsync_previewer *p = j->p;

	if (!j->sock_done || !j->exited)
		return;
	j->sock_src = cpmsync_loop_source_remove(j->sock_src);
	j->pid_src = cpmsync_loop_source_remove(j->pid_src);
	j->timer = cpmsync_loop_source_remove(j->timer);
	close(j->sock);
	close(j->pidfd);
	j->sock = j->pidfd = -1;
	if (p)
		p->running--;
	helper_result(j);
	keep(j);
	deliver(j);
	if (p) {
		helper_next(p);
		spare_refill_later(p);
	}
}

static void on_sock(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct job *j = userdata;
	char chunk[65536];
	ssize_t n;

	(void)src;
	(void)events;
	n = read(fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0 && buf_append(&j->resp, chunk, (size_t)n) >= 0)
		return;
	/* EOF, an error, or more than the protocol allows: done reading
	 * (too much leaves the response unreadable, which is an error). */
	if (n > 0)
		j->resp.len = 0;
	j->sock_done = true;
	j->sock_src = cpmsync_loop_source_remove(j->sock_src);
	helper_maybe_done(j);
}

static void on_exit_fd(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct job *j = userdata;

	(void)src;
	(void)events;
	memset(&j->si, 0, sizeof(j->si));
	if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)fd, &j->si, WEXITED | WNOHANG) < 0 ||
	    j->si.si_pid == 0)
		return;
	j->exited = true;
	j->pid_src = cpmsync_loop_source_remove(j->pid_src);
	/* A helper that exited without closing cleanly: the socket is at
	 * EOF now in any case. */
	helper_maybe_done(j);
}

static void on_timeout(struct cpmsync_loop_source *src, void *userdata)
{
	struct job *j = userdata;

	(void)src;
	j->timed_out = true;
	j->timer = cpmsync_loop_source_remove(j->timer);
	pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
}

static void child_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };
	struct rlimit cur;

	if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < value)
		rl.rlim_cur = rl.rlim_max = cur.rlim_max;
	(void)setrlimit(resource, &rl);
}

/* Between fork() and exec: async-signal-safe calls only. */
static void child(const char *helper, int sock, int devnull)
{
	char *const argv[] = { (char *)"cpm-preview", NULL };
	char *const envp[] = { NULL };
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (dup2(sock, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
		_exit(127);
	close_range(3, ~0u, 0);
	child_limit(RLIMIT_AS, HELPER_AS_LIMIT);
	child_limit(RLIMIT_CPU, HELPER_CPU_LIMIT);
	child_limit(RLIMIT_CORE, 0);
	child_limit(RLIMIT_FSIZE, 0);
	execve(helper, argv, envp);
	_exit(127);
}

/* A helper process, started and waiting for its request. */
static int proc_start(struct cpmsync_previewer *p, struct proc *ret)
{
	int sv[2] = { -1, -1 }, devnull, r;
	pid_t pid;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		if (devnull >= 0)
			close(devnull);
		return r;
	}
	pid = fork();
	if (pid == 0)
		child(p->helper, sv[1], devnull);
	r = pid < 0 ? -errno : 0;
	close(sv[1]);
	close(devnull);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	ret->pid = pid;
	ret->sock = sv[0];
	ret->pidfd = pidfd_open(pid, 0);
	if (ret->pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(sv[0]);
		return r;
	}
	return 0;
}

/* Kills and reaps. */
static void proc_kill(struct proc *pr)
{
	siginfo_t si;

	pidfd_send_signal(pr->pidfd, SIGKILL, NULL, 0);
	(void)waitid((idtype_t)3 /* P_PIDFD */, (id_t)pr->pidfd, &si, WEXITED);
	close(pr->pidfd);
	close(pr->sock);
	pr->pidfd = pr->sock = -1;
}

static bool proc_alive(const struct proc *pr)
{
	siginfo_t si = { 0 };

	return waitid((idtype_t)3 /* P_PIDFD */, (id_t)pr->pidfd, &si,
		      WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == 0;
}

static void spare_retire(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_previewer *p = userdata;

	(void)src;
	p->spare_timer = cpmsync_loop_source_remove(p->spare_timer);
	if (p->have_spare)
		proc_kill(&p->spare);
	p->have_spare = false;
}

/* Keeps one helper started ahead of the next request (the start-up cost
 * is most of a small preview's), retired after SPARE_IDLE_MS unused. */
static void spare_refill(struct cpmsync_previewer *p)
{
	if (!p->have_spare && proc_start(p, &p->spare) == 0)
		p->have_spare = true;
	if (!p->have_spare)
		return;
	if (p->spare_timer)
		cpmsync_loop_timer_set(p->spare_timer, SPARE_IDLE_MS, 0);
	else
		(void)cpmsync_loop_add_timer(p->loop, SPARE_IDLE_MS, 0, spare_retire, p, NULL,
					     &p->spare_timer);
}

static void spare_refill_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_previewer *p = userdata;

	(void)src;
	p->refill = cpmsync_loop_source_remove(p->refill);
	spare_refill(p);
}

/* The next spare from the loop, after the preview just delivered has
 * gone out to its caller (the fork is not on its path either). */
static void spare_refill_later(struct cpmsync_previewer *p)
{
	if (!p->have_spare && !p->refill &&
	    cpmsync_loop_defer(p->loop, spare_refill_cb, p, NULL, &p->refill) < 0)
		spare_refill(p);
}

/* The request and the image's fd, in one message. */
static void send_request(int sock, const uint8_t *hdr, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = (void *)hdr, .iov_len = CPMSYNC_PREVIEW_HEADER_SIZE };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *c;

	memset(&control, 0, sizeof(control));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	/* 32 bytes into an empty socket buffer: never blocks.  A helper that
	 * is gone already is told by its exit. */
	while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* The CPUs this process may run on. */
static unsigned online_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

static bool jobs_queued(const struct cpmsync_previewer *p)
{
	for (const struct job *j = p->jobs; j; j = j->next)
		if (j->stage == ST_QUEUED)
			return true;
	return false;
}

static int helper_spawn(struct job *j)
{
	struct cpmsync_previewer *p = j->p;
	struct cpmsync_preview_request req = { .format = j->fmt,
					       .width = j->width,
					       .height = j->height };
	uint8_t hdr[CPMSYNC_PREVIEW_HEADER_SIZE];
	struct proc pr;
	struct stat st;
	int r;

	if (fstat(j->input_fd, &st) < 0)
		return -errno;
	req.input_size = (uint64_t)st.st_size;
	r = cpmsync_preview_request_encode(&req, hdr);
	if (r < 0)
		return r;
	if (access(p->helper, X_OK) < 0) {
		set_error(j, -CPMSYNC_E_NOT_SUPPORTED, "no image converter: %s: %s", p->helper,
			  strerror(errno));
		return -CPMSYNC_E_NOT_SUPPORTED;
	}
	if (p->have_spare) {
		p->have_spare = false;
		if (proc_alive(&p->spare)) {
			pr = p->spare;
		} else {
			proc_kill(&p->spare); /* reaps it */
			r = proc_start(p, &pr);
		}
	} else {
		r = proc_start(p, &pr);
	}
	if (r < 0)
		return r;
	j->pid = pr.pid;
	j->pidfd = pr.pidfd;
	j->sock = pr.sock;
	send_request(j->sock, hdr, j->input_fd);
	fcntl(j->sock, F_SETFL, O_NONBLOCK);
	buf_init(&j->resp, CPMSYNC_PREVIEW_HEADER_SIZE + CPMSYNC_PREVIEW_MAX_OUTPUT);
	r = cpmsync_loop_add_fd(p->loop, j->sock, CPMSYNC_LOOP_IN, on_sock, j, NULL, &j->sock_src);
	if (r >= 0)
		r = cpmsync_loop_add_fd(p->loop, j->pidfd, CPMSYNC_LOOP_IN, on_exit_fd, j, NULL,
					&j->pid_src);
	if (r >= 0)
		r = cpmsync_loop_add_timer(p->loop, CPMSYNC_PREVIEW_TIMEOUT_MS, 0, on_timeout, j,
					   NULL, &j->timer);
	if (r < 0) {
		j->sock_src = cpmsync_loop_source_remove(j->sock_src);
		j->pid_src = cpmsync_loop_source_remove(j->pid_src);
		pr = (struct proc){ .pid = j->pid, .pidfd = j->pidfd, .sock = j->sock };
		proc_kill(&pr);
		j->pidfd = j->sock = -1;
		return r;
	}
	close(j->input_fd);
	j->input_fd = -1;
	j->stage = ST_HELPER;
	p->running++;
	/* The next spare now if a preview waits for it, or if there is a
	 * CPU to spare for it; else once this one is delivered
	 * (helper_maybe_done): its start-up (~80 ms of CPU: the dynamic
	 * linking of libvips and its hundred libraries, then its warm-up)
	 * would compete with this preview for the CPUs. */
	if (jobs_queued(p) || online_cpus() > p->running + 1)
		spare_refill(p);
	return 0;
}

/* Starts queued jobs while there is room. */
static void helper_next(struct cpmsync_previewer *p)
{
	for (struct job *j = p->jobs, *next; j && p->running < CPMSYNC_PREVIEW_MAX_RUNNING;
	     j = next) {
		int r;

		next = j->next;
		if (j->stage != ST_QUEUED)
			continue;
		r = helper_spawn(j);
		if (r < 0) {
			if (!j->reason)
				set_error(j, r, "cannot start the image converter: %s",
					  cpmsync_strerror(r));
			else
				j->r = r;
			j->stage = ST_NEW; /* not queued any more */
			deliver_later(j);
		}
	}
}

/* The decoded image to the helper (now, or when a slot frees). */
static void helper_queue(struct job *j, const void *data, size_t len)
{
	int fd = memfd_create("cpmsync-preview-in", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r = fd < 0 ? -errno : cpmsync_write_all(fd, data, len);

	if (r >= 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		r = -errno;
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		set_error(j, r, "cannot hand the image over: %s", cpmsync_strerror(r));
		deliver_later(j);
		return;
	}
	j->input_fd = fd;
	j->stage = ST_QUEUED;
	helper_next(j->p);
}

/* ------------------------------------------------------------------ */
/* The part */

static bool image_type(const char *type)
{
	static const char *const types[] = { "image/jpeg", "image/jpg",	 "image/pjpeg",
					     "image/png",  "image/webp", "image/gif" };

	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

/* The part's header and content are at hand: convert. */
static void convert_part(struct job *j, const char *header, size_t hlen, const char *content,
			 size_t clen)
{
	struct part_info pi;
	struct buf dec, out;
	int r;

	part_info_parse(header, hlen, &pi);
	if (strncmp(pi.type, "multipart/", 10) == 0 ||
	    (j->fmt == 0 && strncmp(pi.type, "text/", 5) != 0) ||
	    (j->fmt != 0 && !image_type(pi.type))) {
		set_error(j, -CPMSYNC_E_NOT_SUPPORTED, "%s (no %s preview of it)", pi.type,
			  j->format);
		deliver_later(j);
		return;
	}
	buf_init(&dec, j->fmt ? CPMSYNC_PREVIEW_MAX_INPUT : MAX_PART);
	r = transfer_decode(pi.encoding, content, clen, &dec);
	if (r == -E2BIG) {
		set_error(j, -EFBIG, "part %s: larger than %u MiB", *j->section ? j->section : "",
			  CPMSYNC_PREVIEW_MAX_INPUT >> 20);
	} else if (r < 0) {
		set_error(j, r, "%s", cpmsync_strerror(r));
	} else if (dec.len == 0) {
		set_error(j, -EBADMSG, "part %s: empty", *j->section ? j->section : "the body");
		r = -EBADMSG;
	}
	if (r < 0) {
		buf_free(&dec);
		deliver_later(j);
		return;
	}
	if (j->fmt) {
		helper_queue(j, dec.data, dec.len);
		buf_free(&dec);
		return;
	}
	out = BUF_INIT(CPMSYNC_PREVIEW_MAX_CACHED);
	r = part_text_excerpt(dec.data, dec.len, pi.charset, strcmp(pi.type, "text/html") == 0,
			      j->width, j->height, &out);
	buf_free(&dec);
	if (r < 0) {
		buf_free(&out);
		set_error(j, r, "%s", cpmsync_strerror(r));
	} else {
		j->len = out.len;
		j->data = buf_steal(&out);
		j->r = 0;
		keep(j);
	}
	deliver_later(j);
}

/* The sections of the part's MIME header and content. */
static void part_sections(const char *section, char *hdr, size_t hcap, char *part, size_t pcap)
{
	if (!*section) {
		snprintf(hdr, hcap, "HEADER");
		snprintf(part, pcap, "TEXT");
	} else {
		snprintf(hdr, hcap, "%s.MIME", section);
		snprintf(part, pcap, "%s", section);
	}
}

static void from_store(struct job *j)
{
	char hs[CPMSYNC_SECTION_MAX_LEN + 8], ps[CPMSYNC_SECTION_MAX_LEN + 8];
	size_t hoff, hlen, poff, plen;
	struct stat st;
	char *map = NULL;
	int fd, r;

	fd = memfd_create("cpmsync-preview-body", MFD_CLOEXEC);
	r = fd < 0 ? -errno : cpmsync_store_read_body(j->p->store, j->message_id, fd);
	if (r >= 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r >= 0 && st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			r = -errno;
		}
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		set_error(j, r, "%s", cpmsync_store_error(j->p->store));
		deliver_later(j);
		return;
	}
	part_sections(j->section, hs, sizeof(hs), ps, sizeof(ps));
	r = cpmsync_message_section(map, map ? (size_t)st.st_size : 0, hs, &hoff, &hlen);
	if (r >= 0)
		r = cpmsync_message_section(map, map ? (size_t)st.st_size : 0, ps, &poff, &plen);
	if (r == -EINVAL)
		set_error(j, r, "section: '%s' is not a valid section", j->section);
	else if (r < 0)
		set_error(j, r == -CPMSYNC_E_NOT_FOUND ? r : -CPMSYNC_E_NOT_FOUND,
			  "section: the message has no part '%s'", j->section);
	if (r < 0)
		deliver_later(j);
	else
		convert_part(j, map + hoff, hlen, map + poff, plen);
	if (map)
		munmap(map, (size_t)st.st_size);
}

static void orphan_check(struct job *j, int fd)
{
	if (fd >= 0)
		close(fd);
	job_free(j);
}

static void fetched_part(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct job *j = userdata;
	char *data = NULL;
	size_t len = 0;

	(void)size;
	if (!j->p)
		return orphan_check(j, fd);
	if (r >= 0) {
		r = cpmsync_read_all(fd, MAX_PART, &data, &len);
		close(fd);
		if (r == -EFBIG)
			set_error(j, -EFBIG, "part %s: too large for a preview", j->section);
		else if (r < 0)
			set_error(j, r, "%s", cpmsync_strerror(r));
	} else {
		set_error(j, r, "%s", reason ? reason : cpmsync_strerror(r));
	}
	if (r < 0) {
		deliver(j);
		return;
	}
	/* A server answers an empty string for a part the message does not
	 * have (a real part's MIME header holds at least its blank line). */
	if (j->header_len == 0 && len == 0) {
		set_error(j, -CPMSYNC_E_NOT_FOUND, "section: the message has no part '%s'",
			  j->section);
		deliver(j);
	} else {
		convert_part(j, j->header, j->header_len, data ? data : "", len);
	}
	free(data);
}

static void fetched_header(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct job *j = userdata;
	char hs[CPMSYNC_SECTION_MAX_LEN + 8], ps[CPMSYNC_SECTION_MAX_LEN + 8];

	(void)size;
	if (!j->p)
		return orphan_check(j, fd);
	if (r >= 0) {
		r = cpmsync_read_all(fd, MAX_HEADER, &j->header, &j->header_len);
		close(fd);
		if (r < 0)
			set_error(j, r, "the part's header: %s", cpmsync_strerror(r));
	} else {
		set_error(j, r, "%s", reason ? reason : cpmsync_strerror(r));
	}
	if (r < 0) {
		deliver(j);
		return;
	}
	part_sections(j->section, hs, sizeof(hs), ps, sizeof(ps));
	j->stage = ST_FETCH_PART;
	r = cpmsync_session_fetch(j->session, j->message_id, ps, fetched_part, j);
	if (r < 0) {
		set_error(j, r, "%s", cpmsync_strerror(r));
		deliver(j);
	}
}

struct brief {
	bool found, has_body;
	uint32_t uid;
};

static int brief_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct brief *b = userdata;

	b->found = true;
	b->has_body = m->has_body;
	b->uid = m->uid;
	return 0;
}

static void local(struct job *j)
{
	char hs[CPMSYNC_SECTION_MAX_LEN + 8], ps[CPMSYNC_SECTION_MAX_LEN + 8];
	struct brief b = { 0 };
	int r;

	r = cpmsync_store_get_message(j->p->store, j->message_id, brief_cb, &b);
	if (r < 0 || !b.found) {
		set_error(j, -CPMSYNC_E_NOT_FOUND, "id: no message %lld", (long long)j->message_id);
		deliver_later(j);
		return;
	}
	if (b.has_body) {
		from_store(j);
		return;
	}
	if (!j->session || !cpmsync_session_get_online(j->session)) {
		set_error(j, -CPMSYNC_E_OFFLINE,
			  "the body is not stored and the account is offline");
		deliver_later(j);
		return;
	}
	if (b.uid == 0) {
		set_error(j, -CPMSYNC_E_NOT_FOUND,
			  "id: message %lld has no stored body and is not on the server yet",
			  (long long)j->message_id);
		deliver_later(j);
		return;
	}
	part_sections(j->section, hs, sizeof(hs), ps, sizeof(ps));
	j->stage = ST_FETCH_HEADER;
	r = cpmsync_session_fetch(j->session, j->message_id, hs, fetched_header, j);
	if (r < 0) {
		set_error(j, r, "%s", cpmsync_strerror(r));
		deliver_later(j);
	}
}

/* CONVERT's answer: the preview, or on the server's refusal, a local try. */
static void converted(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct job *j = userdata;

	(void)size;
	if (!j->p)
		return orphan_check(j, fd);
	if (r >= 0) {
		char *data = NULL;
		size_t len = 0;

		r = cpmsync_read_all(fd, CPMSYNC_PREVIEW_MAX_OUTPUT, &data, &len);
		close(fd);
		if (r >= 0) {
			j->data = data;
			j->len = len;
			j->r = 0;
			keep(j);
		} else {
			free(data);
			set_error(j, r, "the server's preview: %s", cpmsync_strerror(r));
		}
		deliver(j);
		return;
	}
	if (r == -CPMSYNC_E_SERVER || r == -CPMSYNC_E_NOT_SUPPORTED) {
		/* The server could not convert this one: try here. */
		j->stage = ST_NEW;
		local(j);
		return;
	}
	set_error(j, r, "%s", reason ? reason : cpmsync_strerror(r));
	deliver(j);
}

static bool format_valid(const char *format, uint32_t *ret_fmt)
{
	*ret_fmt = cpmsync_preview_format_from_type(format);
	return *ret_fmt != 0 || strcmp(format, "text/plain") == 0;
}

static struct job *job_new(struct cpmsync_previewer *p, const char *format, uint32_t width,
			   uint32_t height, cpmsync_data_cb_t cb, void *userdata)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->p = p;
	j->input_fd = j->sock = j->pidfd = -1;
	j->width = width;
	j->height = height;
	j->cb = cb;
	j->userdata = userdata;
	j->format = strdup(format);
	j->section = strdup("");
	if (!j->format || !j->section) {
		job_free(j);
		return NULL;
	}
	(void)format_valid(format, &j->fmt);
	j->next = p->jobs;
	p->jobs = j;
	return j;
}

int cpmsync_preview(struct cpmsync_previewer *p, struct cpmsync_session *session,
		    int64_t message_id, const char *section, const char *format, uint32_t width,
		    uint32_t height, cpmsync_data_cb_t cb, void *userdata)
{
	uint32_t fmt;
	struct job *j;
	int r;

	if (!p || !section || !format || !cb || width < 1 || height < 1 ||
	    width > CPMSYNC_PREVIEW_MAX_SIDE || height > CPMSYNC_PREVIEW_MAX_SIDE ||
	    strlen(section) > CPMSYNC_SECTION_MAX_LEN || !format_valid(format, &fmt))
		return -EINVAL;
	j = job_new(p, format, width, height, cb, userdata);
	if (!j)
		return -ENOMEM;
	free(j->section);
	j->section = strdup(section);
	if (!j->section) {
		job_unlink(j);
		job_free(j);
		return -ENOMEM;
	}
	j->message_id = message_id;
	j->session = session;
	j->cache = true;
	r = cpmsync_store_preview_get(p->store, message_id, section, format, width, height,
				      &j->data, &j->len);
	if (r == 0) {
		j->r = 0;
		deliver_later(j);
		return 0;
	}
	/* CONVERT for images only: RFC 5259 has no "width x height
	 * characters" for text, the excerpt is made here. */
	if (fmt && session && cpmsync_session_get_online(session) &&
	    cpmsync_session_has_capability(session, "CONVERT")) {
		j->stage = ST_CONVERT;
		r = cpmsync_session_preview(session, message_id, section, format, width, height,
					    converted, j);
		if (r >= 0)
			return 0;
	}
	local(j);
	return 0;
}

int cpmsync_preview_image(struct cpmsync_previewer *p, const void *data, size_t len,
			  const char *format, uint32_t width, uint32_t height, cpmsync_data_cb_t cb,
			  void *userdata)
{
	struct job *j;

	if (!p || (!data && len) || !format || !cb || width < 1 || height < 1 ||
	    width > CPMSYNC_PREVIEW_MAX_SIDE || height > CPMSYNC_PREVIEW_MAX_SIDE ||
	    !cpmsync_preview_format_from_type(format))
		return -EINVAL;
	j = job_new(p, format, width, height, cb, userdata);
	if (!j)
		return -ENOMEM;
	if (len == 0 || len > CPMSYNC_PREVIEW_MAX_INPUT) {
		set_error(j, len ? -EFBIG : -EBADMSG, "the image is %s",
			  len ? "larger than the limit" : "empty");
		deliver_later(j);
		return 0;
	}
	helper_queue(j, data, len);
	return 0;
}

int cpmsync_previewer_new(struct cpmsync_loop *loop, struct cpmsync_store *store,
			  const char *helper, struct cpmsync_previewer **ret)
{
	struct cpmsync_previewer *p;

	if (!loop || !ret)
		return -EINVAL;
	if (!helper)
		helper = secure_getenv("CPMSYNC_PREVIEW_HELPER");
	if (!helper || !*helper)
		helper = HELPER_DEFAULT;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->store = store;
	p->helper = strdup(helper);
	if (!p->helper) {
		free(p);
		return -ENOMEM;
	}
	*ret = p;
	return 0;
}

struct cpmsync_previewer *cpmsync_previewer_free(struct cpmsync_previewer *p)
{
	if (!p)
		return NULL;
	while (p->jobs) {
		struct job *j = p->jobs;
		bool waits_on_session = j->stage == ST_CONVERT || j->stage == ST_FETCH_HEADER ||
					j->stage == ST_FETCH_PART;

		p->jobs = j->next;
		j->next = NULL;
		if (j->stage == ST_HELPER) {
			pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
			waitpid(j->pid, NULL, 0);
		}
		j->p = NULL;
		j->cb(-CPMSYNC_E_CANCELED, "the preview was cancelled", -1, 0, j->userdata);
		/* A session callback still to come frees it (orphan_check). */
		if (!waits_on_session)
			job_free(j);
	}
	p->spare_timer = cpmsync_loop_source_remove(p->spare_timer);
	p->refill = cpmsync_loop_source_remove(p->refill);
	if (p->have_spare)
		proc_kill(&p->spare);
	free(p->helper);
	free(p);
	return NULL;
}
