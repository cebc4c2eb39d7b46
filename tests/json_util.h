/* SPDX-License-Identifier: MIT */
/*
 * json_util.h — reading json-c replies in tests: a member that must be
 * there (the test fails if it is not), and the same as an integer. Linked
 * only by the programs that use json-c (the json_util static library in
 * tests/meson.build).
 */
#ifndef FLTMGR_TESTS_JSON_UTIL_H
#define FLTMGR_TESTS_JSON_UTIL_H

#include <stdint.h>

#include <json-c/json.h>

/* o's member key (fails the test if it has none), and as an integer. */
struct json_object *jget(struct json_object *o, const char *key);
int64_t jint(struct json_object *o, const char *key);

#endif
