/* SPDX-License-Identifier: MIT */
/*
 * prom.c — see prom.h. Every metric family is written once (HELP, TYPE,
 * then one sample per filter or port), as the format requires.
 */
#include "ctl/prom.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Is name one of the gauges listed for section in the reply? */
static bool
is_gauge(json_object *stats, const char *section, const char *name)
{
	json_object *g, *list;

	if (!json_object_object_get_ex(stats, "gauges", &g) ||
	    !json_object_object_get_ex(g, section, &list) ||
	    !json_object_is_type(list, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		const char *s =
			json_object_get_string(json_object_array_get_idx(list, i));

		if (s && !strcmp(s, name))
			return true;
	}
	return false;
}

/* A label value: backslash, double quote and newline escaped. */
static void
label_value(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', out);
		if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static bool
valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static void
family(FILE *out, const char *metric, bool gauge, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric,
		gauge ? "gauge" : "counter");
}

/* One labelled sample: {filter="f"} or {filter="f",port="p"}. */
static void
sample(FILE *out, const char *metric, json_object *item, const char *extra_label,
       const char *extra_value, json_object *value)
{
	json_object *f = NULL, *p = NULL;
	const char *filter, *port = NULL;

	/* ports carry "filter" and "name"; filters carry "name" */
	if (json_object_object_get_ex(item, "filter", &f)) {
		filter = json_object_get_string(f);
		if (json_object_object_get_ex(item, "name", &p))
			port = json_object_get_string(p);
	} else {
		json_object_object_get_ex(item, "name", &f);
		filter = json_object_get_string(f);
	}
	fprintf(out, "%s{filter=\"", metric);
	label_value(out, filter);
	if (port) {
		fputs("\",port=\"", out);
		label_value(out, port);
	}
	if (extra_label) {
		fprintf(out, "\",%s=\"", extra_label);
		label_value(out, extra_value);
	}
	fprintf(out, "\"} %llu\n", (unsigned long long)json_object_get_uint64(value));
}

/* engine and daemon: one object, one sample per member. */
static void
render_object(FILE *out, json_object *stats, const char *section)
{
	json_object *o;
	char metric[160];

	if (!json_object_object_get_ex(stats, section, &o) ||
	    !json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, key, val)
	{
		bool gauge;
		char help[200];

		if (!json_object_is_type(val, json_type_int) || !valid_name(key))
			continue;
		gauge = is_gauge(stats, section, key);
		snprintf(metric, sizeof(metric), "fltmgr_%s_%s%s", section, key,
			 gauge ? "" : "_total");
		snprintf(help, sizeof(help), "fltmc stats: %s.%s (docs/control.md)",
			 section, key);
		family(out, metric, gauge, help);
		fprintf(out, "%s %llu\n", metric,
			(unsigned long long)json_object_get_uint64(val));
	}
}

/* filters and ports: an array of objects; a family per member name, in
 * the order they first appear, each with a sample per element. */
static void
render_array(FILE *out, json_object *stats, const char *section, const char *singular)
{
	json_object *a;
	size_t n;

	if (!json_object_object_get_ex(stats, section, &a) ||
	    !json_object_is_type(a, json_type_array))
		return;
	n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++) {
		json_object_object_foreach(json_object_array_get_idx(a, i), key, val)
		{
			bool seen = false, gauge;
			char metric[160], help[200];

			if (!json_object_is_type(val, json_type_int) || !valid_name(key))
				continue;
			/* written already with an earlier element? */
			for (size_t k = 0; k < i && !seen; k++) {
				json_object *v;

				seen = json_object_object_get_ex(
					       json_object_array_get_idx(a, k), key,
					       &v) &&
				       json_object_is_type(v, json_type_int);
			}
			if (seen)
				continue;
			gauge = is_gauge(stats, section, key);
			snprintf(metric, sizeof(metric), "fltmgr_%s_%s%s", singular, key,
				 gauge ? "" : "_total");
			snprintf(help, sizeof(help),
				 "fltmc stats: %s[].%s (docs/control.md)", section, key);
			family(out, metric, gauge, help);
			for (size_t k = i; k < n; k++) {
				json_object *item = json_object_array_get_idx(a, k), *v;

				if (json_object_object_get_ex(item, key, &v) &&
				    json_object_is_type(v, json_type_int))
					sample(out, metric, item, NULL, NULL, v);
			}
		}
	}
}

/* Each filter's own counters (flt_registration.counters): one family. */
static void
render_filter_counters(FILE *out, json_object *stats)
{
	json_object *a;
	bool any = false;

	if (!json_object_object_get_ex(stats, "filters", &a) ||
	    !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *f = json_object_array_get_idx(a, i), *c;

		if (!json_object_object_get_ex(f, "counters", &c) ||
		    !json_object_is_type(c, json_type_object))
			continue;
		json_object_object_foreach(c, key, val)
		{
			if (!json_object_is_type(val, json_type_int))
				continue;
			if (!any)
				family(out, "fltmgr_filter_counter_total", false,
				       "a filter's own counters (fltmc stats: "
				       "filters[].counters)");
			any = true;
			sample(out, "fltmgr_filter_counter_total", f, "counter", key,
			       val);
		}
	}
}

int
prom_render(FILE *out, json_object *stats)
{
	render_object(out, stats, "engine");
	render_array(out, stats, "filters", "filter");
	render_filter_counters(out, stats);
	render_array(out, stats, "ports", "port");
	render_object(out, stats, "daemon");
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
