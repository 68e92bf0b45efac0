/*
 * od_test_util: the end-to-end test harness.
 *
 * An environment is one temporary directory holding a config file, an optional keys file, the
 * SQLite database and the daemon's log, plus at most one running orderd ($ORDERD_BIN) spawned
 * from it. Requests are made with libcurl, only ever to 127.0.0.1. Every wait is bounded.
 *
 * The daemon is started with PR_SET_PDEATHSIG (Linux), so it dies with the process that started
 * it: a test that fails in Check's fork mode never leaves a server behind. Removing the directory
 * in that case is up to the caller (e.g. create environments under a directory an unchecked
 * fixture removes).
 */
#ifndef OD_TEST_UTIL_H
#define OD_TEST_UTIL_H

#include <stddef.h>

/** One temporary directory and the orderd that may run from it. Not thread-safe to mutate. */
typedef struct od_test_env_s od_test_env_t;

/** A caller of the keys file: @p key is the secret presented in X-API-Key. */
typedef struct od_test_key_t {
    const char *name;
    const char *key;
} od_test_key_t;

/** A request. Zero-initialise, then set what is needed. */
typedef struct od_test_request_t {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* e.g. "/orders" */
    const char *api_key;      /* sent as X-API-Key; NULL: no such header */
    const char *content_type; /* NULL: application/json if there is a body; "" : no header */
    const char *body;         /* NULL: no body */
    size_t body_len;
    int chunked;        /* send the body with Transfer-Encoding: chunked, in small chunks */
    long timeout_ms;    /* whole-request bound; 0: 10 s */
    const char *header; /* one more "Name: value" header, or NULL */
} od_test_request_t;

/** A response; release with od_test_response_free. */
typedef struct od_test_response_t {
    long status; /* HTTP status, 0 if no response was received */
    char *body;  /* NUL-terminated (the body may also contain NULs) */
    size_t body_len;
    char **headers; /* "Name: value" lines of the final response, CR/LF removed */
    size_t nheaders;
    char error[256]; /* why no complete response arrived (libcurl's message); "" if one did */
} od_test_response_t;

/**
 * Creates a fresh directory (mkdtemp) under @p parent (NULL: /tmp) and initialises libcurl.
 * Returns NULL on failure. Call from a single-threaded context.
 */
od_test_env_t *od_test_env_create(const char *parent);

/** Stops a running daemon (kill -9), removes the directory recursively and frees @p env. */
void od_test_env_destroy(od_test_env_t *env);

/** The directory of @p env. */
const char *od_test_env_dir(const od_test_env_t *env);

/** The config file's path (it exists once od_test_env_write_config has run). */
const char *od_test_env_config_path(const od_test_env_t *env);

/**
 * Writes @p text to the file @p name inside the directory. Returns its path (malloc'd, the caller
 * frees it) or NULL on failure.
 */
char *od_test_env_write_file(od_test_env_t *env, const char *name, const char *text);

/**
 * Writes the keys file ("NAME SHA256HEX" lines, hashed with OpenSSL EVP) for @p n callers.
 * Call before od_test_env_write_config, which then points api_keys_file at it. Returns 0 or -1.
 */
int od_test_env_write_keys(od_test_env_t *env, const od_test_key_t *keys, size_t n);

/**
 * Writes the config file: listen_address = 127.0.0.1, listen_port = 0, sqlite_path inside the
 * directory, api_keys_file if keys were written, then @p extra (NULL or `key = value` lines,
 * which must not repeat those keys). With $ORDERD_TEST_STORE_CONF set (by a suite fixture that
 * started an engine) its lines and a dynamodb_table unique to this environment are added. When
 * the config names `store = dynamodb`, the first od_test_server_start runs `--init-store`.
 * Returns 0 or -1.
 */
int od_test_env_write_config(od_test_env_t *env, const char *extra);

/** The keys file's path (written mode 0600 by od_test_env_write_keys). */
const char *od_test_env_keys_path(const od_test_env_t *env);

/** Sends @p sig to the running daemon. Returns 0, or -1 without a daemon. */
int od_test_server_signal(od_test_env_t *env, int sig);

/** Makes the next start skip `--init-store` (the table already exists). */
void od_test_env_skip_init_store(od_test_env_t *env);

/**
 * Spawns `$ORDERD_BIN -c CONFIG` (stderr and stdout appended to orderd.log in the directory)
 * and waits up to 10 s for the log to show `listening on 127.0.0.1:PORT`. Also restarts after
 * a stop or kill, on the same config and database. Returns 0, or -1 (the daemon is then killed).
 */
int od_test_server_start(od_test_env_t *env);

/** The port the running daemon listens on; 0 if none. */
int od_test_server_port(const od_test_env_t *env);

/** The process id of the running daemon (e.g. for prlimit); 0 if none. */
int od_test_server_pid(const od_test_env_t *env);

/**
 * Sets the running daemon's file size limit (RLIMIT_FSIZE, with prlimit) to @p bytes; -1: back
 * to its hard limit. A write past it stops short, then fails with EFBIG, as on a full disk.
 * Returns 0, or -1 without a daemon or if prlimit fails.
 */
int od_test_server_limit_fsize(od_test_env_t *env, long long bytes);

/**
 * SIGTERM, then waits up to @p timeout_ms for the exit. Returns the exit status (0..255),
 * 128 + the signal number if it died of a signal, or -1 on timeout or without a daemon (after a
 * timeout the daemon is killed with SIGKILL).
 */
int od_test_server_stop(od_test_env_t *env, long timeout_ms);

/** SIGKILL, then reaps the daemon. Returns 0, or -1 without a daemon. */
int od_test_server_kill(od_test_env_t *env);

/**
 * Runs `$ORDERD_BIN -t -c @p config_path` (bounded, 10 s). Returns its exit status (or -1) and,
 * if @p err is not NULL, what it wrote to stderr in @p *err (malloc'd, the caller frees it).
 */
int od_test_check_config(od_test_env_t *env, const char *config_path, char **err);

/**
 * Runs `$ORDERD_BIN @p option -c @p config_path` (a one-shot option such as -t or --init-store;
 * bounded, 10 s) as od_test_check_config does, with the same results.
 */
int od_test_run_once(od_test_env_t *env, const char *option, const char *config_path, char **err);

/**
 * Starts `@p bin @p option -c @p config_path` (@p bin NULL: $ORDERD_BIN; output appended to a
 * file in the directory), waits up to 10 s until it sleeps in openat(2) (as it does opening a
 * FIFO nobody writes to; seen in /proc/PID/syscall), sends it @p sig and waits up to
 * @p timeout_ms for its end. Returns its exit status (128 + N if it died of signal N), or -1 if
 * it never blocked there or did not end in time (it is then killed). Linux only.
 */
int od_test_signal_when_blocked(od_test_env_t *env, const char *bin, const char *option,
                                const char *config_path, int sig, long timeout_ms);

/** The contents of the daemon's log so far (malloc'd, the caller frees it), or NULL. */
char *od_test_server_log(const od_test_env_t *env);

/**
 * Sends @p req to the running daemon and fills @p out (always initialised, so always free it).
 * Thread-safe: each call uses its own curl handle and only reads @p env, so requests may run
 * while the test stops or kills the daemon (they then fail). Returns 0, or -1 if no complete
 * response arrived (transport error or timeout; see out->error).
 */
int od_test_http(const od_test_env_t *env, const od_test_request_t *req, od_test_response_t *out);

/** The value of response header @p name (case-insensitive), trimmed; NULL if absent. */
const char *od_test_response_header(const od_test_response_t *resp, const char *name);

/**
 * The value of the sample @p series (name and labels as printed, e.g.
 * `orderd_http_connections_closed_total{reason="evicted"}`) on the daemon's /metrics, or -1 if
 * it is absent or /metrics did not answer 200.
 */
double od_test_metric(const od_test_env_t *env, const char *series);

/** Frees what @p resp holds and zeroes it. */
void od_test_response_free(od_test_response_t *resp);

/**
 * Writes @p len raw bytes to a new TCP connection to the daemon, half-closes it, then reads the
 * reply until the peer closes or @p timeout_ms passes. Thread-safe like od_test_http. Returns the
 * number of reply bytes read (a prefix of the reply goes to @p reply, NUL-terminated, if @p
 * reply_size > 0), or -1 if the connection or the write failed.
 */
long od_test_send_raw(const od_test_env_t *env, const void *data, size_t len, char *reply,
                      size_t reply_size, long timeout_ms);

/**
 * As od_test_send_raw, but the connection is not half-closed: the reply is read until the
 * server closes the connection or @p timeout_ms passes (a keep-alive answer ends by timeout).
 */
long od_test_exchange_raw(const od_test_env_t *env, const void *data, size_t len, char *reply,
                          size_t reply_size, long timeout_ms);

/**
 * The number of orders in the environment's SQLite store (orders.db), read with the sqlite3
 * CLI, not through orderd; -1 if it cannot be read.
 */
int od_test_stored_orders(const od_test_env_t *env);

/**
 * A blocking TCP connection to 127.0.0.1:@p port from the loopback address @p source (e.g.
 * "127.0.0.2", another "client address"). Returns the socket, or -1 if refused.
 */
int od_test_connect_from(const char *source, int port);

/** Removes @p path and everything under it (like rm -rf; symlinks are not followed). */
void od_test_remove_tree(const char *path);

/** Sleeps @p ms milliseconds. */
void od_test_sleep_ms(long ms);

#endif
