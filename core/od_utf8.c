/* od_utf8: well-formed UTF-8 (Unicode table 3-7). */
#include "od_utf8.h"

#include <stdint.h>
#include <string.h>

/* One row per valid lead byte range: the sequence length and the allowed range of the second
 * byte, which is what excludes overlongs (E0, F0), surrogates (ED) and values above U+10FFFF
 * (F4). The bytes after the second are plain continuations (80..BF). */
typedef struct od_utf8_row_s {
    unsigned char lead_lo, lead_hi, len, second_lo, second_hi;
} od_utf8_row_t;

static const od_utf8_row_t od_utf8_rows[] = {
    {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF}, {0xE1, 0xEC, 3, 0x80, 0xBF},
    {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF}, {0xF0, 0xF0, 4, 0x90, 0xBF},
    {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
};

apr_size_t od_utf8_seq_len(const unsigned char *s, apr_size_t avail)
{
    size_t nrows = sizeof(od_utf8_rows) / sizeof(od_utf8_rows[0]);

    for (size_t r = 0; r < nrows; r++) {
        const od_utf8_row_t *row = &od_utf8_rows[r];
        if (s[0] < row->lead_lo || s[0] > row->lead_hi) {
            continue;
        }
        if (avail < row->len || s[1] < row->second_lo || s[1] > row->second_hi) {
            return 0;
        }
        for (apr_size_t i = 2; i < row->len; i++) {
            if ((s[i] & 0xC0) != 0x80) {
                return 0;
            }
        }
        return row->len;
    }
    return 0;
}

/* The index of the first byte >= 0x80 at or after @p i, or @p len. */
static apr_size_t od_utf8_skip_ascii(const char *s, apr_size_t i, apr_size_t len)
{
    uint64_t word;

    /* memcpy: an unaligned load, which compilers turn into one instruction. */
    while (len - i >= sizeof(word)) {
        memcpy(&word, s + i, sizeof(word));
        if ((word & UINT64_C(0x8080808080808080)) != 0) {
            break;
        }
        i += sizeof(word);
    }
    while (i < len && (unsigned char) s[i] < 0x80) {
        i++;
    }
    return i;
}

apr_size_t od_utf8_valid_prefix(const char *s, apr_size_t len)
{
    apr_size_t i = od_utf8_skip_ascii(s, 0, len);

    while (i < len) {
        apr_size_t n = od_utf8_seq_len((const unsigned char *) s + i, len - i);
        if (n == 0) {
            return i;
        }
        i = od_utf8_skip_ascii(s, i + n, len);
    }
    return len;
}

apr_size_t od_utf8_repair(char *dst, const char *src, apr_size_t len)
{
    apr_size_t in = 0, out = 0;

    while (in < len) {
        apr_size_t ok = od_utf8_valid_prefix(src + in, len - in);
        memcpy(dst + out, src + in, ok);
        in += ok;
        out += ok;
        if (in < len) {
            memcpy(dst + out, OD_UTF8_REPLACEMENT, 3);
            out += 3;
            in++;
        }
    }
    return out;
}
