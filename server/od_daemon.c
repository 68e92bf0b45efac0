/* od_daemon: process start-up and the command line shared by orderd and order-consumer. */
#ifndef _GNU_SOURCE /* APR's pkg-config flags may already define it */
#define _GNU_SOURCE /* program_invocation_short_name */
#endif
#include "od_daemon.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* apr_getopt's value for a long option without a letter: anything above 255. */
#define OD_DAEMON_FLAG 256

/* The pool abort function takes no context, so the program's name comes from glibc, which
 * keeps what argv[0] was. */
static int od_daemon_abort_oom(int status)
{
    fprintf(stderr, "%s: out of memory, aborting\n", program_invocation_short_name);
    abort();
}

int od_daemon_init(const char *name, int *argc, const char *const **argv, apr_pool_t **pool)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (apr_app_initialize(argc, argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "%s: apr_app_initialize failed\n", name);
        return 1;
    }
    atexit(apr_terminate);
    /* Before any thread exists, as libcurl requires. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: curl_global_init failed\n", name);
        return 1;
    }
    atexit(curl_global_cleanup);
    apr_pool_create_ex(pool, NULL, od_daemon_abort_oom, NULL);
    return 0;
}

int od_daemon_one_shot(const char *name)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int rc = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    if (rc != 0) {
        fprintf(stderr, "%s: pthread_sigmask failed: %s\n", name, strerror(rc));
        return 1;
    }
    return 0;
}

/* Handles one option; returns 0 to go on, or what od_daemon_parse_args returns. */
static int od_daemon_option(const od_daemon_cli_t *cli, od_daemon_args_t *args, int ch,
                            const char *arg)
{
    switch (ch) {
    case 'c':
        args->config = arg;
        return 0;
    case 't':
        args->test_only = 1;
        return 0;
    case OD_DAEMON_FLAG:
        args->flag = 1;
        return 0;
    case 'V':
        printf("%s %s\n", cli->name, ORDERD_VERSION);
        return -1;
    default:
        fputs(cli->usage, stdout);
        return -1;
    }
}

int od_daemon_parse_args(const od_daemon_cli_t *cli, od_daemon_args_t *args, int argc,
                         const char *const *argv, apr_pool_t *p)
{
    const apr_getopt_option_t opts[] = {
        {"config", 'c', 1, "configuration file"},
        {"test", 't', 0, "check configuration"},
        {"version", 'V', 0, "print version"},
        {"help", 'h', 0, "usage"},
        /* With no flag of the program's own, this entry (optch 0) ends the list. */
        {cli->flag_long, cli->flag_long != NULL ? OD_DAEMON_FLAG : 0, 0, cli->flag_help},
        {NULL, 0, 0, NULL},
    };
    apr_getopt_t *g = NULL;
    const char *arg = NULL;
    int ch = 0, rc = 0;
    apr_status_t rv;

    memset(args, 0, sizeof(*args));
    apr_getopt_init(&g, p, argc, argv);
    g->errfn = NULL;
    while ((rv = apr_getopt_long(g, opts, &ch, &arg)) == APR_SUCCESS) {
        if ((rc = od_daemon_option(cli, args, ch, arg)) != 0) {
            return rc;
        }
    }
    if (rv != APR_EOF || args->config == NULL || g->ind != argc) {
        fputs(cli->usage, stderr);
        return 2;
    }
    return 0;
}
