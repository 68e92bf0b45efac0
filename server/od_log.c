/* od_log: leveled, line-atomic logging in valid UTF-8, rate-limited per call site. */
#include "od_log.h"
#include "od_order.h"
#include "od_utf8.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define OD_LOG_LINE_MAX 4096
/* What a kind keeps of the last line it held back, for its summary line. */
#define OD_LOG_LAST_MAX 512

/* One kind of line (a call site: level and format) in the rate limit's table. */
typedef struct od_log_kind_s {
    const char *fmt; /* NULL: a free slot */
    od_log_level_e level;
    apr_time_t since; /* when the kind's window started */
    int written;      /* lines written in that window */
    int held;         /* lines held back and not reported yet */
    char last[OD_LOG_LAST_MAX];
} od_log_kind_t;

struct od_log_s {
    volatile apr_uint32_t level; /* read and written with apr_atomic_*, so SIGHUP may change it */
    FILE *stream;
    apr_thread_mutex_t *lock; /* guards the rate limit: what follows */
    int burst;
    apr_interval_time_t window;
    od_log_kind_t kinds[OD_LOG_KINDS];
};

static const char *const od_log_labels[] = {"debug", "info", "warn", "error"};

apr_status_t od_log_create(od_log_t **out, od_log_level_e level, FILE *stream, apr_pool_t *p)
{
    od_log_t *log = apr_pcalloc(p, sizeof(*log));

    *out = NULL;
    apr_status_t rv = apr_thread_mutex_create(&log->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv; /* nowhere to log it yet: the caller reports it */
    }
    apr_atomic_set32(&log->level, (apr_uint32_t) level);
    log->stream = stream;
    log->burst = OD_LOG_BURST;
    log->window = OD_LOG_WINDOW;
    *out = log;
    return APR_SUCCESS;
}

void od_log_set_level(od_log_t *log, od_log_level_e level)
{
    apr_atomic_set32(&log->level, (apr_uint32_t) level);
}

void od_log_set_limit(od_log_t *log, int burst, apr_interval_time_t window)
{
    apr_thread_mutex_lock(log->lock);
    log->burst = burst;
    log->window = window;
    apr_thread_mutex_unlock(log->lock);
}

int od_log_enabled(const od_log_t *log, od_log_level_e level)
{
    return (apr_uint32_t) level >= apr_atomic_read32((volatile apr_uint32_t *) &log->level);
}

/* Writes @p obj as one line with a single fwrite, so lines never interleave; releases it.
 * JSON's own syntax is ASCII and json-c copies bytes >= 0x80 of strings through unchecked, so
 * any invalid UTF-8 in the text sits inside a string: replacing each such byte with U+FFFD
 * there keeps the line valid JSON, for every string of it (message, keys, values) at once. */
static void od_log_emit(od_log_t *log, json_object *obj)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    int valid = od_utf8_valid_prefix(text, len) == len;
    char *line = malloc(valid ? len + 1 : 3 * len + 1);

    if (line != NULL) {
        if (valid) {
            memcpy(line, text, len);
        } else {
            len = od_utf8_repair(line, text, len);
        }
        line[len] = '\n';
        fwrite(line, 1, len + 1, log->stream);
        fflush(log->stream);
        free(line);
    }
    json_object_put(obj);
}

static json_object *od_log_head(od_log_level_e level)
{
    char when[32];
    json_object *obj = json_object_new_object();

    json_object_object_add(obj, "time",
                           json_object_new_string(od_order_format_time(when, apr_time_now())));
    json_object_object_add(obj, "level", json_object_new_string(od_log_labels[level]));
    return obj;
}

/* ---- the rate limit (callers hold log->lock) ---- */

/* Writes the summary of what @p k held back, and forgets it. */
static void od_log_report(od_log_t *log, od_log_kind_t *k)
{
    char msg[OD_LOG_LAST_MAX + 64];
    json_object *obj = od_log_head(k->level);

    apr_snprintf(msg, sizeof(msg), "%d similar messages suppressed; the last: %s", k->held,
                 k->last);
    json_object_object_add(obj, "msg", json_object_new_string(msg));
    json_object_object_add(obj, "suppressed", json_object_new_int(k->held));
    od_log_emit(log, obj);
    k->held = 0;
}

/* A clock set back counts as a window over too, so no kind stays held back for long. */
static int od_log_window_over(const od_log_t *log, const od_log_kind_t *k, apr_time_t now)
{
    return now < k->since || now - k->since >= log->window;
}

/* Reports every kind whose window is over and which held lines back. */
static void od_log_report_over(od_log_t *log, apr_time_t now)
{
    for (int i = 0; i < OD_LOG_KINDS; i++) {
        od_log_kind_t *k = &log->kinds[i];
        if (k->fmt != NULL && k->held > 0 && od_log_window_over(log, k, now)) {
            od_log_report(log, k);
        }
    }
}

/* The slot of the kind (@p level, @p fmt): its own, else a free one, else the one whose window
 * is the oldest, which reports what it held back before it is reused. */
static od_log_kind_t *od_log_kind(od_log_t *log, od_log_level_e level, const char *fmt,
                                  apr_time_t now)
{
    od_log_kind_t *take = NULL;

    for (int i = 0; i < OD_LOG_KINDS; i++) {
        od_log_kind_t *k = &log->kinds[i];
        if (k->fmt == fmt && k->level == level) {
            return k;
        }
        if (take == NULL || (take->fmt != NULL && (k->fmt == NULL || k->since < take->since))) {
            take = k;
        }
    }
    if (take->held > 0) {
        od_log_report(log, take);
    }
    *take = (od_log_kind_t){.fmt = fmt, .level = level, .since = now};
    return take;
}

/* Whether the line @p msg of kind (@p level, @p fmt) is to be written; if not, it is counted. */
static int od_log_admit(od_log_t *log, od_log_level_e level, const char *fmt, const char *msg)
{
    int admit = 1;

    apr_thread_mutex_lock(log->lock);
    if (log->burst > 0) {
        apr_time_t now = apr_time_now();
        od_log_report_over(log, now);
        od_log_kind_t *k = od_log_kind(log, level, fmt, now);
        if (od_log_window_over(log, k, now)) {
            k->since = now;
            k->written = 0;
        }
        admit = k->written < log->burst;
        if (admit) {
            k->written++;
        } else {
            k->held++;
            apr_cpystrn(k->last, msg, sizeof(k->last));
        }
    }
    apr_thread_mutex_unlock(log->lock);
    return admit;
}

/* ---- lines ---- */

void od_log_write(od_log_t *log, od_log_level_e level, const char *fmt, ...)
{
    char msg[OD_LOG_LINE_MAX];
    va_list ap;

    if (!od_log_enabled(log, level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!od_log_admit(log, level, fmt, msg)) {
        return;
    }
    json_object *obj = od_log_head(level);
    json_object_object_add(obj, "msg", json_object_new_string(msg));
    od_log_emit(log, obj);
}

void od_log_fields(od_log_t *log, od_log_level_e level, json_object *fields)
{
    if (!od_log_enabled(log, level)) {
        json_object_put(fields);
        return;
    }
    json_object *obj = od_log_head(level);
    json_object_object_foreach(fields, key, val)
    {
        json_object_object_add(obj, key, json_object_get(val));
    }
    json_object_put(fields);
    od_log_emit(log, obj);
}
