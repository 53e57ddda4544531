/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * session.c's tunables that no caller sets, for its unit tests
 * (tests/unit/test-session-push.c); not exported from the shared library.
 */

/*
 * The freeze check: while connected, a timer every session_freeze_tick_ms;
 * one that fires session_freeze_late_ms or more after it was due, that
 * much of it a stop and not our own store work (util/loop-stall.h), means
 * the loop did not run meanwhile (the process was stopped or frozen), and the
 * connection is checked as after a network change.  Read when the timer is
 * armed.
 */
#define SESSION_FREEZE_TICK_MS (30u * 1000)
#define SESSION_FREEZE_LATE_MS (10u * 1000)
extern unsigned session_freeze_tick_ms;
extern unsigned session_freeze_late_ms;

/*
 * The back-off restarts from retry_min_ms when a connection on which a
 * sync ended well is lost session_stable_ms or more after that sync's end;
 * not when it is lost sooner (a server that lets the sync end, or accepts
 * IDLE or NOTIFY, and closes at once).  Read when the connection is lost.
 */
#define SESSION_STABLE_MS (30u * 1000)
extern unsigned session_stable_ms;
