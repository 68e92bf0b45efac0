/*
 * od_log: leveled log lines on a stdio stream (stderr under systemd, which adds the journal's
 * own metadata). Each line is one JSON object:
 *   {"time":"2026-11-21T10:00:00.123Z","level":"info","msg":"..."}
 * or, for structured lines (access log), time and level followed by the given fields.
 */
#ifndef OD_LOG_H
#define OD_LOG_H

#include "od_config.h"

#include <apr_pools.h>
#include <stdio.h>

struct json_object;

typedef struct od_log_s od_log_t;

/**
 * Creates a logger writing lines at @p level or above to @p stream (not closed by the logger).
 * Returns APR_SUCCESS and @p *out (lives as long as @p p). Thread-safe to use.
 */
apr_status_t od_log_create(od_log_t **out, od_log_level_e level, FILE *stream, apr_pool_t *p);

/** Changes the level; takes effect for lines written after it. Thread-safe. */
void od_log_set_level(od_log_t *log, od_log_level_e level);

/** Whether a line at @p level would be written. Thread-safe. */
int od_log_enabled(const od_log_t *log, od_log_level_e level);

/**
 * Writes one line (printf-style; a trailing newline is added, longer lines are cut at 4 KiB).
 * The line is written with one fwrite, so lines from different threads never interleave.
 */
void od_log_write(od_log_t *log, od_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Writes one structured line at @p level: {"time","level", then the members of @p fields in
 * order}. Takes ownership of @p fields (a json-c object) and releases it. Thread-safe.
 */
void od_log_fields(od_log_t *log, od_log_level_e level, struct json_object *fields);

#define od_log_debug(log, ...) od_log_write((log), OD_LOG_DEBUG, __VA_ARGS__)
#define od_log_info(log, ...) od_log_write((log), OD_LOG_INFO, __VA_ARGS__)
#define od_log_warn(log, ...) od_log_write((log), OD_LOG_WARN, __VA_ARGS__)
#define od_log_error(log, ...) od_log_write((log), OD_LOG_ERROR, __VA_ARGS__)

#endif
