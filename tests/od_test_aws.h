/*
 * Test helpers for calls to the local AWS engines (od_test_engines): a client with static keys,
 * query-protocol calls (IAM, STS, SNS) and reading their XML answers. Failures abort the calling
 * Check test with a clear message.
 */
#ifndef OD_TEST_AWS_H
#define OD_TEST_AWS_H

#include "od_aws.h"
#include "od_test_engines.h"

#include <apr_pools.h>

/**
 * A client signing with the static keys @p id / @p secret for region us-east-1 (two pooled
 * connections, @p timeout_ms per attempt, one attempt). Lives, with its log, in @p p.
 */
od_aws_t *od_test_aws_client(apr_pool_t *p, const char *id, const char *secret, long timeout_ms);

/** One query-protocol call to @p engine; returns the XML answer (from @p p). Must succeed. */
const char *od_test_aws_query(apr_pool_t *p, od_aws_t *aws, const od_test_engine_t *engine,
                              const char *service, const char *params);

/** @p s URL-encoded (for query parameters), in @p p. */
const char *od_test_url_escape(apr_pool_t *p, const char *s);

/** The text of the first <tag>…</tag> in @p xml, in @p p; there must be one. */
const char *od_test_xml_text(apr_pool_t *p, const char *xml, const char *tag);

#endif
