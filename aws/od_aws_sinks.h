/*
 * od_aws_sinks: the AWS event sinks, all through the shared pooled client (od_aws).
 *
 *   sns          PublishBatch (query protocol, 2010-03-31) to a topic, each entry with the message
 *                attribute event_type (String) so subscribers can filter; Id = the event_id.
 *   sqs          SendMessageBatch (JSON 1.0, AmazonSQS.SendMessageBatch) to a queue URL, with
 *                the message attribute event_type; Id = the event_id.
 *   eventbridge  PutEvents (JSON 1.1, AWSEvents.PutEvents) to a bus, Source and DetailType
 *                configurable, Detail = the envelope.
 * Each reports per-entry outcomes from the service's answer (Successful/Failed lists,
 * FailedEntryCount with per-entry ErrorCode). A publish of more than 10 events sends its batches
 * concurrently, up to @p max_in_flight calls at once (events_max_in_flight; od_sink), each on one
 * of the shared client's pooled connections: so the client needs at least that many.
 */
#ifndef OD_AWS_SINKS_H
#define OD_AWS_SINKS_H

#include "od_aws.h"
#include "od_log.h"
#include "od_sink.h"

/**
 * @p endpoint as from od_aws_resolve_endpoint(..., "SNS", "sns", ...). Returns APR_SUCCESS and
 * @p *out (lives as long as @p p, its threads too); OD_ECONFIG (logged) when a setting is missing,
 * or od_sink_create's status.
 */
apr_status_t od_sns_sink_create(od_sink_t **out, od_aws_t *aws, const char *endpoint,
                                const char *topic_arn, int max_in_flight, od_log_t *log,
                                apr_pool_t *p);

/** @p queue_url is the full queue URL; requests go to @p endpoint ("SQS"/"sqs"). As above. */
apr_status_t od_sqs_sink_create(od_sink_t **out, od_aws_t *aws, const char *endpoint,
                                const char *queue_url, int max_in_flight, od_log_t *log,
                                apr_pool_t *p);

/** @p endpoint ("EVENTS"/"events"); @p bus name or ARN, @p source and @p detail_type. As above. */
apr_status_t od_eventbridge_sink_create(od_sink_t **out, od_aws_t *aws, const char *endpoint,
                                        const char *bus, const char *source,
                                        const char *detail_type, int max_in_flight, od_log_t *log,
                                        apr_pool_t *p);

#endif
