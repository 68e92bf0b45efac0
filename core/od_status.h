/*
 * od_status: orderd's status values.
 *
 * Every orderd function that can fail returns an apr_status_t. Values from APR (APR_SUCCESS,
 * APR_ENOMEM, APR_EINVAL, ...) keep their meaning; the values below are orderd's own, placed in
 * APR's user error space so the two never collide. Results of curl, json-c, libmicrohttpd and
 * SQLite are converted to these at the module edge.
 */
#ifndef OD_STATUS_H
#define OD_STATUS_H

#include <apr_errno.h>
#include <apr_pools.h>

#define OD_STATUS_BASE (APR_OS_START_USERERR + 7000)

/** The input (a request body, an id, a config value) is malformed or fails a rule. */
#define OD_EINVAL (OD_STATUS_BASE + 1)
/** A configuration file or value is wrong; the message says where. */
#define OD_ECONFIG (OD_STATUS_BASE + 2)
/** The thing asked for does not exist (or belongs to another caller). */
#define OD_ENOTFOUND (OD_STATUS_BASE + 3)
/** A backing service (store, AWS) is unreachable or failed; retrying later may work. */
#define OD_EUNAVAIL (OD_STATUS_BASE + 4)
/** A backing service refused for load (throttling); retrying later may work. */
#define OD_ETHROTTLED (OD_STATUS_BASE + 5)
/** Our own bounded queue is full; retrying later may work. */
#define OD_EOVERLOAD (OD_STATUS_BASE + 6)
/** The caller is not authenticated. */
#define OD_EAUTH (OD_STATUS_BASE + 7)
/** A conditional write found an existing record. */
#define OD_ECONFLICT (OD_STATUS_BASE + 8)
/** The request body exceeds the configured limit. */
#define OD_ETOOLARGE (OD_STATUS_BASE + 9)
/** The component is shutting down and takes no new work. */
#define OD_ESHUTDOWN (OD_STATUS_BASE + 10)
/**
 * A write was sent but its outcome is unknown: the backing service did not answer (a timeout, a
 * lost connection, a 5xx) and reading back could not tell. It may have been applied, or may still
 * be; a retry must be one that is safe either way.
 */
#define OD_EUNKNOWN (OD_STATUS_BASE + 11)

/**
 * A short, static description of @p status: orderd's own values by name, anything else through
 * apr_strerror into @p buf (of @p bufsize bytes). Returns @p buf or a static string; never NULL.
 * Thread-safe.
 */
const char *od_status_str(apr_status_t status, char *buf, apr_size_t bufsize);

#endif
