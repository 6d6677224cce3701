/* log.c: leveled logging to stderr. Layer: base. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

void log_scrub_quoted(char *msg)
{
	size_t i, o = 0, n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	for (i = 0; i < n; i++) {
		if (msg[i] == '`') {
			size_t end = i + 1;
			while (end < n && msg[end] != '\'')
				end++;
			if (end == n)
				break;   /* unclosed: cut here */
			/* never longer than the span (so o stays <= i): "..."
			 * for 3 bytes of text and more */
			msg[o++] = '`';
			if (end - i > 3) {
				memcpy(msg + o, "...", 3);
				o += 3;
			}
			msg[o++] = '\'';
			i = end;
			continue;
		}
		if (msg[i] == '/' && (i == 0 || msg[i - 1] == ' ')) {
			/* a path not in quotes ("... request for /dicom-web/...") */
			while (i + 1 < n && msg[i + 1] != ' ')
				i++;
			msg[o++] = '/';
			continue;
		}
		msg[o++] = ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e) ? '?' : msg[i];
	}
	msg[o] = 0;
}
