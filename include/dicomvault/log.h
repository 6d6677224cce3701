/* log.h: leveled logging to stderr. Logs name the function and never echo
 * raw peer bytes, credentials or patient data. Layer: base. */
#ifndef DICOMVAULT_LOG_H
#define DICOMVAULT_LOG_H

#include "dicomvault/err.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level lvl);
void log_msg(enum log_level lvl, const char *func, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Makes a library's message (msg, NUL-terminated, changed in place) fit
 * for our log: trailing line ends dropped, bytes outside printable ASCII
 * as '?', and the text of every `...' span (where libmicrohttpd quotes a
 * request's path and query, which may name a patient) replaced by "..."
 * (by nothing when shorter: the message never grows); so is a word that
 * begins with '/' (a path it does not quote), but for that '/'.
 * An unclosed span is cut at its backquote. */
void log_scrub_quoted(char *msg);

#define log_error(...) log_msg(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __func__, __VA_ARGS__)

#endif
