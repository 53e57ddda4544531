/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the server's side of a SCRAM-SHA-256 exchange.  The input
 * is server-first, a NUL byte, then server-final; the client nonce is
 * fixed ("fuzznonce") so that an input can extend it.  Checks that a
 * refused message leaves no answer and an error text, and that nothing
 * is verified without a matching signature.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *first = (const char *)data, *final = NULL;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t first_len = nul ? (size_t)(nul - data) : size, final_len = 0;
	struct sasl_scram *s = NULL;
	char *msg = NULL;
	int r;

	if (nul) {
		final = (const char *)nul + 1;
		final_len = size - first_len - 1;
	}
	if (sasl_scram_new("user", "pencil", &s) < 0)
		return 0;
	r = sasl_scram_set_nonce_for_test(s, "fuzznonce");
	assert(r == 0);
	r = sasl_scram_client_first(s, &msg);
	assert(r == 0 && strcmp(msg, "n,,n=user,r=fuzznonce") == 0);
	free(msg);
	msg = NULL;

	r = sasl_scram_client_final(s, first, first_len, &msg);
	if (r < 0) {
		assert(!msg && sasl_scram_error(s)[0] && !sasl_scram_has_final(s));
		sasl_scram_free(s);
		return 0;
	}
	assert(msg && strncmp(msg, "c=biws,r=fuzznonce", 18) == 0 && strstr(msg, ",p="));
	assert(sasl_scram_has_final(s));
	free(msg);
	if (final) {
		r = sasl_scram_verify_server_final(s, final, final_len);
		assert((r == 0) == sasl_scram_verified(s));
		if (r < 0)
			assert(sasl_scram_error(s)[0]);
	}
	sasl_scram_free(s);
	return 0;
}
