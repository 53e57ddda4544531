/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_account_check: connect, secure, authenticate, read the
 * capabilities after login, log out.  Nothing is selected or changed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/account.h>
#include <cpmsync/error.h>

#include "imap/imap-client.h"
#include "util/macro.h"

struct cpmsync_check {
	struct cpmsync_loop *loop;
	struct imap_client *client;
	cpmsync_check_cb_t cb;
	void *userdata;
	char *caps; /* post-login capabilities, once READY */
	bool reported;
	struct cpmsync_loop_source *finish;
	int r;
	char *reason;
};

static void check_free(struct cpmsync_check *chk)
{
	imap_client_free(chk->client);
	free(chk->caps);
	free(chk->reason);
	free(chk);
}

/* Reports from a deferred call so that the client is never freed from
 * inside one of its own callbacks. */
static void finish_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_check *chk = userdata;

	(void)src;
	if (chk->cb)
		chk->cb(chk->r, chk->r == 0 ? chk->caps : NULL, chk->r == 0 ? NULL : chk->reason,
			chk->userdata);
	check_free(chk);
}

static void finish(struct cpmsync_check *chk, int r, const char *reason)
{
	if (chk->reported)
		return;
	chk->reported = true;
	chk->r = r;
	chk->reason = strdup(reason ? reason : cpmsync_strerror(r));
	if (cpmsync_loop_defer(chk->loop, finish_cb, chk, NULL, &chk->finish) < 0)
		finish_cb(NULL, chk); /* out of memory: report now */
}

static void state_cb(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct cpmsync_check *chk = userdata;

	if (r == 0 && imap_client_get_state(client) == IMAP_CLIENT_READY) {
		chk->caps = strdup(imap_client_caps(client)->text ? imap_client_caps(client)->text
								  : "");
		if (!chk->caps) {
			finish(chk, -ENOMEM, NULL);
			return;
		}
		imap_client_logout(client);
		return;
	}
	/* Closed: after a successful login this is the logout. */
	if (chk->caps)
		finish(chk, 0, NULL);
	else
		finish(chk, r < 0 ? r : -CPMSYNC_E_DISCONNECTED, reason);
}

int cpmsync_account_check(struct cpmsync_loop *loop, const struct cpmsync_account *account,
			  cpmsync_check_cb_t cb, void *userdata, struct cpmsync_check **ret_check)
{
	struct imap_client_callbacks callbacks = { .state = state_cb };
	struct cpmsync_check *chk;
	int r;

	if (!loop || !account || !account->host || !account->user || !cb)
		return -EINVAL;
	chk = calloc(1, sizeof(*chk));
	if (!chk)
		return -ENOMEM;
	chk->loop = loop;
	chk->cb = cb;
	chk->userdata = userdata;
	r = imap_client_new(loop, account, &callbacks, chk, &chk->client);
	if (r < 0) {
		free(chk);
		return r;
	}
	r = imap_client_connect(chk->client);
	if (r < 0) {
		/* Report failures to start from the loop too. */
		finish(chk, r,
		       imap_client_error(chk->client)[0] ? imap_client_error(chk->client) : NULL);
	}
	if (ret_check)
		*ret_check = chk;
	return 0;
}

void cpmsync_check_cancel(struct cpmsync_check *chk)
{
	if (!chk)
		return;
	chk->cb = NULL;
	if (!chk->reported)
		finish(chk, -CPMSYNC_E_CANCELED, NULL);
}
