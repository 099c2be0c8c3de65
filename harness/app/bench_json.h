/*
 * A small JSON reader and the few writing helpers `bench` needs. The reader builds a tree of
 * rg_json values; it is used to read a child's result line and, in the tests, a whole bench.json.
 */
#ifndef RANDYGPT_BENCH_JSON_H
#define RANDYGPT_BENCH_JSON_H

#include <stddef.h>
#include <stdio.h>

typedef enum rg_json_type {
    RG_JSON_NULL,
    RG_JSON_BOOL,
    RG_JSON_NUMBER,
    RG_JSON_STRING,
    RG_JSON_ARRAY,
    RG_JSON_OBJECT
} rg_json_type;

typedef struct rg_json {
    rg_json_type type;
    int boolean;            /* RG_JSON_BOOL */
    double number;          /* RG_JSON_NUMBER */
    char *string;           /* RG_JSON_STRING, NUL-terminated (an embedded \u0000 ends it) */
    int count;              /* RG_JSON_ARRAY, RG_JSON_OBJECT: number of items */
    struct rg_json *items;  /* (count) values */
    char **keys;            /* (count) keys of an object, NULL for an array */
} rg_json;

/* Parses text (the whole of it must be one value, surrounded by whitespace at most).
 * Returns a tree to free with rg_json_free, or NULL with one line in err naming the offset. */
rg_json *rg_json_parse(const char *text, char *err, size_t err_len);
/* Reads and parses a file. Returns NULL with one line in err on failure. */
rg_json *rg_json_parse_file(const char *path, char *err, size_t err_len);
void rg_json_free(rg_json *j);

/* The value of key in an object; NULL when j is not an object or has no such key. */
const rg_json *rg_json_get(const rg_json *j, const char *key);
/* Item i of an array; NULL when j is not an array or i is out of range. */
const rg_json *rg_json_at(const rg_json *j, int i);
/* The number, or dflt when j is NULL or not a number. */
double rg_json_num(const rg_json *j, double dflt);
/* The string, or NULL when j is NULL or not a string. */
const char *rg_json_str(const rg_json *j);

/* Writes s as a JSON string with quotes and escapes; NULL writes null. */
void rg_json_write_string(FILE *f, const char *s);
/* Writes x with 10 significant digits (ample for measurements); a non-finite x writes null. */
void rg_json_write_number(FILE *f, double x);

#endif /* RANDYGPT_BENCH_JSON_H */
