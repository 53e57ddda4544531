/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * syscall-filter ALLOW-FILE PROGRAM [ARG...]: runs PROGRAM under the
 * system call filter systemd makes of a unit's SystemCallFilter= allow
 * list with SystemCallErrorNumber=EPERM, for a test on a machine whose
 * PID 1 is not systemd: every system call named in ALLOW-FILE (one a
 * line, the expansion of the unit's groups by `systemd-analyze
 * syscall-filter`, which the caller makes) is allowed, any other fails
 * with EPERM; native architecture only (SystemCallArchitectures=native);
 * no_new_privs set, as systemd sets it in a user manager.  A name this
 * architecture does not have is skipped, as systemd skips it.  The caller
 * adds @default, which systemd always allows.  Exits 2 on a usage or
 * set-up error, with a message; else PROGRAM's status (127: not run).
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[128];
	unsigned allowed = 0, unknown = 0;
	scmp_filter_ctx ctx;
	FILE *f;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: syscall-filter ALLOW-FILE PROGRAM [ARG...]\n");
		return 2;
	}
	f = fopen(argv[1], "r");
	if (!f) {
		fprintf(stderr, "syscall-filter: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx) {
		fprintf(stderr, "syscall-filter: seccomp_init failed\n");
		return 2;
	}
	while (fgets(line, sizeof(line), f)) {
		int nr;

		line[strcspn(line, " \t\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (line[0] == '@') {
			fprintf(stderr, "syscall-filter: %s: a group, not expanded\n", line);
			return 2;
		}
		nr = seccomp_syscall_resolve_name(line);
		if (nr == __NR_SCMP_ERROR) {
			unknown++;
			continue;
		}
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0) {
			fprintf(stderr, "syscall-filter: %s: %s\n", line, strerror(-r));
			return 2;
		}
		allowed++;
	}
	fclose(f);
	if (allowed == 0) {
		fprintf(stderr, "syscall-filter: %s names no system call\n", argv[1]);
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "syscall-filter: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
		return 2;
	}
	r = seccomp_load(ctx);
	if (r < 0) {
		fprintf(stderr, "syscall-filter: seccomp_load: %s\n", strerror(-r));
		return 2;
	}
	seccomp_release(ctx);
	fprintf(stderr, "syscall-filter: %u system calls allowed (%u not on this architecture)\n",
		allowed, unknown);
	execv(argv[2], argv + 2);
	fprintf(stderr, "syscall-filter: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
