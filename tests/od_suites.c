/* The registry of Check suites. Add a suite here and to OD_SUITES in tests/CMakeLists.txt. */
#include "od_suites.h"

#include <stddef.h>

const od_suite_entry_t od_suites[] = {
    {"status", od_status_suite},
    {"config", od_config_suite},
    {"json", od_json_suite},
    {"jsonw", od_jsonw_suite},
    {"canon", od_canon_suite},
    {"sha256", od_sha256_suite},
    {"problem", od_problem_suite},
    {"order", od_order_suite},
    {"ulid", od_ulid_suite},
    {"cache", od_cache_suite},
    {"idemidx", od_idemidx_suite},
    {"keys", od_keys_suite},
    {"regex", od_regex_suite},
    {"sqlite", od_sqlite_suite},
    {"engines", od_engines_suite},
    {"aws_creds", od_aws_creds_suite},
    {"aws", od_aws_suite},
    {"aws_sinks", od_aws_sinks_suite},
    {"dynamodb", od_dynamodb_suite},
    {"events", od_events_suite},
    {"outbox", od_outbox_suite},
    {"ops", od_ops_suite},
    {"consumer", od_consumer_suite},
    {"ratelimit", od_ratelimit_suite},
    {"reqhead", od_reqhead_suite},
    {"conns", od_conns_suite},
    {"http_head", od_http_head_suite},
    {"edge", od_edge_suite},
    {"daemon", od_daemon_suite},
    {"e2e", od_e2e_suite},
    {"utf8", od_utf8_suite},
    {"log", od_log_suite},
    {"sink_file", od_sink_file_suite},
    {"fanout", od_fanout_suite},
    {NULL, NULL},
};

apr_pool_t *od_test_pool;

void od_test_pool_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&od_test_pool, NULL), APR_SUCCESS);
}

void od_test_pool_teardown(void)
{
    apr_pool_destroy(od_test_pool);
    od_test_pool = NULL;
}
