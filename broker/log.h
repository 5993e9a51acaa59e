/*
 * log.h - lienthongd's log: one line per event on stderr, any thread.
 *
 *   2026-11-27T07:52:10.123Z INFO  <text>
 *
 * One write(2) per line, so lines of different threads never interleave; a newline inside
 * the text (reasons can come from peers) becomes a space. A leaf: every part of the broker
 * may log, and the log calls none of them.
 */
#ifndef LT_BROKER_LOG_H
#define LT_BROKER_LOG_H

#include <stdbool.h>

/* Levels of lt_log. */
enum { LT_LOG_DEBUG = 0, LT_LOG_INFO = 1, LT_LOG_WARN = 2, LT_LOG_ERROR = 3 };

/* Log one line at level (an unknown level logs as ERROR). DEBUG lines only after
 * lt_log_debug(true). Thread-safe. */
void lt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log DEBUG lines too (on) or not. Set before threads start. */
void lt_log_debug(bool on);

#endif
