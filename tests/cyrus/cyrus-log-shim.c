/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * LD_PRELOAD shim for the throwaway Cyrus of tests/cyrus/cyrus-ctl.sh.
 * Cyrus logs only through syslog(3), and the test machines have no
 * /dev/log: every syslog() of master and its services is appended to
 * $CYRUS_SHIM_LOG instead.  With CYRUS_SHIM_NOFSYNC=1, fsync() and
 * fdatasync() return at once (a test server's data need not survive a
 * power cut; it makes APPENDs several times faster).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char ident[64] = "cyrus";

void openlog(const char *id, int option, int facility)
{
	(void)option;
	(void)facility;
	if (id)
		snprintf(ident, sizeof(ident), "%s", id);
}

void closelog(void)
{
}

void vsyslog(int pri, const char *fmt, va_list ap)
{
	const char *path = getenv("CYRUS_SHIM_LOG");
	char line[8192];
	struct timespec ts;
	struct tm tm;
	int fd, n, m;

	(void)pri;
	if (!path)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s[%d]: ", tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, ident, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0) {
		/* nothing to do: the log is best effort */
	}
	close(fd);
}

void syslog(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsyslog(pri, fmt, ap);
	va_end(ap);
}

/* What glibc's syslog() becomes with _FORTIFY_SOURCE. */
void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, fmt);
	vsyslog(pri, fmt, ap);
	va_end(ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	vsyslog(pri, fmt, ap);
}

static int nofsync(void)
{
	const char *v = getenv("CYRUS_SHIM_NOFSYNC");

	return v && strcmp(v, "1") == 0;
}

int fsync(int fd)
{
	if (nofsync())
		return 0;
	return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
	if (nofsync())
		return 0;
	return (int)syscall(SYS_fdatasync, fd);
}
