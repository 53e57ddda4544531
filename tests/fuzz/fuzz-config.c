/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: arbitrary bytes as cpmsync.conf.  Parses from memory only
 * (no file I/O, no password lookups), then exercises the accessors on a
 * configuration that parsed.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/account.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	char *error = NULL;
	int r;

	r = config_parse_buffer("/fuzz/cpmsync.conf", (const char *)data, size, &c, &error);
	if (r < 0) {
		/* Failure: a message, no config. */
		assert(error && strncmp(error, "/fuzz/cpmsync.conf:", 19) == 0);
		assert(!c);
		free(error);
		return 0;
	}
	assert(c && !error);
	assert(c->database && c->database[0] == '/');
	assert(c->outbox && c->outbox[0] == '/');
	assert(c->n_accounts <= CONFIG_MAX_ACCOUNTS);
	assert(c->n_warnings <= CONFIG_MAX_WARNINGS + 1);
	for (size_t i = 0; i < c->n_accounts; i++) {
		const struct config_account *a = &c->accounts[i];
		struct cpmsync_account s;

		assert(config_find_account(c, a->name) == a);
		assert(config_account_equal(a, a));
		assert(a->host && a->user && a->port && a->folders && a->folders[0]);
		/* one password source, or none with a client certificate */
		assert(!a->password_file != !a->password_command ||
		       (!a->password_file && a->client_cert));
		config_account_to_settings(a, &s);
		assert(s.name == a->name && s.port == a->port);
		if (i > 0)
			assert(!config_account_equal(a, &c->accounts[0]));
	}
	config_free(c);
	return 0;
}
