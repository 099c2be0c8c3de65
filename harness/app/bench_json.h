/*
 * The few helpers `bench` adds to jansson (the JSON library): numbers that are null when they were
 * not measured, nullable strings, fields read with a default, and bench.json's layout on disk.
 */
#ifndef RANDYGPT_BENCH_JSON_H
#define RANDYGPT_BENCH_JSON_H

#include <jansson.h>

/* 10 significant digits are ample for measurements; bench.json is indented, a child's line not. */
#define RG_JSON_FILE_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(10))
#define RG_JSON_LINE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

/* x as a JSON number, or null when x is not finite (a measurement that was not made). */
json_t *rg_json_real(double x);
/* s as a JSON string, or null when s is NULL; bytes that are not UTF-8 (a plugin's describe
 * line may have any) become '?', as JSON must be UTF-8. */
json_t *rg_json_text(const char *s);
/* The number at key of object j (an integer or a real), or NAN when missing or not a number. */
double rg_json_num(const json_t *j, const char *key);
/* Writes root to path with RG_JSON_FILE_FLAGS and a final newline. Returns 0, or -1 with errno. */
int rg_json_write_file(const json_t *root, const char *path);

#endif /* RANDYGPT_BENCH_JSON_H */
