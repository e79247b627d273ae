// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>

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

const char *tm_strerror(void)
{
	return tm_errbuf;
}

void tm_clear_error(void)
{
	tm_errbuf[0] = '\0';
}
