/* od_regex: a cost bound in front of regcomp for patterns from configuration. */
#include "od_regex.h"
#include "od_status.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <limits.h>
#include <string.h>

/* Calibration (glibc 2.36, C locale; CPU time of the first regcomp in a fresh process, the
 * costliest one, and the process's peak RSS, 1.4 MB when idle). At the bound the worst shape
 * found is `a{1,500}` (measure 500): 8-11 ms, 3.8 MB; `(a?){1,166}` and `((a?){1,12}){1,12}`
 * take 5-8 ms, `(a|b){1,125}`, `(a{1,21}){1,21}`, `a++++++++` 1-2 ms. The default
 * `^CUST-[0-9]{6}$` measures 14 and takes 0.5 ms. Beyond the bound: `a{1,1000}` 28-35 ms and
 * 9.8 MB, `(a{1,100}){1,100}` 50-70 ms and 14 MB, `a{1,5000}` 1.1 s and 200 MB, `(a|b){1,5000}`
 * 3.2 s and 400 MB, and `a` with 22 `+` over 10 s and 1.8 GB before it fails. Back-references:
 * `(a*)(a*)(a*)\3\2\1c` compiles in 1 ms but takes 0.4 s to match a 40-character subject and
 * over 20 s for 80. */

/* Measures saturate here, so nothing overflows however the pattern nests. */
#define OD_REGEX_CAP ((unsigned long) OD_REGEX_MAX_COST + 1)

/* One open group: the items before its last one, and the last one, which a quantifier
 * multiplies. */
typedef struct od_regex_frame_t {
    unsigned long done;
    unsigned long last;
} od_regex_frame_t;

/* A walk over one pattern. */
typedef struct od_regex_walk_t {
    od_regex_frame_t frames[OD_REGEX_MAX_LEN + 1]; /* [0] is the whole pattern */
    int depth;
    unsigned long max_bound; /* the largest repetition bound seen */
    int backref;             /* a `\1`..`\9` was seen */
} od_regex_walk_t;

static unsigned long od_regex_add(unsigned long a, unsigned long b)
{
    return a + b > OD_REGEX_CAP ? OD_REGEX_CAP : a + b;
}

static unsigned long od_regex_mul(unsigned long a, unsigned long b)
{
    return b != 0 && a > OD_REGEX_CAP / b ? OD_REGEX_CAP : a * b;
}

/* Bytes of the bracket expression at @p s ('['): `[]a]` and `[^]a]` hold a ']', and `[:`, `[.`,
 * `[=` open classes, collating symbols and equivalence classes that end at `:]`, `.]`, `=]`. An
 * unterminated one runs to the end (regcomp refuses it). */
static apr_size_t od_regex_bracket(const char *s)
{
    apr_size_t i = 1;

    i += s[i] == '^';
    i += s[i] == ']';
    while (s[i] != '\0' && s[i] != ']') {
        if (s[i] == '[' && s[i + 1] != '\0' && strchr(":.=", s[i + 1]) != NULL) {
            const char end[3] = {s[i + 1], ']', '\0'};
            const char *close = strstr(s + i + 2, end);
            if (close == NULL) {
                return strlen(s);
            }
            i = (apr_size_t) (close - s) + 2;
        } else {
            i++;
        }
    }
    return s[i] == ']' ? i + 1 : i;
}

/* A repetition count at @p *s: digits, saturated above RE_DUP_MAX; -1 if there are none. */
static long od_regex_count(const char **s)
{
    long n = -1;

    for (; apr_isdigit(**s); (*s)++) {
        n = n < 0 ? 0 : n;
        n = n > RE_DUP_MAX ? n : n * 10 + (**s - '0');
    }
    return n;
}

/* The interval `{n}`, `{n,}`, `{,m}` or `{n,m}` at @p s ('{'): its length and the factor it
 * multiplies by, or 0 when it is no interval (regcomp then takes '{' as it sees fit). */
static apr_size_t od_regex_interval(od_regex_walk_t *w, const char *s, unsigned long *factor)
{
    const char *at = s + 1;
    long n = od_regex_count(&at), m = n;

    if (*at == ',') {
        at++;
        m = od_regex_count(&at);
    }
    if (*at != '}' || (n < 0 && m < 0)) {
        return 0;
    }
    unsigned long lo = n < 0 ? 0 : (unsigned long) n;
    unsigned long hi = m < 0 ? lo + 1 : (unsigned long) m; /* `{n,}`: n copies and a star */
    unsigned long most = hi > lo ? hi : lo;
    unsigned long bound = m < 0 ? lo : most; /* as written */
    w->max_bound = bound > w->max_bound ? bound : w->max_bound;
    *factor = most > 0 ? most : 1;
    return (apr_size_t) (at - s) + 1;
}

/* A new item in the innermost group; the previous last one is done. */
static void od_regex_item(od_regex_walk_t *w, unsigned long cost)
{
    od_regex_frame_t *f = &w->frames[w->depth];

    f->done = od_regex_add(f->done, f->last);
    f->last = cost;
}

static void od_regex_close(od_regex_walk_t *w)
{
    const od_regex_frame_t *f = &w->frames[w->depth--];

    od_regex_item(w, od_regex_add(od_regex_add(f->done, f->last), 1));
}

/* Takes the element at @p s; returns its length. */
static apr_size_t od_regex_step(od_regex_walk_t *w, const char *s)
{
    unsigned long factor = 2;
    apr_size_t len = 0;

    switch (*s) {
    case '(':
        w->frames[++w->depth] = (od_regex_frame_t){0, 0};
        return 1;
    case ')':
        if (w->depth > 0) {
            od_regex_close(w);
            return 1;
        }
        break; /* unmatched: an ordinary character */
    case '*':
    case '+':
    case '?':
        w->frames[w->depth].last = od_regex_mul(w->frames[w->depth].last, factor);
        return 1;
    case '{':
        len = od_regex_interval(w, s, &factor);
        if (len > 0) {
            w->frames[w->depth].last = od_regex_mul(w->frames[w->depth].last, factor);
            return len;
        }
        break;
    case '[':
        od_regex_item(w, 1);
        return od_regex_bracket(s);
    case '\\':
        od_regex_item(w, 1);
        w->backref |= s[1] >= '1' && s[1] <= '9';
        return s[1] != '\0' ? 2 : 1;
    default:
        break;
    }
    od_regex_item(w, 1); /* a character, '.', '^', '$', '|' */
    return 1;
}

const char *od_regex_check(const char *pattern, apr_pool_t *p)
{
    od_regex_walk_t w;
    apr_size_t len = strlen(pattern);

    if (len > OD_REGEX_MAX_LEN) {
        return apr_psprintf(p, "is %" APR_SIZE_T_FMT " bytes long; at most %d are allowed", len,
                            OD_REGEX_MAX_LEN);
    }
    w.depth = 0;
    w.max_bound = 0;
    w.backref = 0;
    w.frames[0] = (od_regex_frame_t){0, 0};
    for (const char *s = pattern; *s != '\0';) {
        s += od_regex_step(&w, s);
    }
    while (w.depth > 0) { /* unbalanced: measured as if closed; regcomp refuses it */
        od_regex_close(&w);
    }
    if (w.max_bound > RE_DUP_MAX) {
        return apr_psprintf(p, "has a repetition bound above RE_DUP_MAX (%d)", RE_DUP_MAX);
    }
    if (w.backref) {
        return "has a back-reference (\\1 to \\9), which may take exponential time to match";
    }
    if (od_regex_add(w.frames[0].done, w.frames[0].last) > OD_REGEX_MAX_COST) {
        return apr_psprintf(p,
                            "is too costly to compile: it would expand to more than %d elements "
                            "(repetitions multiply what they repeat: (a{10}){10} is 110)",
                            OD_REGEX_MAX_COST);
    }
    return NULL;
}

apr_status_t od_regex_compile(regex_t *re, const char *pattern, const char **errmsg, apr_pool_t *p)
{
    char msg[128];
    const char *why = od_regex_check(pattern, p);

    if (why != NULL) {
        /* A pattern refused for its length is shown only in part. */
        *errmsg =
            apr_psprintf(p, "'%.*s%s' %s", 64, pattern, strlen(pattern) > 64 ? "..." : "", why);
        return OD_ECONFIG;
    }
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, re, msg, sizeof(msg));
        *errmsg = apr_psprintf(p, "'%s' is not a valid POSIX extended regular expression: %s",
                               pattern, msg);
        return OD_ECONFIG;
    }
    return APR_SUCCESS;
}
