/*
 * od_utf8: UTF-8 validation and repair.
 *
 * Well-formed means Unicode's table 3-7 (RFC 3629): no overlong forms, no UTF-16 surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences. Neither APR nor json-c offers
 * this: json-c's JSON_TOKENER_VALIDATE_UTF8 only checks the byte pattern while parsing, and its
 * serialiser copies bytes >= 0x80 through unchecked.
 */
#ifndef OD_UTF8_H
#define OD_UTF8_H

#include <apr.h>

/** U+FFFD REPLACEMENT CHARACTER, encoded: what od_utf8_repair puts for each invalid byte. */
#define OD_UTF8_REPLACEMENT "\xEF\xBF\xBD"

/**
 * The length (2 to 4) of the well-formed sequence starting at @p s, whose first byte is >= 0x80,
 * within the @p avail (>= 1) bytes there; 0 if none starts there (a continuation or invalid lead
 * byte, an overlong form, a surrogate, a code point above U+10FFFF, a truncated sequence). Reads
 * at most @p avail bytes. Pure; thread-safe.
 */
apr_size_t od_utf8_seq_len(const unsigned char *s, apr_size_t avail);

/**
 * The length of the longest well-formed prefix of the @p len bytes at @p s: @p len if they are
 * all valid UTF-8 (NUL bytes count as valid). ASCII is checked eight bytes at a time, so text
 * without bytes >= 0x80 costs one test per eight bytes. Pure; thread-safe.
 */
apr_size_t od_utf8_valid_prefix(const char *s, apr_size_t len);

/**
 * Copies the @p len bytes at @p src to @p dst, replacing each byte that is not part of a
 * well-formed sequence with U+FFFD (so a truncated 3-byte sequence becomes two U+FFFD); valid
 * sequences and ASCII are copied unchanged. @p dst must have room for 3 * @p len bytes and must
 * not overlap @p src; nothing is NUL-terminated. Returns the number of bytes written. Pure;
 * thread-safe.
 */
apr_size_t od_utf8_repair(char *dst, const char *src, apr_size_t len);

#endif
