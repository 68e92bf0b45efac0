/* od_fanout: a fixed set of threads taking the indexes of each run from a shared counter. */
#include "od_fanout.h"

#include <apr_atomic.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_pool.h>

struct od_fanout_s {
    apr_thread_pool_t *threads;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *done; /* broadcast when a run's last worker ends; waited on under lock */
    int max;
    od_log_t *log;
};

/* One od_fanout_run, on its caller's stack. Rather than a task per index, it pushes one worker
 * per thread it may use (at most max_in_flight): each takes indexes from next until none is left,
 * so a run of 1,000 calls costs a handful of pushes and nothing is allocated per call. */
typedef struct od_fanout_job_t {
    od_fanout_t *fanout;
    od_fanout_fn *fn;
    void *baton;
    apr_uint32_t n;
    volatile apr_uint32_t next; /* the next index to take (apr_atomic) */
    int workers;                /* pushed workers not yet ended; guarded by fanout->lock */
} od_fanout_job_t;

/* Runs the job's calls until every index has been taken (by this or another thread). */
static void od_fanout_drain(od_fanout_job_t *job)
{
    apr_uint32_t i;

    while ((i = apr_atomic_inc32(&job->next)) < job->n) {
        job->fn(job->baton, (int) i);
    }
}

static void *APR_THREAD_FUNC od_fanout_worker(apr_thread_t *thread, void *data)
{
    od_fanout_job_t *job = data;
    od_fanout_t *f = job->fanout;

    od_fanout_drain(job);
    /* The job lives on its caller's stack: once the count reaches 0 and the lock is released, the
     * caller may return, so this is the job's last use here. */
    apr_thread_mutex_lock(f->lock);
    if (--job->workers == 0) {
        apr_thread_cond_broadcast(f->done);
    }
    apr_thread_mutex_unlock(f->lock);
    return NULL;
}

/* A push failed. apr_thread_pool_push may have queued the task even so (it queues before it
 * tries to start a thread), so the job's workers cannot be counted: cancel those still queued
 * and wait for those running (apr_thread_pool_tasks_cancel, the job as the owner), then run
 * whatever is left here. */
static void od_fanout_fallback(od_fanout_job_t *job, apr_status_t rv)
{
    char buf[96];

    od_log_error(job->fanout->log,
                 "fanout: apr_thread_pool_push failed: %s; running the rest on the caller's thread",
                 apr_strerror(rv, buf, sizeof(buf)));
    apr_thread_pool_tasks_cancel(job->fanout->threads, job);
    od_fanout_drain(job);
}

void od_fanout_run(od_fanout_t *f, int n, od_fanout_fn *fn, void *baton)
{
    od_fanout_job_t job = {f, fn, baton, n > 0 ? (apr_uint32_t) n : 0, 0, 0};
    int want = n < f->max ? n : f->max;

    if (n <= 0) {
        return;
    }
    job.workers = want; /* before the first push: a worker may end before the last is pushed */
    for (int k = 0; k < want; k++) {
        apr_status_t rv = apr_thread_pool_push(f->threads, od_fanout_worker, &job,
                                               APR_THREAD_TASK_PRIORITY_NORMAL, &job);
        if (rv != APR_SUCCESS) {
            od_fanout_fallback(&job, rv);
            return;
        }
    }
    apr_thread_mutex_lock(f->lock);
    while (job.workers > 0) {
        apr_thread_cond_wait(f->done, f->lock);
    }
    apr_thread_mutex_unlock(f->lock);
}

int od_fanout_max(const od_fanout_t *f)
{
    return f->max;
}

apr_status_t od_fanout_create(od_fanout_t **out, int max_in_flight, od_log_t *log, apr_pool_t *p)
{
    od_fanout_t *f = apr_pcalloc(p, sizeof(*f));
    apr_size_t threads = (apr_size_t) (max_in_flight > 0 ? max_in_flight : 1);

    *out = NULL;
    f->max = (int) threads;
    f->log = log;
    /* The lock and condition first: their cleanups then run after the thread pool's, which
     * waits for its threads. */
    apr_status_t rv = apr_thread_mutex_create(&f->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&f->done, p);
    }
    if (rv != APR_SUCCESS) {
        od_log_error(log, "fanout: creating the lock or condition failed: %d", rv);
        return rv;
    }
    /* All threads from the start and kept while idle (idle_max = init_threads): so a push never
     * has to start a thread, and the bound is the pool's own. */
    rv = apr_thread_pool_create(&f->threads, threads, threads, p);
    if (rv != APR_SUCCESS) {
        od_log_error(log, "fanout: apr_thread_pool_create(%d threads) failed: %d", f->max, rv);
        if (f->threads != NULL) {
            apr_thread_pool_destroy(f->threads);
        }
        return rv;
    }
    *out = f;
    return APR_SUCCESS;
}
