/* od_log: leveled, line-atomic logging. */
#include "od_log.h"
#include "od_order.h"

#include <apr_atomic.h>
#include <apr_time.h>
#include <stdarg.h>
#include <string.h>

#define OD_LOG_LINE_MAX 4096

struct od_log_s {
    volatile apr_uint32_t level; /* read and written with apr_atomic_*, so SIGHUP may change it */
    FILE *stream;
};

static const char *const od_log_labels[] = {"DEBUG", "INFO", "WARN", "ERROR"};

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

void od_log_write(od_log_t *log, od_log_level_e level, const char *fmt, ...)
{
    char line[OD_LOG_LINE_MAX];
    char when[32];
    va_list ap;

    if (!od_log_enabled(log, level)) {
        return;
    }
    int n = snprintf(line, sizeof(line), "%s %-5s ", od_order_format_time(when, apr_time_now()),
                     od_log_labels[level]);
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
    va_end(ap);
    apr_size_t len = (apr_size_t) n + (m < 0 ? 0 : (apr_size_t) m);
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    fwrite(line, 1, len, log->stream);
    fflush(log->stream);
}
