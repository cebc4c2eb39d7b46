/* SPDX-License-Identifier: MIT */
/*
 * ctl_request.c — see ctl_request.h. json-c does the JSON; this file owns
 * the schema: which command takes which members, of which type, which are
 * required, and that nothing else is present.
 */
#include "daemon/ctl_request.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

/* Members a command accepts, and which of them it requires. */
#define M_NAME     0x01u
#define M_PATH     0x02u
#define M_KIND     0x04u
#define M_ALTITUDE 0x08u
#define M_OBJECT   0x10u

static const struct {
	const char *name;
	unsigned allowed, required;
	bool read_only;
} commands[CTL_COMMAND_COUNT_] = {
	[CTL_STATUS] = { "status", 0, 0, true },
	[CTL_FILTERS] = { "filters", 0, 0, true },
	[CTL_INSTANCES] = { "instances", M_NAME, 0, true }, /* name: one filter's */
	[CTL_PORTS] = { "ports", 0, 0, true },
	[CTL_STATS] = { "stats", 0, 0, true },
	[CTL_LOAD] = { "load", M_NAME | M_ALTITUDE | M_OBJECT, M_NAME, false },
	[CTL_UNLOAD] = { "unload", M_NAME, M_NAME, false },
	[CTL_ATTACH] = { "attach", M_NAME | M_PATH | M_KIND, M_NAME | M_PATH, false },
	[CTL_DETACH] = { "detach", M_NAME | M_PATH, M_NAME | M_PATH, false },
	[CTL_RELOAD] = { "reload", 0, 0, false },
	[CTL_VOLUMES] = { "volumes", 0, 0, true },
};

static const struct {
	const char *key;
	unsigned bit;
} members[] = {
	{ "name", M_NAME },         { "path", M_PATH },     { "kind", M_KIND },
	{ "altitude", M_ALTITUDE }, { "object", M_OBJECT },
};

const char *
ctl_command_name(enum ctl_command c)
{
	return (unsigned)c < CTL_COMMAND_COUNT_ ? commands[c].name : "?";
}

bool
ctl_command_read_only(enum ctl_command c)
{
	return (unsigned)c < CTL_COMMAND_COUNT_ && commands[c].read_only;
}

void
ctl_request_free(struct ctl_request *r)
{
	free(r->name);
	free(r->path);
	free(r->altitude);
	free(r->object);
	*r = (struct ctl_request){ 0 };
}

static int __attribute__((format(printf, 4, 5)))
refuse(struct ctl_request *r, char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	ctl_request_free(r);
	return -EINVAL;
}

static char **
field_of(struct ctl_request *r, unsigned bit)
{
	switch (bit) {
	case M_NAME:
		return &r->name;
	case M_PATH:
		return &r->path;
	case M_ALTITUDE:
		return &r->altitude;
	case M_OBJECT:
		return &r->object;
	default:
		return NULL;
	}
}

/* A string member without control characters, of sane length. */
static bool
clean_string(const char *s, size_t len)
{
	if (len == 0 || len >= CFG_MAX_LINE || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int
ctl_request_parse(const char *buf, size_t len, struct ctl_request *ret, char *why,
		  size_t why_len)
{
	struct ctl_request r = { .command = CTL_COMMAND_COUNT_ };
	struct json_tokener *tok;
	struct json_object *obj, *cmd;
	unsigned seen = 0;
	int rc = 0;

	*ret = (struct ctl_request){ 0 };
	if (len > CTL_MAX_REQUEST) {
		snprintf(why, why_len, "request of %zu bytes exceeds the %d-byte limit",
			 len, CTL_MAX_REQUEST);
		return -EMSGSIZE;
	}
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		if (obj || json_tokener_get_error(tok) == json_tokener_success)
			snprintf(why, why_len, "trailing data after the JSON object");
		else
			snprintf(why, why_len, "request is not valid JSON: %s",
				 json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(obj);
		json_tokener_free(tok);
		return -EINVAL;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return refuse(&r, why, why_len, "request must be a JSON object");
	}
	if (!json_object_object_get_ex(obj, "command", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		json_object_put(obj);
		return refuse(&r, why, why_len, "request has no \"command\" string");
	}
	for (int c = 0; c < CTL_COMMAND_COUNT_; c++)
		if (!strcmp(json_object_get_string(cmd), commands[c].name))
			r.command = (enum ctl_command)c;
	if (r.command == CTL_COMMAND_COUNT_) {
		char name[64];

		snprintf(name, sizeof(name), "%s", json_object_get_string(cmd));
		json_object_put(obj);
		return refuse(&r, why, why_len, "unknown command \"%s\"", name);
	}
	json_object_object_foreach(obj, key, val)
	{
		unsigned bit = 0;
		const char *s;

		if (!strcmp(key, "command"))
			continue;
		for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
			if (!strcmp(key, members[i].key))
				bit = members[i].bit;
		if (!(bit & commands[r.command].allowed)) {
			rc = refuse(&r, why, why_len, "%s takes no member \"%.64s\"",
				    commands[r.command].name, key);
			break;
		}
		if (!json_object_is_type(val, json_type_string)) {
			rc = refuse(&r, why, why_len, "member \"%s\" must be a string",
				    key);
			break;
		}
		s = json_object_get_string(val);
		if (!clean_string(s, (size_t)json_object_get_string_len(val))) {
			rc = refuse(&r, why, why_len,
				    "member \"%s\" must be 1..%d printable characters",
				    key, CFG_MAX_LINE - 1);
			break;
		}
		seen |= bit;
		if (bit == M_KIND) {
			int k = cfg_kind_parse(s);

			if (k < 0) {
				rc = refuse(&r, why, why_len,
					    "kind must be subtree, mount or filesystem");
				break;
			}
			r.kind = (enum flt_instance_kind)k;
			continue;
		}
		*field_of(&r, bit) = strdup(s);
		if (!*field_of(&r, bit)) {
			ctl_request_free(&r);
			rc = -ENOMEM;
			break;
		}
	}
	json_object_put(obj);
	if (rc < 0)
		return rc;
	if ((seen & commands[r.command].required) != commands[r.command].required) {
		const char *miss = !(seen & M_NAME) ? "name" : "path";

		return refuse(&r, why, why_len, "%s needs member \"%s\"",
			      commands[r.command].name, miss);
	}
	if (r.path && r.path[0] != '/')
		return refuse(&r, why, why_len, "path must be absolute");
	*ret = r;
	return 0;
}
