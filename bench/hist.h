/*
 * hist: a small log-linear latency histogram (microseconds), in the manner of HdrHistogram:
 * exact below 128 us, then 64 sub-buckets per power of two (about 1.6 % resolution), which is
 * plenty for p50..p99 and keeps recording O(1) and allocation-free in the load loops.
 */
#ifndef ODB_HIST_H
#define ODB_HIST_H

#include <stdint.h>

#define HIST_LINEAR 128
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + 48 * HIST_SUB)

typedef struct hist_t {
    uint64_t count[HIST_BUCKETS];
    uint64_t n;
    uint64_t max_us;
} hist_t;

static inline int hist_index(uint64_t us)
{
    if (us < HIST_LINEAR) {
        return (int) us;
    }
    int e = 63 - __builtin_clzll(us); /* >= 7 */
    int sub = (int) ((us >> (e - 6)) & (HIST_SUB - 1));
    int idx = HIST_LINEAR + (e - 7) * HIST_SUB + sub;
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of a bucket, as the value reported for it. */
static inline double hist_value(int idx)
{
    if (idx < HIST_LINEAR) {
        return idx;
    }
    int e = (idx - HIST_LINEAR) / HIST_SUB + 7;
    int sub = (idx - HIST_LINEAR) % HIST_SUB;
    double lo = (double) ((uint64_t) (HIST_SUB + sub) << (e - 6));
    return lo + (double) (1ULL << (e - 6)) / 2.0;
}

static inline void hist_record(hist_t *h, uint64_t us)
{
    h->count[hist_index(us)]++;
    h->n++;
    h->max_us = us > h->max_us ? us : h->max_us;
}

/* The q-quantile (0 < q <= 1) in milliseconds; 0 when empty. */
static inline double hist_quantile_ms(const hist_t *h, double q)
{
    uint64_t want = (uint64_t) ((double) h->n * q + 0.999999), seen = 0;

    if (h->n == 0) {
        return 0.0;
    }
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            double v = hist_value(i);
            return (v > (double) h->max_us ? (double) h->max_us : v) / 1000.0;
        }
    }
    return (double) h->max_us / 1000.0;
}

#endif
