/* SPDX-License-Identifier: MIT */
/*
 * minispy_format_check.h — the judge of one JSON line of the minispy
 * service, shared by tests/test_minispy_format.c and the fuzzer
 * tests/fuzz/fuzz_minispy_json.c: is it one strict RFC 8259 object, in
 * UTF-8, on one line, whose members give back every field of the record
 * (file names to the exact byte), and is it the very line the former
 * json-c encoder (format_jsonc.c) writes?
 */
#ifndef FLTMGR_TEST_MINISPY_FORMAT_CHECK_H
#define FLTMGR_TEST_MINISPY_FORMAT_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "minispy_record.h"

/* line[0..len) as written for r (with its '\n'). Returns NULL if it is
 * right, else what is wrong (static storage). */
const char *check_json_line(const struct minispy_record *r, const char *line, size_t len);

/* Independent of the service's utf8.c (it decodes code points instead of
 * matching the byte table): s[0..len) is well-formed UTF-8 (RFC 3629). */
bool check_utf8_valid(const unsigned char *s, size_t len);

#endif
