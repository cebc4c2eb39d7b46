/* SPDX-License-Identifier: MIT */
/* json_util.c — see json_util.h. */
#include "json_util.h"

#include "testutil.h"

struct json_object *
jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no member %s in %s", key, json_object_to_json_string(o));
	return v;
}

int64_t
jint(struct json_object *o, const char *key)
{
	return json_object_get_int64(jget(o, key));
}
