/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The IMAP client against a server that says whatever the fuzzer wants:
 * the input is what the "server" sends over a socketpair (then it closes).
 * The client must end in a clean failure or logout, never crash, leak or
 * hang.  Once logged in it queues a few commands, a literal among them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>

#include "imap/imap-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_ctx {
	bool closed;
	int commands;
};

static int password_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup("pw");
	return *ret ? 0 : -ENOMEM;
}

static void cmd_cb(struct imap_client *client, const struct imap_cmd_result *res, void *userdata)
{
	(void)client;
	(void)res;
	((struct fuzz_ctx *)userdata)->commands++;
}

static void state_cb(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct fuzz_ctx *ctx = userdata;
	struct imap_cmd *cmd;

	(void)reason;
	if (r != 0 || imap_client_get_state(client) != IMAP_CLIENT_READY) {
		ctx->closed = true;
		return;
	}
	imap_client_simple(client, 0, cmd_cb, ctx, "NOOP");
	if (imap_cmd_new(client, 0, cmd_cb, ctx, &cmd) == 0) {
		imap_cmd_add(cmd, "APPEND ");
		imap_cmd_add_mailbox(cmd, "Sent/Caf\xc3\xa9");
		imap_cmd_add(cmd, " ");
		imap_cmd_add_literal(cmd, "hello\r\n", 7, false);
		imap_cmd_submit(cmd);
	}
	imap_client_simple(client, 0, cmd_cb, ctx, "SELECT INBOX (QRESYNC (1 2))");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_client_callbacks cb = { .state = state_cb };
	struct cpmsync_account a = {
		.name = "fuzz",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.password_cb = password_cb,
		.connect_timeout_ms = 200,
		.command_timeout_ms = 200,
	};
	struct fuzz_ctx ctx = { 0 };
	struct cpmsync_loop *loop = NULL;
	struct imap_client *client = NULL;
	size_t sent = 0;
	bool shut = false;
	int sv[2];

	if (size > 1 << 16)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (cpmsync_loop_new(&loop) < 0 || imap_client_new(loop, &a, &cb, &ctx, &client) < 0 ||
	    imap_client_connect_fd(client, sv[0]) < 0)
		goto out;
	for (int i = 0; i < 10000 && !ctx.closed; i++) {
		char sink[4096];

		while (sent < size) {
			ssize_t n = write(sv[1], data + sent, size - sent);

			if (n <= 0)
				break;
			sent += (size_t)n;
		}
		if (sent == size && !shut) {
			shutdown(sv[1], SHUT_WR);
			shut = true;
		}
		while (read(sv[1], sink, sizeof(sink)) > 0)
			;
		cpmsync_loop_iterate(loop, 10);
	}
	if (getenv("FUZZ_DEBUG"))
		fprintf(stderr, "commands %d, state %s: %s\n", ctx.commands,
			imap_client_state_name(imap_client_get_state(client)),
			imap_client_error(client));
	if (!ctx.closed)
		abort(); /* the client hung on a closed connection */
out:
	imap_client_free(client);
	cpmsync_loop_free(loop);
	close(sv[1]);
	return 0;
}
