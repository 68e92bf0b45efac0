/*
 * orderd: the daemon's entry point.
 *
 *   orderd -c FILE      run in the foreground (as systemd expects)
 *   orderd -t -c FILE   check the configuration and exit 0, or 1 with the problem
 *   orderd --init-store -c FILE   create the store's table/schema if missing, then exit
 *   orderd keygen NAME  print a new API key for caller NAME and its api_keys_file line
 *   orderd --version
 *
 * Signals are blocked in every thread and taken synchronously here with sigwait, so no handler
 * runs inside library code: SIGTERM/SIGINT stop gracefully. The one-shot modes (-t,
 * --init-store, keygen) unblock them again, so those end at once.
 */
#include "od_config.h"
#include "od_daemon.h"
#include "od_keys.h"
#include "od_status.h"
#include "od_log.h"
#include "od_server.h"

#include <apr_strings.h>
#include <errno.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const od_daemon_cli_t od_cli = {
    .name = "orderd",
    .usage = "usage: orderd -c FILE       run with configuration FILE\n"
             "       orderd -t -c FILE    check configuration FILE and exit\n"
             "       orderd --init-store -c FILE   create the store (table, schema) if missing\n"
             "       orderd keygen NAME   print a new API key and its api_keys_file line\n"
             "       orderd --version     print the version\n",
    .flag_long = "init-store",
    .flag_help = "create the store",
};

/* `orderd keygen NAME`: the key is printed once, only its hash goes to the keys file. */
static int od_keygen(const char *name, apr_pool_t *p)
{
    const char *key = NULL, *line = NULL;
    apr_status_t rv = od_keys_generate(name, &key, &line, p);

    if (rv != APR_SUCCESS) {
        fprintf(stderr, "orderd: keygen: %s\n",
                rv == OD_EINVAL ? "NAME must be 1..64 of [A-Za-z0-9_.-]"
                                : "the random generator failed");
        return 1;
    }
    printf("API key for %s (give it to the caller; it is not stored anywhere):\n%s\n\n"
           "Add this line to api_keys_file, then reload orderd (SIGHUP):\n%s\n",
           name, key, line);
    return 0;
}

/* Waits for a signal; under a systemd watchdog (WatchdogSec=) wakes every half period to ping
 * it, so a wedged main loop is noticed and restarted. Returns the signal, or 0 on a timeout. */
static int od_next_signal(const sigset_t *set, uint64_t watchdog_usec)
{
    struct timespec ts = {(time_t) (watchdog_usec / 2 / 1000000),
                          (long) (watchdog_usec / 2 % 1000000) * 1000};
    int sig = 0;

    if (watchdog_usec == 0) {
        return sigwait(set, &sig) == 0 ? sig : 0;
    }
    sig = sigtimedwait(set, NULL, &ts);
    if (sig < 0 && errno == EAGAIN) {
        sd_notify(0, "WATCHDOG=1");
    }
    return sig < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : sig;
}

/* Takes signals until one asks to stop: SIGHUP reloads, SIGTERM/SIGINT return. */
static int od_wait_for_stop(od_server_t *srv, const char *config_path)
{
    sigset_t set;
    uint64_t watchdog = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sd_watchdog_enabled(0, &watchdog) <= 0) {
        watchdog = 0;
    }
    for (;;) {
        int sig = od_next_signal(&set, watchdog);
        if (sig == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            od_server_reload(srv, config_path);
            sd_notify(0, "READY=1");
        } else if (sig != 0) {
            return sig;
        }
    }
}

static int od_init_store(const od_settings_t *settings, apr_pool_t *p)
{
    od_log_t *log = NULL;

    if (od_log_create(&log, settings->log_level, stderr, p) != APR_SUCCESS) {
        fputs("orderd: od_log_create failed\n", stderr);
        return 1;
    }
    return od_server_init_store(settings, log, p) == APR_SUCCESS ? 0 : 1;
}

static int od_run(const od_settings_t *settings, const char *config_path, apr_pool_t *p)
{
    od_log_t *log = NULL;
    od_server_t *srv = NULL;

    if (od_log_create(&log, settings->log_level, stderr, p) != APR_SUCCESS) {
        fputs("orderd: od_log_create failed\n", stderr);
        return 1;
    }
    if (od_server_create(&srv, settings, log, p) != APR_SUCCESS ||
        od_server_start(srv) != APR_SUCCESS) {
        od_log_error(log, "orderd: start-up failed");
        return 1;
    }
    /* Under systemd (Type=notify): ready only now, with the listener and the store up. */
    sd_notify(0, "READY=1\nSTATUS=accepting orders");
    int sig = od_wait_for_stop(srv, config_path);
    od_log_info(log, "orderd: received %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sd_notify(0, "STOPPING=1\nSTATUS=finishing in-flight requests");
    od_server_stop(srv);
    return 0;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool = NULL;
    od_daemon_args_t args;
    od_settings_t settings;
    const char *errmsg = NULL;

    if (od_daemon_init(od_cli.name, &argc, &argv, &pool) != 0) {
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "keygen") == 0) {
        return od_daemon_one_shot(od_cli.name) != 0 ? 1 : od_keygen(argv[2], pool);
    }
    int rc = od_daemon_parse_args(&od_cli, &args, argc, argv, pool);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    /* Only the daemon takes signals with sigwait; a check or --init-store ends on SIGTERM. */
    if ((args.test_only || args.flag) && od_daemon_one_shot(od_cli.name) != 0) {
        return 1;
    }
    if (od_server_load_config(&settings, args.config, &errmsg, pool) != APR_SUCCESS) {
        fprintf(stderr, "orderd: %s\n", errmsg);
        return 1;
    }
    if (args.test_only) {
        printf("orderd: configuration %s is valid\n", args.config);
        return 0;
    }
    rc = args.flag ? od_init_store(&settings, pool) : od_run(&settings, args.config, pool);
    apr_pool_destroy(pool);
    return rc;
}
