/* UTF-8 at the edges: names and reasons from guests are cut into fixed buffers, and jansson
 * refuses a string that is not valid UTF-8 (json_string() returns NULL, and one NULL made
 * the whole status snapshot NULL). Header-only so that the engine, which links nothing but
 * itself, can use it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Length of the sequence starting at s[0..n) if it is one valid UTF-8 character (no
 * overlong forms, no surrogates, at most U+10FFFF), else 0. */
static inline size_t vmg_utf8_char_len(const unsigned char *s, size_t n) {
        unsigned char c = s[0];
        size_t len;
        unsigned min;
        unsigned cp;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2, min = 0x80, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3, min = 0x800, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4, min = 0x10000, cp = c & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* Whether the NUL-terminated s is valid UTF-8. */
static inline bool vmg_utf8_valid(const char *s) {
        size_t n = strlen(s);
        for (size_t i = 0; i < n;) {
                size_t l = vmg_utf8_char_len((const unsigned char *) s + i, n - i);
                if (!l)
                        return false;
                i += l;
        }
        return true;
}

/* After snprintf() cut s to fit its buffer: drops a last character left incomplete, so
 * that a valid string cut at any byte stays valid. Touches at most the last 3 bytes. */
static inline void vmg_utf8_cut(char *s) {
        size_t n = strlen(s), i = n;
        /* back to the lead byte of the last character (at most 3 continuation bytes) */
        while (i > 0 && n - i < 4 && ((unsigned char) s[i - 1] & 0xc0) == 0x80)
                i--;
        if (i == 0 || ((unsigned char) s[i - 1] & 0xc0) != 0xc0)
                return; /* ASCII last, or no lead byte near the end: nothing cut here */
        i--;
        if (vmg_utf8_char_len((const unsigned char *) s + i, n - i) != n - i)
                s[i] = '\0';
}

/* Replaces every byte that is not part of a valid UTF-8 character with '?', in place, so a
 * name that was never valid (a hostile or broken source) is still shown, not dropped. */
static inline void vmg_utf8_scrub(char *s) {
        size_t n = strlen(s);
        for (size_t i = 0; i < n;) {
                size_t l = vmg_utf8_char_len((const unsigned char *) s + i, n - i);
                if (l) {
                        i += l;
                        continue;
                }
                s[i++] = '?';
        }
}
