/* SPDX-License-Identifier: MIT */
/*
 * Errors in libtiermem: functions return 0 or a negative errno and leave a
 * one-line, human-readable reason in a thread-local buffer, so the CLI can
 * print exactly what went wrong (which field, which offset, which path).
 */
#ifndef TIERMEM_ERROR_H
#define TIERMEM_ERROR_H

#if defined(__GNUC__)
#define TM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TM_PRINTF(a, b)
#endif

/* Record the reason for a failure; returns err (a negative errno) for tail calls. */
int tm_err(int err, const char *fmt, ...) TM_PRINTF(2, 3);
/* Put "PREFIX: " before the reason recorded last; returns err. */
int tm_err_prefix(int err, const char *fmt, ...) TM_PRINTF(2, 3);
/* The last reason recorded on this thread ("" if none). */
const char *tm_strerror(void);
void tm_clear_error(void);

#endif
