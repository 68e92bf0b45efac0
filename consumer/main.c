/*
 * order-consumer: the reference idempotent consumer of orderd's order.accepted events.
 *
 *   order-consumer -c FILE      run in the foreground (as systemd expects)
 *   order-consumer -t -c FILE   check the configuration and exit 0, or 1 with the problem
 *   order-consumer --version
 *
 * The receive loop runs in its own thread. Signals are blocked in every thread and taken here
 * with sigwait: SIGTERM/SIGINT stop the loop, which finishes the batch in flight (handlers,
 * completes, deletes) and deletes nothing unprocessed; then the process exits 0. With -t they
 * are unblocked again and end the check at once.
 */
#include "od_config.h"
#include "od_consumer.h"
#include "od_daemon.h"
#include "od_log.h"

#include <apr_thread_proc.h>
#include <signal.h>
#include <stdio.h>

static const od_daemon_cli_t od_cli = {
    .name = "order-consumer",
    .usage = "usage: order-consumer -c FILE      consume with configuration FILE\n"
             "       order-consumer -t -c FILE   check configuration FILE and exit\n"
             "       order-consumer --version    print the version\n",
};

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

    if (od_log_create(&log, settings->log_level, stderr, p) != APR_SUCCESS) {
        fputs("order-consumer: od_log_create failed\n", stderr);
        return 1;
    }
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
    od_daemon_args_t args;
    od_settings_t settings;
    const char *errmsg = NULL;

    /* The mask od_daemon_init sets is inherited by every thread; handlers get an empty one back
     * (od_consumer_exec). SIGPIPE: a handler that does not read its stdin. */
    if (od_daemon_init(od_cli.name, &argc, &argv, &pool) != 0) {
        return 1;
    }
    int rc = od_daemon_parse_args(&od_cli, &args, argc, argv, pool);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    /* Only the consumer's run takes signals with sigwait; a check ends on SIGTERM. */
    if (args.test_only && od_daemon_one_shot(od_cli.name) != 0) {
        return 1;
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
