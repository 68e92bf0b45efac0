/* od_sink_file: JSON Lines with fsync. */
#include "od_sink_file.h"
#include "od_status.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <string.h>

typedef struct od_sink_file_s {
    const char *path;
    od_log_t *log;
    apr_thread_mutex_t *lock; /* serialises write + fsync, so batches never interleave */
    apr_file_t *file;
} od_sink_file_t;

static apr_status_t od_sink_file_publish(void *impl, const od_event_t *events, int n,
                                         apr_status_t *results, apr_pool_t *p)
{
    od_sink_file_t *f = impl;
    apr_size_t total = 0, off = 0;
    char buf[96];

    for (int i = 0; i < n; i++) {
        total += events[i].body_len + 1;
    }
    char *lines = apr_palloc(p, total + 1);
    for (int i = 0; i < n; i++) {
        memcpy(lines + off, events[i].body, events[i].body_len);
        off += events[i].body_len;
        lines[off++] = '\n';
    }
    apr_thread_mutex_lock(f->lock);
    apr_status_t rv = apr_file_write_full(f->file, lines, total, NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_file_datasync(f->file);
    }
    apr_thread_mutex_unlock(f->lock);
    if (rv != APR_SUCCESS) {
        od_log_error(f->log, "events: writing %s failed: %s", f->path,
                     apr_strerror(rv, buf, sizeof(buf)));
        rv = OD_EUNAVAIL;
    }
    for (int i = 0; i < n; i++) {
        results[i] = rv;
    }
    return rv;
}

static const od_sink_ops_t od_sink_file_ops = {"file", 0, od_sink_file_publish};

apr_status_t od_sink_file_create(od_sink_t **out, const char *path, od_log_t *log, apr_pool_t *p)
{
    od_sink_file_t *f = apr_pcalloc(p, sizeof(*f));
    char buf[96];

    *out = NULL;
    f->path = apr_pstrdup(p, path);
    f->log = log;
    apr_status_t rv =
        apr_file_open(&f->file, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_APPEND,
                      APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "events: apr_file_open(%s) failed: %s", path,
                     apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    rv = apr_thread_mutex_create(&f->lock, APR_THREAD_MUTEX_DEFAULT, p);
    return rv == APR_SUCCESS ? od_sink_create(out, &od_sink_file_ops, f, p) : rv;
}
