/* The registry of Check suites: each tests/check_<module>.c defines one constructor. */
#ifndef OD_SUITES_H
#define OD_SUITES_H

#include <apr_pools.h>
#include <check.h>

/**
 * The pool of the running test, for suites whose only fixture is a pool: add
 * od_test_pool_setup and od_test_pool_teardown with tcase_add_checked_fixture, so each test
 * (forked, in fork mode) gets a fresh one, destroyed after it.
 */
extern apr_pool_t *od_test_pool;
void od_test_pool_setup(void);
void od_test_pool_teardown(void);

typedef struct od_suite_entry_t {
    const char *name;
    Suite *(*make)(void);
} od_suite_entry_t;

Suite *od_status_suite(void);
Suite *od_config_suite(void);
Suite *od_json_suite(void);
Suite *od_jsonw_suite(void);
Suite *od_canon_suite(void);
Suite *od_sha256_suite(void);
Suite *od_problem_suite(void);
Suite *od_order_suite(void);
Suite *od_ulid_suite(void);
Suite *od_cache_suite(void);
Suite *od_idemidx_suite(void);
Suite *od_keys_suite(void);
Suite *od_regex_suite(void);
Suite *od_sqlite_suite(void);
Suite *od_engines_suite(void);
Suite *od_aws_creds_suite(void);
Suite *od_aws_suite(void);
Suite *od_dynamodb_suite(void);
Suite *od_aws_sinks_suite(void);
Suite *od_events_suite(void);
Suite *od_outbox_suite(void);
Suite *od_ops_suite(void);
Suite *od_consumer_suite(void);
Suite *od_ratelimit_suite(void);
Suite *od_reqhead_suite(void);
Suite *od_conns_suite(void);
Suite *od_http_head_suite(void);
Suite *od_edge_suite(void);
Suite *od_daemon_suite(void);
Suite *od_e2e_suite(void);
Suite *od_utf8_suite(void);
Suite *od_log_suite(void);
Suite *od_sink_file_suite(void);
Suite *od_fanout_suite(void);

/** The registry, terminated by an entry whose name is NULL. */
extern const od_suite_entry_t od_suites[];

#endif
