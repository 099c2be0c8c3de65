/* Heap-formatted strings and marked truncation of message buffers (see randygpt/text.h). */
#define _GNU_SOURCE /* vasprintf */
#include "randygpt/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *rg_vstrf(const char *fmt, va_list ap) {
    char *s = NULL;
    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

char *rg_strf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = rg_vstrf(fmt, ap);
    va_end(ap);
    return s;
}

void rg_mark_truncated(char *buf, size_t buf_len) {
    size_t mark = sizeof RG_TRUNCATED_MARK - 1;
    if (buf_len == 0) return;
    if (buf_len <= mark) {
        buf[0] = '\0'; /* too small to say anything: callers never pass such buffers */
        return;
    }
    size_t used = strnlen(buf, buf_len - 1);
    size_t at = used + mark < buf_len ? used : buf_len - 1 - mark;
    memcpy(buf + at, RG_TRUNCATED_MARK, mark + 1);
}

static void format_at(char *buf, size_t buf_len, size_t at, const char *fmt, va_list ap) {
    if (buf_len == 0) return;
    if (at >= buf_len) at = buf_len - 1;
    int n = vsnprintf(buf + at, buf_len - at, fmt, ap);
    if (n < 0) {
        buf[at] = '\0';
        rg_mark_truncated(buf, buf_len);
    } else if ((size_t)n >= buf_len - at) {
        rg_mark_truncated(buf, buf_len);
    }
}

void rg_verrf(char *buf, size_t buf_len, const char *fmt, va_list ap) {
    format_at(buf, buf_len, 0, fmt, ap);
}

void rg_errf(char *buf, size_t buf_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    format_at(buf, buf_len, 0, fmt, ap);
    va_end(ap);
}

void rg_errf_append(char *buf, size_t buf_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    format_at(buf, buf_len, buf_len ? strnlen(buf, buf_len - 1) : 0, fmt, ap);
    va_end(ap);
}
