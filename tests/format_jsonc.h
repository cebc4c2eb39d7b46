/* SPDX-License-Identifier: MIT */
/*
 * format_jsonc.h — the minispy service's former JSON encoder, built on
 * json-c (an object tree per record), kept as the reference that the
 * hand-written encoder (filters/minispy/service/json_writer.c, format.c)
 * is checked and measured against: tests/test_minispy_format.c and the
 * fuzzer tests/fuzz/fuzz_minispy_json.c require the two to write the same
 * bytes, bench/json_bench.c times both. Not part of any program.
 */
#ifndef MINISPY_SERVICE_FORMAT_JSONC_H
#define MINISPY_SERVICE_FORMAT_JSONC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "minispy_record.h"

/* The record as a json-c object (a new reference); NULL: no memory. */
struct json_object *spy_jsonc_record(const struct minispy_record *r);
/* One line for r, as the service wrote it before: spy_jsonc_record(),
 * serialized plain without slash escapes, then '\n'. */
int spy_jsonc_format_record(FILE *f, const struct minispy_record *r);
/* The former time formatting (gmtime_r + strftime + snprintf). */
void spy_jsonc_time_rfc3339(int64_t time_ns, char *buf, size_t size);

/* The former string helpers (json-c passes bytes >= 0x80 through, so each
 * string was first checked, then sanitized and base64-encoded in new
 * buffers). spy_jsonc_sanitize and spy_jsonc_base64 return a string the
 * caller frees, NULL when out of memory. */
bool spy_jsonc_utf8_valid(const char *s, size_t len);
char *spy_jsonc_sanitize(const char *s, size_t len);
char *spy_jsonc_base64(const void *s, size_t len);

#endif /* MINISPY_SERVICE_FORMAT_JSONC_H */
