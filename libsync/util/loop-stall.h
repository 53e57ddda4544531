/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Whether a timer that fired late was held by a stop of the process or by
 * our own work.  A timer due while the loop does not run fires late, for
 * one of two reasons: the process was stopped or frozen (SIGSTOP, a cgroup
 * freezer, or a host that did not call the loop), and nothing of ours ran
 * meanwhile; or our own work held the loop (a store write that took
 * seconds on a slow disk).  Only the first is a freeze, after which
 * deadlines start again: after the second, the server's silence was real.
 *
 * Neither clock tells them apart (a stop and a write blocked on the disk
 * both pass wall time without CPU time), so the two are measured apart:
 * - the time the loop took past due to come back from its wait to its
 *   callbacks: a loop waiting for a timer already due comes back at once
 *   unless it is stopped, so all of it is a stop;
 * - the time past due that our own slow work does not explain: the store
 *   marks its commits and lock waits (loop_own_work_begin() and _end()),
 *   and the rest of the lateness is a stop, in the wait or inside a
 *   callback (the common case: a process stopped while it reads a long
 *   FETCH is in a callback more often than not).
 * A stop that falls inside marked work counts as that work.  A suspend of
 * the host stops CLOCK_MONOTONIC, the clock of every timer and deadline
 * here: nothing is late after one (the host's resume is told by the
 * caller, netwatch in cpm-syncd).
 */

#include <stdint.h>

struct cpmsync_loop;

/*
 * How long of the lateness of a timer due at due (CLOCK_MONOTONIC ms) was
 * a stop, at now: the larger of the time from due, or from the end of the
 * dispatch round before this one when that ended later, to the start of
 * this round (round_start: its wait returned); and the time from due to
 * now less own_ms, the marked work done since the timer was armed.
 */
uint64_t loop_stall_ms(uint64_t due, uint64_t now, uint64_t prev_end, uint64_t round_start,
		       uint64_t own_ms);

/* The same on loop, for the round it is dispatching (or, outside one,
 * until now since its last round ended), own_ms the marked work since
 * the timer was armed (loop_own_work_ms() then and now). */
uint64_t loop_stalled_since(const struct cpmsync_loop *loop, uint64_t due, uint64_t own_ms);

/*
 * Our own work that may hold the loop for long (a store commit, a wait
 * for a lock), on this thread: begin and end nest; loop_own_work_ms() is
 * the total so far, the open section included.
 */
void loop_own_work_begin(void);
void loop_own_work_end(void);
uint64_t loop_own_work_ms(void);
