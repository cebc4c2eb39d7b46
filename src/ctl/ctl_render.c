/* SPDX-License-Identifier: MIT */
/*
 * ctl_render.c — fltmc's human output for each command's successful reply
 * (the reply formats are in docs/control.md). It only reads the reply,
 * which the caller owns, and trusts none of it: every member is looked up
 * with its type checked, a missing or odd one prints as "-", and members
 * it does not know are ignored (stats prints whatever counters it gets, so
 * new ones show up without a new fltmc).
 */
#include "ctl/ctl_render.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl_table.h"

#define MAX_COLUMNS   16
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The text of obj[key] for a table cell: strings as they are, numbers and
 * booleans as JSON writes them, anything else (missing, null, an object
 * or array, or obj not an object at all) as "-". The string belongs to
 * obj. */
static const char *
text(json_object *obj, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return "-";
	switch (json_object_get_type(v)) {
	case json_type_string:
	case json_type_int:
	case json_type_double:
	case json_type_boolean:
		return json_object_get_string(v);
	default:
		return "-";
	}
}

/* reply[key] if it is an array, else NULL (which lists nothing). */
static json_object *
list(json_object *reply, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(reply, key, &v) &&
	    json_object_is_type(v, json_type_array))
		return v;
	return NULL;
}

static size_t
list_len(json_object *arr)
{
	return arr ? json_object_array_length(arr) : 0;
}

/* Writes s with control characters escaped. */
static int
put_text(FILE *out, const char *s)
{
	char *e = ctl_escape(s);

	if (!e)
		return -ENOMEM;
	fputs(e, out);
	free(e);
	return 0;
}

/* One table row per element of reply[list_key], column c showing the
 * element's keys[c]. */
static int
render_list(FILE *out, json_object *reply, const char *list_key,
	    const struct ctl_column *cols, const char *const *keys, size_t n_cols)
{
	json_object *arr = list(reply, list_key);
	const char *cells[MAX_COLUMNS];
	struct ctl_table *t = NULL;
	int r;

	assert(n_cols <= MAX_COLUMNS);
	r = ctl_table_new(cols, n_cols, &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < list_len(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		for (size_t c = 0; c < n_cols; c++)
			cells[c] = text(e, keys[c]);
		r = ctl_table_add_row(t, cells);
		if (r < 0)
			goto out;
	}
	ctl_table_print(t, out);
out:
	ctl_table_free(t);
	return r;
}

int
ctl_render_filters(FILE *out, json_object *reply)
{
	/* The columns and minimum widths of Windows' `fltmc filters`. */
	static const struct ctl_column cols[] = {
		{ .header = "Filter Name", .min_width = 30 },
		{ .header = "Num Instances",
		  .align = CTL_ALIGN_RIGHT,
		  .header_align = CTL_ALIGN_RIGHT,
		  .min_width = 13 },
		{ .header = "Altitude",
		  .align = CTL_ALIGN_RIGHT,
		  .header_align = CTL_ALIGN_CENTER,
		  .min_width = 12 },
		{ .header = "State", .min_width = 7 },
	};
	static const char *const keys[] = { "name", "instances", "altitude", "state" };

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(keys), "a key per column");
	return render_list(out, reply, "filters", cols, keys, ARRAY_SIZE(keys));
}

/* The State cell of an instance: "attached", "re-attached TIME", "stale
 * since TIME", "held" (its filter is held shut), or what the daemon said. */
static const char *
instance_state_text(json_object *in, char *buf, size_t size)
{
	const char *st = text(in, "state"), *when = text(in, "state_time");

	if (!strcmp(st, "reattached"))
		snprintf(buf, size, "re-attached %s", when);
	else if (!strcmp(st, "stale"))
		snprintf(buf, size, "stale since %s", when);
	else
		return st;
	return buf;
}

int
ctl_render_instances(FILE *out, json_object *reply)
{
	static const struct ctl_column cols[] = {
		{ .header = "Filter", .min_width = 20 },
		{ .header = "Altitude",
		  .align = CTL_ALIGN_RIGHT,
		  .header_align = CTL_ALIGN_CENTER,
		  .min_width = 12 },
		{ .header = "Kind", .min_width = 10 },
		{ .header = "State", .min_width = 8 },
		{ .header = "Events",
		  .align = CTL_ALIGN_RIGHT,
		  .header_align = CTL_ALIGN_RIGHT,
		  .min_width = 10 },
		{ .header = "Denied",
		  .align = CTL_ALIGN_RIGHT,
		  .header_align = CTL_ALIGN_RIGHT,
		  .min_width = 8 },
		{ .header = "Path" },
	};
	/* NULL: the State cell, made from state and state_time */
	static const char *const keys[] = { "filter", "altitude", "kind", NULL,
					    "events", "denied",   "path" };
	json_object *arr = list(reply, "instances");
	const char *cells[ARRAY_SIZE(cols)];
	struct ctl_table *t = NULL;
	int r;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(keys), "a key per column");
	r = ctl_table_new(cols, ARRAY_SIZE(cols), &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < list_len(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		char state[128];

		for (size_t c = 0; c < ARRAY_SIZE(cols); c++)
			cells[c] = keys[c] ? text(e, keys[c])
					   : instance_state_text(e, state, sizeof(state));
		r = ctl_table_add_row(t, cells);
		if (r < 0)
			goto out;
	}
	ctl_table_print(t, out);
out:
	ctl_table_free(t);
	return r;
}

/* The Filters cell of a volume: "minispy (auto), scanner", or "-". */
static char *
volume_filters_text(json_object *vol)
{
	json_object *fl = list(vol, "filters");
	char *s = NULL;

	for (size_t i = 0; i < list_len(fl); i++) {
		json_object *f = json_object_array_get_idx(fl, i), *au;
		bool automatic = json_object_object_get_ex(f, "automatic", &au) &&
				 json_object_get_boolean(au);
		char *n;

		if (asprintf(&n, "%s%s%s%s", s ? s : "", s ? ", " : "", text(f, "name"),
			     automatic ? " (auto)" : "") < 0) {
			free(s);
			return NULL;
		}
		free(s);
		s = n;
	}
	return s ? s : strdup("-");
}

int
ctl_render_volumes(FILE *out, json_object *reply)
{
	static const struct ctl_column cols[] = {
		{ .header = "Mount Point", .min_width = 20 },
		{ .header = "File System", .min_width = 11 },
		{ .header = "Mount ID",
		  .align = CTL_ALIGN_RIGHT,
		  .header_align = CTL_ALIGN_RIGHT,
		  .min_width = 8 },
		{ .header = "Source", .min_width = 10 },
		{ .header = "Filters" },
	};
	json_object *arr = list(reply, "volumes");
	struct ctl_table *t = NULL;
	int r;

	r = ctl_table_new(cols, ARRAY_SIZE(cols), &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < list_len(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i), *pid;
		const char *cells[ARRAY_SIZE(cols)];
		char *point = NULL, *filters = volume_filters_text(e);
		int64_t ns_pid = json_object_object_get_ex(e, "ns_pid", &pid)
					 ? json_object_get_int64(pid)
					 : 0;

		if (ns_pid > 0 && asprintf(&point, "[pid %" PRId64 "] %s", ns_pid,
					   text(e, "mount_point")) < 0)
			point = NULL;
		cells[0] = point ? point : text(e, "mount_point");
		cells[1] = text(e, "fs_type");
		cells[2] = text(e, "mount_id");
		cells[3] = text(e, "source");
		cells[4] = filters;
		r = filters ? ctl_table_add_row(t, cells) : -ENOMEM;
		free(point);
		free(filters);
		if (r < 0)
			goto out;
	}
	ctl_table_print(t, out);
out:
	ctl_table_free(t);
	return r;
}

#define NUMBER_COLUMN(h)                                                                 \
	{                                                                                \
		.header = (h), .align = CTL_ALIGN_RIGHT, .header_align = CTL_ALIGN_RIGHT \
	}
#define CLIENT_COLUMN(l)                               \
	{                                              \
		.label = (l), .align = CTL_ALIGN_RIGHT \
	}

/* A table of server ports; under each port, one indented line per
 * connected client, aligned across all ports. */
int
ctl_render_ports(FILE *out, json_object *reply)
{
	static const struct ctl_column port_cols[] = {
		{ .header = "Port Name", .min_width = 20 },
		{ .header = "Filter", .min_width = 20 },
		NUMBER_COLUMN("Connections"),
		NUMBER_COLUMN("Accepted"),
		NUMBER_COLUMN("Refused"),
		NUMBER_COLUMN("Malformed"),
		NUMBER_COLUMN("Sent"),
		NUMBER_COLUMN("Replies"),
		NUMBER_COLUMN("Timeouts"),
	};
	static const char *const port_keys[] = {
		"name",      "filter",        "connections",      "accepted", "refused",
		"malformed", "messages_sent", "replies_received", "timeouts"
	};
	static const struct ctl_column client_cols[] = {
		CLIENT_COLUMN("pid"),
		CLIENT_COLUMN("uid"),
		CLIENT_COLUMN("sent"),
		CLIENT_COLUMN("replied"),
		CLIENT_COLUMN("timeouts"),
		CLIENT_COLUMN("pending"),
		{ .label = "queued", .suffix = "bytes", .align = CTL_ALIGN_RIGHT },
		{ .label = "exe" },
	};
	static const char *const client_keys[] = {
		"pid",           "uid",
		"messages_sent", "replies_received",
		"timeouts",      "pending_replies",
		"queued_bytes",  "exe",
	};
	_Static_assert(ARRAY_SIZE(port_cols) == ARRAY_SIZE(port_keys),
		       "a key per column");
	_Static_assert(ARRAY_SIZE(client_cols) == ARRAY_SIZE(client_keys),
		       "a key per column");
	const size_t n_port_cols = ARRAY_SIZE(port_keys);
	const size_t n_client_cols = ARRAY_SIZE(client_keys);
	struct ctl_table *ports = NULL, *clients = NULL;
	json_object *arr = list(reply, "ports");
	const char *cells[MAX_COLUMNS];
	size_t i, c, k, row = 0;
	int r;

	r = ctl_table_new(port_cols, n_port_cols, &ports);
	if (r < 0)
		return r;
	r = ctl_table_new(client_cols, n_client_cols, &clients);
	if (r < 0)
		goto out;
	/* All rows first, so the widths are final before anything prints. */
	for (i = 0; i < list_len(arr); i++) {
		json_object *port = json_object_array_get_idx(arr, i);
		json_object *cl = list(port, "clients");

		for (c = 0; c < n_port_cols; c++)
			cells[c] = text(port, port_keys[c]);
		r = ctl_table_add_row(ports, cells);
		if (r < 0)
			goto out;
		for (k = 0; k < list_len(cl); k++) {
			json_object *client = json_object_array_get_idx(cl, k);

			for (c = 0; c < n_client_cols; c++)
				cells[c] = text(client, client_keys[c]);
			r = ctl_table_add_row(clients, cells);
			if (r < 0)
				goto out;
		}
	}
	ctl_table_print_header(ports, out, "");
	for (i = 0; i < list_len(arr); i++) {
		json_object *port = json_object_array_get_idx(arr, i);

		ctl_table_print_row(ports, i, out, "");
		for (k = 0; k < list_len(list(port, "clients")); k++)
			ctl_table_print_row(clients, row++, out, "    ");
	}
out:
	ctl_table_free(clients);
	ctl_table_free(ports);
	return r;
}

enum section_kind {
	SECTION_ENGINE,
	SECTION_FILTER,
	SECTION_PORT,
	SECTION_DAEMON,
};

struct section {
	enum section_kind kind;
	json_object *obj;
	size_t rows;
};

/* Members of a stats entry that name it rather than count something. */
static bool
is_title_member(enum section_kind kind, const char *key)
{
	if (kind == SECTION_FILTER)
		return strcmp(key, "name") == 0;
	if (kind == SECTION_PORT)
		return strcmp(key, "name") == 0 || strcmp(key, "filter") == 0;
	return false;
}

/* A filter's own counters ("counters": {...}): one row each, indented
 * under the row naming the object. */
static int
add_nested_rows(struct ctl_table *t, json_object *obj, size_t *rows)
{
	struct json_object_iterator it = json_object_iter_begin(obj);
	struct json_object_iterator end = json_object_iter_end(obj);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);
		char name[80];
		const char *cells[2] = { name, text(obj, key) };
		int r;

		snprintf(name, sizeof(name), "  %s", key);
		r = ctl_table_add_row(t, cells);
		if (r < 0)
			return r;
		(*rows)++;
	}
	return 0;
}

/* Adds a `name value` row per counter of s->obj ("-" alone if it is not
 * an object) and counts them in s->rows. */
static int
add_section_rows(struct ctl_table *t, struct section *s)
{
	struct json_object_iterator it, end;
	const char *cells[2];
	int r;

	s->rows = 0;
	if (!json_object_is_type(s->obj, json_type_object)) {
		cells[0] = "-";
		cells[1] = "";
		s->rows = 1;
		return ctl_table_add_row(t, cells);
	}
	it = json_object_iter_begin(s->obj);
	end = json_object_iter_end(s->obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);

		json_object *sub = json_object_iter_peek_value(&it);

		if (is_title_member(s->kind, key))
			continue;
		cells[0] = key;
		cells[1] = json_object_is_type(sub, json_type_object) ? ""
								      : text(s->obj, key);
		r = ctl_table_add_row(t, cells);
		if (r < 0)
			return r;
		s->rows++;
		if (json_object_is_type(sub, json_type_object)) {
			r = add_nested_rows(t, sub, &s->rows);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int
print_section_title(FILE *out, const struct section *s)
{
	int r = 0;

	switch (s->kind) {
	case SECTION_ENGINE:
		fputs("engine", out);
		break;
	case SECTION_DAEMON:
		fputs("daemon", out);
		break;
	case SECTION_FILTER:
		fputs("filter ", out);
		r = put_text(out, text(s->obj, "name"));
		break;
	case SECTION_PORT:
		fputs("port ", out);
		r = put_text(out, text(s->obj, "name"));
		if (r < 0)
			return r;
		fputs(" (filter ", out);
		r = put_text(out, text(s->obj, "filter"));
		fputc(')', out);
		break;
	}
	fputc('\n', out);
	return r;
}

/* Sections `engine`, `filter NAME` each, `port NAME (filter F)` each and
 * `daemon`, each a title and indented `name value` lines aligned across
 * all sections. */
int
ctl_render_stats(FILE *out, json_object *reply)
{
	static const struct ctl_column cols[] = {
		{ .align = CTL_ALIGN_LEFT },
		{ .align = CTL_ALIGN_RIGHT },
	};
	json_object *filters = list(reply, "filters"), *ports = list(reply, "ports");
	size_t n = 2 + list_len(filters) + list_len(ports), i, k, row = 0;
	struct ctl_table *t = NULL;
	struct section *s;
	json_object *v;
	int r;

	s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s[0].kind = SECTION_ENGINE;
	s[0].obj = json_object_object_get_ex(reply, "engine", &v) ? v : NULL;
	for (i = 0; i < list_len(filters); i++) {
		s[1 + i].kind = SECTION_FILTER;
		s[1 + i].obj = json_object_array_get_idx(filters, i);
	}
	for (k = 0; k < list_len(ports); k++) {
		s[1 + i + k].kind = SECTION_PORT;
		s[1 + i + k].obj = json_object_array_get_idx(ports, k);
	}
	s[n - 1].kind = SECTION_DAEMON;
	s[n - 1].obj = json_object_object_get_ex(reply, "daemon", &v) ? v : NULL;

	r = ctl_table_new(cols, 2, &t);
	if (r < 0)
		goto out;
	for (i = 0; i < n; i++) {
		r = add_section_rows(t, &s[i]);
		if (r < 0)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if (i > 0)
			fputc('\n', out);
		r = print_section_title(out, &s[i]);
		if (r < 0)
			goto out;
		for (k = 0; k < s[i].rows; k++)
			ctl_table_print_row(t, row++, out, "  ");
	}
out:
	ctl_table_free(t);
	free(s);
	return r;
}

/* "[Nd ]HH:MM:SS" from a millisecond count, "-" if it is not one. */
static const char *
uptime_text(json_object *reply, char *buf, size_t size)
{
	json_object *v;
	int64_t ms, s;

	if (!json_object_object_get_ex(reply, "uptime_ms", &v) ||
	    !json_object_is_type(v, json_type_int))
		return "-";
	ms = json_object_get_int64(v);
	if (ms < 0)
		return "-";
	s = ms / 1000;
	if (s >= 86400)
		snprintf(buf, size, "%" PRId64 "d %02" PRId64 ":%02" PRId64 ":%02" PRId64,
			 s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
	else
		snprintf(buf, size, "%02" PRId64 ":%02" PRId64 ":%02" PRId64, s / 3600,
			 s / 60 % 60, s % 60);
	return buf;
}

static const char *
bool_text(json_object *reply, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(reply, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return "-";
	return json_object_get_boolean(v) ? "yes" : "no";
}

/* `Key: value` lines. */
int
ctl_render_status(FILE *out, json_object *reply)
{
	static const struct ctl_column cols[] = {
		{ .align = CTL_ALIGN_LEFT },
		{ .align = CTL_ALIGN_LEFT },
	};
	struct ctl_table *t = NULL;
	const char *config = text(reply, "config");
	json_object *v, *problems = list(reply, "problems");
	char uptime[64];
	int r;

	/* null is meaningful here: the built-in default configuration. */
	if (json_object_object_get_ex(reply, "config", &v) && !v)
		config = "(built-in default)";
	const char *rows[][2] = {
		{ "PID:", text(reply, "pid") },
		{ "Version:", text(reply, "version") },
		{ "Uptime:", uptime_text(reply, uptime, sizeof(uptime)) },
		{ "Healthy:", bool_text(reply, "healthy") },
		{ "Filters:", text(reply, "filters") },
		{ "Config:", config },
		{ "Runtime dir:", text(reply, "runtime_dir") },
		{ "Filter dir:", text(reply, "filter_dir") },
	};

	r = ctl_table_new(cols, 2, &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		r = ctl_table_add_row(t, rows[i]);
		if (r < 0)
			goto out;
	}
	/* Why it is not healthy: one "Problem:" line each, naming the
	 * filter (none: the engine). */
	for (size_t i = 0; i < list_len(problems); i++) {
		json_object *p = json_object_array_get_idx(problems, i), *f;
		char *line = NULL;
		const char *row[2] = { "Problem:", NULL };

		if (json_object_object_get_ex(p, "filter", &f) && f)
			r = asprintf(&line, "filter %s: %s", text(p, "filter"),
				     text(p, "problem"));
		else
			r = asprintf(&line, "engine: %s", text(p, "problem"));
		if (r < 0) {
			r = -ENOMEM;
			goto out;
		}
		row[1] = line;
		r = ctl_table_add_row(t, row);
		free(line);
		if (r < 0)
			goto out;
	}
	ctl_table_print(t, out);
out:
	ctl_table_free(t);
	return r;
}

/* fprintf-like, but every %s argument is escaped; only %s is supported. */
static int
print_line(FILE *out, const char *fmt, ...)
{
	va_list ap;
	int r = 0;

	va_start(ap, fmt);
	for (const char *p = fmt; *p && r == 0; p++) {
		if (p[0] == '%' && p[1] == 's') {
			r = put_text(out, va_arg(ap, const char *));
			p++;
		} else {
			fputc(*p, out);
		}
	}
	va_end(ap);
	if (r == 0)
		fputc('\n', out);
	return r;
}

int
ctl_render_done(FILE *out, json_object *reply, const struct ctl_invocation *inv)
{
	const char *cmd = inv->command;

	if (strcmp(cmd, "load") == 0) {
		if (inv->altitude)
			return print_line(out, "Loaded filter %s at altitude %s",
					  inv->name, inv->altitude);
		return print_line(out, "Loaded filter %s", inv->name);
	}
	if (strcmp(cmd, "unload") == 0)
		return print_line(out, "Unloaded filter %s", inv->name);
	if (strcmp(cmd, "attach") == 0)
		return print_line(out, "Attached filter %s to %s (%s)", inv->name,
				  inv->path, inv->kind);
	if (strcmp(cmd, "detach") == 0)
		return print_line(out, "Detached filter %s from %s", inv->name,
				  inv->path);
	if (strcmp(cmd, "reload") == 0)
		return print_line(out,
				  "Reloaded the configuration: %s loaded, %s unloaded, "
				  "%s restarted, %s attached, %s detached",
				  text(reply, "loaded"), text(reply, "unloaded"),
				  text(reply, "restarted"), text(reply, "attached"),
				  text(reply, "detached"));
	return print_line(out, "%s: done", cmd);
}
