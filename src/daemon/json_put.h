/* SPDX-License-Identifier: MIT */
/*
 * json_put.h — the two ways control replies add a member: a number and a
 * string (NULL: JSON null), and the reply that starts as {"ok": true}.
 * Shared by the commands and the stats reply.
 */
#ifndef FLTMGR_JSON_PUT_H
#define FLTMGR_JSON_PUT_H

#include <stdint.h>

#include <json-c/json.h>

static inline void
put_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static inline void
put_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

/* {"ok": true}, to which a command adds its members. */
static inline struct json_object *
ok_reply(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

#endif
