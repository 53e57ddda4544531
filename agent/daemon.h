/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * cpm-syncd's default mode: one cpmsync_session per configured account on
 * one loop, the D-Bus service, the outbox and the configuration watch,
 * until SIGTERM or SIGINT.  SIGHUP (like a change of the file) reloads the
 * configuration.
 */

#include <stdbool.h>

#include "config.h"

struct daemon_options {
	const char *config_path; /* as given; made absolute */
	bool no_dbus;
	const char *bus_address; /* NULL: the session bus */
};

/* Takes cfg over.  Returns the exit status. */
int daemon_run(const struct daemon_options *opt, struct config *cfg);
