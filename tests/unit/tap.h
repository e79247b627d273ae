/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP output for unit tests: one "ok"/"not ok" line per check, which
 * tests/run counts. Checks inside loops should be folded into one line (count
 * the bad cases, then one tap_ok) so the totals mean "behaviours", not items.
 */
#ifndef TIERMEM_TAP_H
#define TIERMEM_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_count, tap_failed;

__attribute__((format(printf, 2, 3), unused))
static int tap_ok(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		tap_failed++;
	return ok;
}

/* A check that cannot run on this machine, with the reason. Never a pass. */
__attribute__((format(printf, 1, 2), unused))
static void tap_skip(const char *fmt, ...)
{
	va_list ap;

	printf("ok %d - # SKIP ", ++tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

__attribute__((unused))
static int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
