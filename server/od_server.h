/*
 * od_server: the server context. Owns everything a running orderd has (settings, rules, hot
 * cache, keys, store, API, HTTP front end) and wires them together; the only mutable state of
 * the process lives under it.
 */
#ifndef OD_SERVER_H
#define OD_SERVER_H

#include "od_config.h"
#include "od_log.h"

#include <apr_pools.h>

typedef struct od_server_s od_server_t;

/**
 * Loads and checks the configuration file at @p path (and the files it names, such as
 * api_keys_file) without opening the store or listening. Returns APR_SUCCESS with @p out filled,
 * or OD_ECONFIG / an APR status with @p *errmsg "FILE:LINE: problem".
 */
apr_status_t od_server_load_config(od_settings_t *out, const char *path, const char **errmsg,
                                   apr_pool_t *p);

/**
 * Builds the server from checked @p settings: opens the store, creates the cache and workers.
 * Returns APR_SUCCESS and @p *out; otherwise the failure is logged and everything built so far
 * is undone when @p p is destroyed. Nothing listens until od_server_start.
 */
apr_status_t od_server_create(od_server_t **out, const od_settings_t *settings, od_log_t *log,
                              apr_pool_t *p);

/**
 * `orderd --init-store`: prepares the configured store and returns. SQLite: creates the file and
 * schema. DynamoDB: creates the table if missing (on-demand, TTL on expires_at) and waits until
 * it is ACTIVE. Idempotent. Returns APR_SUCCESS or the failure's status (logged).
 */
apr_status_t od_server_init_store(const od_settings_t *settings, od_log_t *log, apr_pool_t *p);

/** Starts listening; logs the address and port. Returns APR_SUCCESS or OD_EUNAVAIL (logged). */
apr_status_t od_server_start(od_server_t *srv);

/**
 * SIGHUP: re-reads @p config_path and applies, without a restart or dropped connections, the API
 * keys file (callers and their rate limits), log_level and the default rate limit. Other changed
 * keys take effect at the next restart. A reload may add an api_keys_file to a server running
 * without one, but once keys are in force a configuration without api_keys_file is an error
 * (OD_ECONFIG): authentication is never turned off without a restart. On any error nothing
 * changes and the error is logged. Returns APR_SUCCESS or the error. Call from one thread at a
 * time.
 */
apr_status_t od_server_reload(od_server_t *srv, const char *config_path);

/** Gracefully stops (see od_http_stop) within the configured shutdown_timeout_s. */
void od_server_stop(od_server_t *srv);

#endif
