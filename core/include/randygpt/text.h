/*
 * Text whose length is not known in advance. Paths and other unbounded strings are built on the
 * heap with rg_strf. Messages travel through the core API in caller-owned buffers (char *err,
 * size_t err_len); rg_errf fills one and marks a message that did not fit, so that a cut is always
 * visible. Host-side only: plugins keep the plain buffers of the ABI (see backend.h).
 */
#ifndef RANDYGPT_TEXT_H
#define RANDYGPT_TEXT_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The size of a message buffer in the host: room for two paths of PATH_MAX and their reasons. */
#define RG_ERR_LEN 10240

/* What ends a message that did not fit its buffer. */
#define RG_TRUNCATED_MARK "... [truncated]"

/* The formatted text in a new heap string (free it), or NULL when out of memory. */
char *rg_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *rg_vstrf(const char *fmt, va_list ap);

/* Writes the formatted text into buf (buf_len bytes, always terminated); when it does not fit, its
 * end is RG_TRUNCATED_MARK. */
void rg_errf(char *buf, size_t buf_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like rg_errf, after the text already in buf. */
void rg_errf_append(char *buf, size_t buf_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void rg_verrf(char *buf, size_t buf_len, const char *fmt, va_list ap);

/* Ends buf (a terminated string in buf_len bytes) with RG_TRUNCATED_MARK, keeping as much of the
 * start as fits. */
void rg_mark_truncated(char *buf, size_t buf_len);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_TEXT_H */
