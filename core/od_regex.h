/*
 * od_regex: POSIX extended regular expressions taken from configuration, compiled only when
 * their cost is bounded.
 *
 * glibc's regcomp expands every repetition into copies of what it repeats (`x{n,m}` into m
 * copies, `x+` into `xx*`), so stacked or nested repetitions multiply: `a` followed by twenty
 * `+` takes minutes and gigabytes to compile. Before calling regcomp, a pattern is measured: an
 * atom (a character, `.`, `^`, `$`, a bracket expression `[...]`, a backslash escape) counts 1,
 * `|` counts 1, a group counts its contents plus 1, and a quantifier multiplies the item it
 * follows: `*`, `+` and `?` by 2, `{n}` by n, `{n,m}` by m, `{n,}` by n + 1 (and a quantifier
 * after a quantifier multiplies again). A pattern is refused when it is longer than
 * OD_REGEX_MAX_LEN bytes, has a repetition bound above RE_DUP_MAX, measures more than
 * OD_REGEX_MAX_COST, or has a back-reference (`\1`..`\9`): glibc matches those by
 * backtracking, and the subject (a customer_id) comes from callers.
 */
#ifndef OD_REGEX_H
#define OD_REGEX_H

#include <apr_pools.h>
#include <regex.h>

/** The longest pattern accepted, in bytes. */
#define OD_REGEX_MAX_LEN 256

/** The largest measure accepted (see above). */
#define OD_REGEX_MAX_COST 500

/**
 * Measures @p pattern without compiling it. Returns NULL when it is within the bounds above, or
 * why not: a phrase to follow the pattern in a message ("is too costly to compile: ..."), static
 * or from @p p. Says nothing about its syntax: regcomp judges that. Thread-safe.
 */
const char *od_regex_check(const char *pattern, apr_pool_t *p);

/**
 * Checks @p pattern with od_regex_check, then compiles it into @p re with REG_EXTENDED |
 * REG_NOSUB. Returns APR_SUCCESS, after which the caller owns @p re and releases it with
 * regfree; or OD_ECONFIG with @p re untouched (nothing to free) and @p *errmsg (from @p p)
 * naming the pattern and the problem. Thread-safe.
 */
apr_status_t od_regex_compile(regex_t *re, const char *pattern, const char **errmsg, apr_pool_t *p);

#endif
