/* log.c: leveled logging to stderr. Layer: base. */
#include <stdarg.h>
#include <stdio.h>
#include "dicomvault/log.h"

static enum log_level g_level = LOG_WARN;

void log_set_level(enum log_level lvl) { g_level = lvl; }

void log_msg(enum log_level lvl, const char *func, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (lvl > g_level)
		return;
	flockfile(stderr);   /* one line, even from several threads */
	fprintf(stderr, "dicomvault: %s: %s: ", names[lvl], func);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}
