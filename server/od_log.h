/*
 * od_log: leveled log lines on a stdio stream (stderr under systemd, which adds the journal's
 * own metadata). Each line is one JSON object:
 *   {"time":"2026-11-21T10:00:00.123Z","level":"info","msg":"..."}
 * or, for structured lines (access log), time and level followed by the given fields.
 *
 * Every line is valid JSON in valid UTF-8, whatever bytes its strings carry (a request's path or
 * method, a file name, a service's error text): each byte that is not part of well-formed UTF-8
 * (od_utf8: overlongs, surrogates and truncated sequences included) is written as U+FFFD, in the
 * message, in field values and keys alike. Valid UTF-8 is written unchanged.
 *
 * Lines of od_log_write are rate-limited per kind, a kind being one call site: the same level
 * and the same format string (the same pointer). A flood comes from one call site in a loop, and
 * its lines differ in the ids and counts they carry, so identical text would not catch it. Of
 * each kind at most `burst` lines (OD_LOG_BURST) are written per window (OD_LOG_WINDOW, from
 * the kind's first line); the rest are counted and held back. Once the window is over, the next
 * od_log_write line (of any kind) is preceded by one line per kind that had lines held back:
 *   {"time":...,"level":<the kind's>,"msg":"N similar messages suppressed; the last: <text>",
 *    "suppressed":N}
 * Kinds live in a fixed table (OD_LOG_KINDS); when it is full the kind with the oldest window
 * gives its slot up, reporting what it held back first. od_log_fields lines (the access log)
 * are never rate-limited.
 */
#ifndef OD_LOG_H
#define OD_LOG_H

#include "od_config.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <stdio.h>

struct json_object;

typedef struct od_log_s od_log_t;

/** Lines of one kind written per window before the rest are held back (od_log_set_limit). */
#define OD_LOG_BURST 10
/** The rate limit's window. */
#define OD_LOG_WINDOW apr_time_from_sec(10)
/** Kinds the rate limit tracks at once. */
#define OD_LOG_KINDS 32

/**
 * Creates a logger writing lines at @p level or above to @p stream (not closed by the logger),
 * rate-limited with OD_LOG_BURST and OD_LOG_WINDOW. Returns APR_SUCCESS and @p *out (lives as
 * long as @p p), or the status of the mutex's creation with @p *out NULL. Thread-safe to use.
 */
apr_status_t od_log_create(od_log_t **out, od_log_level_e level, FILE *stream, apr_pool_t *p);

/** Changes the level; takes effect for lines written after it. Thread-safe. */
void od_log_set_level(od_log_t *log, od_log_level_e level);

/**
 * Changes the rate limit of od_log_write: at most @p burst lines of a kind per @p window
 * (> 0); @p burst <= 0 turns it off. Takes effect for lines written after it. Thread-safe.
 */
void od_log_set_limit(od_log_t *log, int burst, apr_interval_time_t window);

/** Whether a line at @p level would be written. Thread-safe. */
int od_log_enabled(const od_log_t *log, od_log_level_e level);

/**
 * Writes one line (printf-style; a trailing newline is added, longer messages are cut at 4 KiB),
 * unless the rate limit holds it back (see above; @p fmt identifies the kind, so pass a string
 * literal). The line is written with one fwrite, so lines from different threads never
 * interleave. Thread-safe.
 */
void od_log_write(od_log_t *log, od_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Writes one structured line at @p level: {"time","level", then the members of @p fields in
 * order}. Takes ownership of @p fields (a json-c object) and releases it. Never rate-limited: a
 * caller bounds its own rate (the access log writes one line per request). Thread-safe.
 */
void od_log_fields(od_log_t *log, od_log_level_e level, struct json_object *fields);

#define od_log_debug(log, ...) od_log_write((log), OD_LOG_DEBUG, __VA_ARGS__)
#define od_log_info(log, ...) od_log_write((log), OD_LOG_INFO, __VA_ARGS__)
#define od_log_warn(log, ...) od_log_write((log), OD_LOG_WARN, __VA_ARGS__)
#define od_log_error(log, ...) od_log_write((log), OD_LOG_ERROR, __VA_ARGS__)

#endif
