/*
 * od_daemon: what orderd and order-consumer share as processes: start-up before any thread
 * exists (signal mask, APR, libcurl, the root pool and its out-of-memory policy) and the common
 * command line (-c FILE, -t, --version, --help, and one flag of the program's own).
 */
#ifndef OD_DAEMON_H
#define OD_DAEMON_H

#include <apr_pools.h>

/** A program's command line. */
typedef struct od_daemon_cli_t {
    const char *name;      /* for messages: "orderd" */
    const char *usage;     /* the whole usage text, printed for --help and on errors */
    const char *flag_long; /* the program's own flag (e.g. "init-store"), or NULL */
    const char *flag_help;
} od_daemon_cli_t;

/** What the command line asked for. */
typedef struct od_daemon_args_t {
    const char *config; /* -c FILE */
    int test_only;      /* -t: check the configuration and exit */
    int flag;           /* the program's own flag was given */
} od_daemon_args_t;

/**
 * Process start-up; call once, first thing in main, before any thread exists. Blocks SIGTERM,
 * SIGINT, SIGHUP and SIGPIPE (every thread inherits the mask; the program takes them with
 * sigwait, so no handler runs inside library code), initialises APR and libcurl (both undone at
 * exit) and creates the root pool in @p *pool. Its abort function is the one out-of-memory
 * policy: going on without the memory could half-apply a request or an event, so the process
 * prints why and aborts, and systemd restarts it. Returns 0, or 1 after printing the failed
 * step to stderr.
 */
int od_daemon_init(const char *name, int *argc, const char *const **argv, apr_pool_t **pool);

/**
 * For a one-shot mode (-t, --init-store, keygen: anything that does not take signals with
 * sigwait): unblocks SIGTERM, SIGINT and SIGHUP again in the calling thread, so they act as
 * their disposition says (by default they end the process) instead of staying pending while a
 * slow step runs, e.g. reading a configuration file that blocks. SIGPIPE stays blocked. Call
 * from main once the mode is known, before the mode starts any thread (threads started later
 * inherit the mask). Returns 0, or 1 after printing the failed call to stderr.
 */
int od_daemon_one_shot(const char *name);

/**
 * Parses the command line into @p args (zeroed first). Returns 0 to go on; -1 when the process
 * should exit 0 (the version or the usage was printed to stdout); or 2 after printing the usage
 * to stderr (unknown option, missing -c, or a stray argument).
 */
int od_daemon_parse_args(const od_daemon_cli_t *cli, od_daemon_args_t *args, int argc,
                         const char *const *argv, apr_pool_t *p);

#endif
