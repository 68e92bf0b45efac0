/* od_sink_file: JSON Lines with fsync; a failed batch is cut back off the file. */
#include "od_sink_file.h"
#include "od_status.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct od_sink_file_s {
    const char *path;
    od_log_t *log;
    apr_thread_mutex_t *lock; /* serialises write + fsync, so batches never interleave; guards
                                 what follows */
    apr_file_t *file;
    int dirty;       /* the file may end in part of a line: see od_sink_file_repair */
    apr_off_t clean; /* while dirty: its size before the failed write, or -1 if not known */
#ifdef ORDERD_FAULT_INJECTION
    int fail_cuts; /* cuts still to fail, ORDERD_FAULT_EVENTS_TRUNCATE_FAILS */
#endif
} od_sink_file_t;

static apr_status_t od_sink_file_size(od_sink_file_t *f, apr_off_t *size)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f->file);

    if (rv == APR_SUCCESS) {
        *size = fi.size;
    }
    return rv;
}

/* Cuts the file back to @p size. Fault injection (test builds only) makes the next N cuts fail
 * as an I/O error would. */
static apr_status_t od_sink_file_cut(od_sink_file_t *f, apr_off_t size)
{
#ifdef ORDERD_FAULT_INJECTION
    if (f->fail_cuts > 0) {
        f->fail_cuts--;
        return APR_FROM_OS_ERROR(EIO);
    }
#endif
    return apr_file_trunc(f->file, size);
}

/* 1 if the file is empty or ends in a newline, 0 if not, -1 if that cannot be read. */
static int od_sink_file_ends_whole(od_sink_file_t *f)
{
    apr_off_t at = 0;
    apr_size_t one = 1;
    char last = '\n';

    if (od_sink_file_size(f, &at) != APR_SUCCESS) {
        return -1;
    }
    if (at == 0) {
        return 1;
    }
    at--;
    /* The offset read from is ours alone: writes go to the end (APR_FOPEN_APPEND). */
    if (apr_file_seek(f->file, APR_SET, &at) != APR_SUCCESS ||
        apr_file_read(f->file, &last, &one) != APR_SUCCESS || one != 1) {
        return -1;
    }
    return last == '\n';
}

/* Whether the next batch must start with a newline. A dirty file (a cut after a failed write
 * that failed too, or part of a line found at start-up) is first cut back again to its size
 * before that write. Unless it then ends in a newline, the batch starts with one: appended right
 * after a fragment, its first event would be glued onto it, unreadable in a line that is not
 * JSON although the event counts as published. With the newline, the fragment stays a line of
 * its own that readers skip as corrupt (docs/events.md), and every event is a whole line. The
 * file stays dirty until a write succeeds. */
static int od_sink_file_repair(od_sink_file_t *f)
{
    apr_off_t size = 0;

    if (!f->dirty) {
        return 0;
    }
    /* Never cut below what the file holds now: it may have been truncated meanwhile. */
    if (f->clean >= 0 && od_sink_file_size(f, &size) == APR_SUCCESS && size > f->clean &&
        od_sink_file_cut(f, f->clean) == APR_SUCCESS) {
        od_log_warn(f->log, "events: %s cut back to its size before the failed write", f->path);
    }
    return od_sink_file_ends_whole(f) != 1;
}

/* After a failed write or fsync: cuts the file back to @p size, its size before, so that it
 * ends on a whole line again and the failed batch leaves nothing behind (all of it is published
 * again later). If the cut fails too, the file is dirty until od_sink_file_repair mends it. */
static void od_sink_file_undo(od_sink_file_t *f, apr_off_t size)
{
    char buf[96];
    apr_status_t rv = od_sink_file_cut(f, size);

    if (rv == APR_SUCCESS) {
        return;
    }
    od_log_error(f->log,
                 "events: apr_file_trunc(%s) failed: %s; it may end in part of a line, cut"
                 " again before the next write",
                 f->path, apr_strerror(rv, buf, sizeof(buf)));
    /* Already dirty: the earlier size is the better one, nothing since then was published. */
    if (!f->dirty || f->clean < 0) {
        f->dirty = 1;
        f->clean = size;
    }
}

/* Appends @p len bytes of lines at @p lines, preceded by the newline at lines[-1] if the file
 * needs one, and syncs them; on failure, undoes what was written. Called under f->lock. */
static apr_status_t od_sink_file_append(od_sink_file_t *f, const char *lines, apr_size_t len, int n)
{
    char buf[96];
    const char *call = "apr_file_write_full";
    apr_off_t size = 0;
    int newline = od_sink_file_repair(f);
    /* The size after the repair, which may have cut the file: the undo must never extend it. */
    apr_status_t rv = od_sink_file_size(f, &size);

    if (rv != APR_SUCCESS) {
        od_log_error(f->log, "events: apr_file_info_get(%s) failed: %s; nothing written", f->path,
                     apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    rv = apr_file_write_full(f->file, lines - newline, len + newline, NULL);
    if (rv == APR_SUCCESS) {
        call = "apr_file_datasync";
        rv = apr_file_datasync(f->file);
    }
    if (rv == APR_SUCCESS) {
        f->dirty = 0;
        return APR_SUCCESS;
    }
    od_log_error(f->log, "events: %s(%s) failed: %s; the %d event(s) of the batch stay pending",
                 call, f->path, apr_strerror(rv, buf, sizeof(buf)), n);
    od_sink_file_undo(f, size);
    return rv;
}

static apr_status_t od_sink_file_publish(void *impl, const od_event_t *events, int n,
                                         apr_status_t *results, apr_pool_t *p)
{
    od_sink_file_t *f = impl;
    apr_size_t total = 0, off = 1;

    for (int i = 0; i < n; i++) {
        total += events[i].body_len + 1;
    }
    /* One byte ahead of the lines: the newline that ends a fragment (od_sink_file_repair). */
    char *buf = apr_palloc(p, total + 1);
    buf[0] = '\n';
    for (int i = 0; i < n; i++) {
        memcpy(buf + off, events[i].body, events[i].body_len);
        off += events[i].body_len;
        buf[off++] = '\n';
    }
    apr_thread_mutex_lock(f->lock);
    apr_status_t rv = od_sink_file_append(f, buf + 1, total, n);
    apr_thread_mutex_unlock(f->lock);
    rv = rv == APR_SUCCESS ? APR_SUCCESS : OD_EUNAVAIL;
    for (int i = 0; i < n; i++) {
        results[i] = rv;
    }
    return rv;
}

static const od_sink_ops_t od_sink_file_ops = {"file", 0, od_sink_file_publish};

/* A file that ends in part of a line at start-up (a write cut short by a crash or power loss,
 * whose batch was never reported published) is dirty with no known clean size: its next batch
 * starts on a new line, and the text already there is kept as it is. */
static void od_sink_file_check_end(od_sink_file_t *f)
{
    f->clean = -1;
    f->dirty = od_sink_file_ends_whole(f) != 1;
    if (f->dirty) {
        od_log_warn(f->log,
                    "events: %s does not end in a whole line (a write cut short?); the next"
                    " event starts on a new line",
                    f->path);
    }
}

apr_status_t od_sink_file_create(od_sink_t **out, const char *path, od_log_t *log, apr_pool_t *p)
{
    od_sink_file_t *f = apr_pcalloc(p, sizeof(*f));
    char buf[96];

    *out = NULL;
    f->path = apr_pstrdup(p, path);
    f->log = log;
    /* Readable too: the last byte is read back to tell whether the file ends in a whole line. */
    apr_status_t rv = apr_file_open(
        &f->file, path, APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_APPEND,
        APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "events: apr_file_open(%s) failed: %s", path,
                     apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
#ifdef ORDERD_FAULT_INJECTION
    const char *fails = getenv("ORDERD_FAULT_EVENTS_TRUNCATE_FAILS");
    f->fail_cuts = fails != NULL ? atoi(fails) : 0;
#endif
    od_sink_file_check_end(f);
    rv = apr_thread_mutex_create(&f->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "events: apr_thread_mutex_create failed: %s",
                     apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    /* max_batch 0: a publish is one call (one write and one fdatasync), never split. */
    return od_sink_create(out, &od_sink_file_ops, f, 1, log, p);
}
