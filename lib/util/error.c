// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tiermem/error.h"

static _Thread_local char tm_errbuf[512];

int tm_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tm_errbuf, sizeof(tm_errbuf), fmt, ap);
	va_end(ap);
	return err;
}

int tm_err_prefix(int err, const char *fmt, ...)
{
	char prev[sizeof(tm_errbuf)];
	va_list ap;
	int n;

	snprintf(prev, sizeof(prev), "%s", tm_errbuf);
	va_start(ap, fmt);
	n = vsnprintf(tm_errbuf, sizeof(tm_errbuf), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 2 < sizeof(tm_errbuf)) {
		size_t room = sizeof(tm_errbuf) - n - 3, len = strlen(prev);

		memcpy(tm_errbuf + n, ": ", 2);
		memcpy(tm_errbuf + n + 2, prev, len < room ? len : room);
		tm_errbuf[n + 2 + (len < room ? len : room)] = '\0';
	}
	return err;
}

const char *tm_strerror(void)
{
	return tm_errbuf;
}

void tm_clear_error(void)
{
	tm_errbuf[0] = '\0';
}
