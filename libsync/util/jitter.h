/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * delay spread by up to a quarter either way, drawn from the kernel's
 * random source (getrandom(2)): processes started together (a boot, many
 * clients cut off by one server restart) draw apart.
 */
unsigned jitter_quarter(unsigned delay);
