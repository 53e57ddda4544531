/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * cpmctl's CPM commands (agent/cpmctl-cpm.c): conversations, chat, send.
 * cmd is the command name, argc/argv start at it.  Returns the exit
 * status, or -1 when cmd is not one of them.
 */
int cpmctl_cpm_command(const char *cmd, int argc, char **argv);
