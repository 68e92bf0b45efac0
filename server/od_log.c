/* od_log: leveled, line-atomic logging. */
#include "od_log.h"
#include "od_order.h"

#include <apr_atomic.h>
#include <apr_time.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#define OD_LOG_LINE_MAX 4096

struct od_log_s {
    volatile apr_uint32_t level; /* read and written with apr_atomic_*, so SIGHUP may change it */
    FILE *stream;
};

static const char *const od_log_labels[] = {"debug", "info", "warn", "error"};

apr_status_t od_log_create(od_log_t **out, od_log_level_e level, FILE *stream, apr_pool_t *p)
{
    od_log_t *log = apr_pcalloc(p, sizeof(*log));

    *out = NULL;
    apr_atomic_set32(&log->level, (apr_uint32_t) level);
    log->stream = stream;
    *out = log;
    return APR_SUCCESS;
}

void od_log_set_level(od_log_t *log, od_log_level_e level)
{
    apr_atomic_set32(&log->level, (apr_uint32_t) level);
}

int od_log_enabled(const od_log_t *log, od_log_level_e level)
{
    return (apr_uint32_t) level >= apr_atomic_read32((volatile apr_uint32_t *) &log->level);
}

/* Writes @p obj as one line with a single fwrite, so lines never interleave; releases it. */
static void od_log_emit(od_log_t *log, json_object *obj)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    char *line = malloc(len + 1);

    if (line != NULL) {
        memcpy(line, text, len);
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
