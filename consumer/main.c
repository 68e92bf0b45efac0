/*
 * order-consumer: the reference idempotent consumer of orderd's order.accepted events.
 *
 *   order-consumer -c FILE      run in the foreground (as systemd expects)
 *   order-consumer -t -c FILE   check the configuration and exit 0, or 1 with the problem
 *   order-consumer --version
 *
 * The receive loop runs in its own thread. Signals are blocked in every thread and taken here
 * with sigwait: SIGTERM/SIGINT stop the loop, which finishes the batch in flight (handlers,
 * completes, deletes) and deletes nothing unprocessed; then the process exits 0.
 */
#include "od_config.h"
#include "od_consumer.h"
#include "od_log.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_thread_proc.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct od_args_t {
    const char *config;
    int test_only;
} od_args_t;

static void od_usage(FILE *to)
{
    fprintf(to, "usage: order-consumer -c FILE      consume with configuration FILE\n"
                "       order-consumer -t -c FILE   check configuration FILE and exit\n"
                "       order-consumer --version    print the version\n");
}

/* The pool abort function: out of memory mid-event could half-apply it, so stop; an event not
 * yet completed is redelivered, one completed is never run again. */
static int od_abort_oom(int status)
{
    static const char msg[] = "order-consumer: out of memory, aborting\n";
    fwrite(msg, 1, sizeof(msg) - 1, stderr);
    abort();
}

/* Returns 0 to go on, or an exit code (-1: exit 0 now). */
static int od_parse_args(od_args_t *args, int argc, const char *const *argv, apr_pool_t *p)
{
    static const apr_getopt_option_t opts[] = {
        {"config", 'c', 1, "configuration file"},
        {"test", 't', 0, "check configuration"},
        {"version", 'V', 0, "print version"},
        {"help", 'h', 0, "usage"},
        {NULL, 0, 0, NULL},
    };
    apr_getopt_t *g = NULL;
    const char *arg = NULL;
    int ch = 0;
    apr_status_t rv;

    apr_getopt_init(&g, p, argc, argv);
    g->errfn = NULL;
    while ((rv = apr_getopt_long(g, opts, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 'c':
            args->config = arg;
            break;
        case 't':
            args->test_only = 1;
            break;
        case 'V':
            printf("order-consumer %s\n", ORDERD_VERSION);
            return -1;
        default:
            od_usage(stdout);
            return -1;
        }
    }
    if (rv != APR_EOF || args->config == NULL || g->ind != argc) {
        od_usage(stderr);
        return 2;
    }
    return 0;
}

static int od_wait_for_stop(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    do {
        if (sigwait(&set, &sig) != 0) {
            return -1;
        }
    } while (sig != SIGTERM && sig != SIGINT);
    return sig;
}

static void *APR_THREAD_FUNC od_loop(apr_thread_t *thread, void *data)
{
    apr_thread_exit(thread, od_consumer_run(data));
    return NULL;
}

static int od_run(const od_settings_t *settings, apr_pool_t *p)
{
    od_log_t *log = NULL;
    od_consumer_t *c = NULL;
    apr_thread_t *loop = NULL;
    apr_status_t trv = APR_SUCCESS;

    od_log_create(&log, settings->log_level, stderr, p);
    if (od_consumer_create(&c, settings, log, p) != APR_SUCCESS) {
        od_log_error(log, "order-consumer: start-up failed");
        return 1;
    }
    if (apr_thread_create(&loop, NULL, od_loop, c, p) != APR_SUCCESS) {
        od_log_error(log, "order-consumer: apr_thread_create (receive loop) failed");
        return 1;
    }
    /* od_consumer_run returns only after od_consumer_stop, so the wait cannot miss its end. */
    int sig = od_wait_for_stop();
    od_log_info(log, "order-consumer: received %s: finishing the batch in flight",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    od_consumer_stop(c);
    apr_thread_join(&trv, loop);
    return 0;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool = NULL;
    od_args_t args = {NULL, 0};
    od_settings_t settings;
    const char *errmsg = NULL;
    sigset_t set;

    /* Blocked before any thread exists, so every thread inherits the mask; handlers get an
     * empty mask back (od_consumer_exec). SIGPIPE: a handler that does not read its stdin. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "order-consumer: apr_app_initialize failed\n");
        return 1;
    }
    atexit(apr_terminate);
    /* Before any thread exists, as libcurl requires. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "order-consumer: curl_global_init failed\n");
        return 1;
    }
    atexit(curl_global_cleanup);
    apr_pool_create_ex(&pool, NULL, od_abort_oom, NULL);
    int rc = od_parse_args(&args, argc, argv, pool);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (od_consumer_load_config(&settings, args.config, &errmsg, pool) != APR_SUCCESS) {
        fprintf(stderr, "order-consumer: %s\n", errmsg);
        return 1;
    }
    if (args.test_only) {
        printf("order-consumer: configuration %s is valid\n", args.config);
        return 0;
    }
    rc = od_run(&settings, pool);
    apr_pool_destroy(pool);
    return rc;
}
