/* SPDX-License-Identifier: MIT */
/*
 * params.c — see params.h. Pure functions of the configuration (and of
 * realpath() for instance labels); nothing here touches the filter's
 * state or locks.
 *
 * Patterns are fnmatch(3) patterns, separated by commas:
 *  - one starting with '/' is matched against the full path with
 *    FNM_PATHNAME | FNM_LEADING_DIR: '*', '?' and [...] never match '/',
 *    and a pattern that matches a leading directory matches everything
 *    below it (/srv/www covers /srv/www/a/b; /home/x/.ssh covers its files);
 *  - one without any '/' is matched against each component of the path
 *    (*.swp, .git): it matches a file of that name anywhere and everything
 *    below a directory of that name;
 *  - anything else (a '/' not at the start) is refused.
 */
#include "params.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minispy_record.h"

static int __attribute__((format(printf, 4, 5)))
fail(int r, char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
	return r;
}

/* The next comma-separated item of *s, spaces trimmed, into buf. */
static bool
next_item(const char **s, char *buf, size_t size, bool *too_long)
{
	const char *p = *s, *e;
	size_t n;

	if (!*p)
		return false;
	e = strchrnul(p, ',');
	*s = *e ? e + 1 : e;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - p);
	*too_long = n >= size;
	if (*too_long)
		n = size - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

static int
parse_ops(const char *key, const char *value, uint32_t *ret, char *err, size_t size)
{
	char item[32];
	uint32_t ops = 0;
	bool too_long;

	while (next_item(&value, item, sizeof(item), &too_long)) {
		int op = -1;

		if (!strcmp(item, "all")) {
			ops |= MS_OPS_ALL;
			continue;
		}
		for (int i = 0; i < MINISPY_OP_COUNT_ && !too_long; i++)
			if (!strcmp(item, minispy_op_name((uint16_t)i)))
				op = i;
		if (op < 0)
			return fail(
				-EINVAL, err, size,
				"param.%s: unknown operation '%s' (use a comma-separated "
				"list of open, exec, read, write, close_write, close, "
				"attrib, create, delete, rename, or all)",
				key, item);
		ops |= 1u << op;
	}
	if (!ops)
		return fail(-EINVAL, err, size, "param.%s: no operation given", key);
	*ret = ops;
	return 0;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ret NULL: only check. */
static int
parse_patterns(const char *key, const char *value, char ***ret, size_t *ret_n, char *err,
	       size_t size)
{
	char item[PATH_MAX], **v = NULL;
	size_t n = 0;
	bool too_long;
	int r;

	while (next_item(&value, item, sizeof(item), &too_long)) {
		char **nv;

		if (too_long) {
			r = fail(-EINVAL, err, size, "param.%s: pattern too long", key);
			goto fail;
		}
		if (!item[0]) {
			r = fail(-EINVAL, err, size,
				 "param.%s: empty pattern (patterns are separated by "
				 "commas)",
				 key);
			goto fail;
		}
		if (item[0] != '/' && strchr(item, '/')) {
			r = fail(-EINVAL, err, size,
				 "param.%s: pattern '%s' must start with '/' (matched "
				 "against the full path) or contain no '/' (matched "
				 "against each path component)",
				 key, item);
			goto fail;
		}
		if (!ret)
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv || !(nv[n] = strdup(item))) {
			v = nv ? nv : v;
			r = fail(-ENOMEM, err, size, "out of memory");
			goto fail;
		}
		v = nv;
		n++;
	}
	if (ret) {
		*ret = v;
		*ret_n = n;
	}
	return 0;
fail:
	free_strv(v, n);
	return r;
}

static int
parse_uint(const char *key, const char *value, unsigned long lo, unsigned long hi,
	   int base, unsigned long *ret, char *err, size_t size)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(value, &end, base);
	if (errno || end == value || *end || value[0] == '-' || v < lo || v > hi)
		return fail(-EINVAL, err, size,
			    base == 8
				    ? "param.%s must be an octal mode %lo..%lo, not '%s'"
				    : "param.%s must be a number %lu..%lu, not '%s'",
			    key, lo, hi, value);
	*ret = v;
	return 0;
}

static int
parse_bool(const char *key, const char *value, bool *ret, char *err, size_t size)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(value, yes[i])) {
			*ret = true;
			return 0;
		}
		if (!strcmp(value, no[i])) {
			*ret = false;
			return 0;
		}
	}
	return fail(-EINVAL, err, size, "param.%s must be true or false, not '%s'", key,
		    value);
}

static int
set_once(char **field, const char *key, const char *value, char *err, size_t size)
{
	if (*field)
		return fail(-EINVAL, err, size, "param.%s is set twice", key);
	*field = strdup(value);
	return *field ? 0 : fail(-ENOMEM, err, size, "out of memory");
}

static struct ms_label *
label_get(struct ms_settings *s, const char *name, size_t len)
{
	struct ms_label *n;

	for (size_t i = 0; i < s->n_labels; i++)
		if (strlen(s->labels[i].name) == len &&
		    !strncmp(s->labels[i].name, name, len))
			return &s->labels[i];
	n = realloc(s->labels, (s->n_labels + 1) * sizeof(*n));
	if (!n)
		return NULL;
	s->labels = n;
	n = &s->labels[s->n_labels];
	*n = (struct ms_label){ .name = strndup(name, len) };
	if (!n->name)
		return NULL;
	s->n_labels++;
	return n;
}

/* param.instance.LABEL.{path,ops,include,exclude} */
static int
instance_key(struct ms_settings *s, const char *key, const char *value, char *err,
	     size_t size)
{
	const char *label = key + strlen("instance."), *dot = strchr(label, '.');
	size_t len = dot ? (size_t)(dot - label) : 0;
	struct ms_label *l;
	const char *what;
	char **field;

	if (!len || strspn(label, "abcdefghijklmnopqrstuvwxyz0123456789_-") != len)
		return fail(-EINVAL, err, size,
			    "param.%s: write param.instance.LABEL.path, .ops, .include "
			    "or .exclude, LABEL made of a-z 0-9 _ -",
			    key);
	what = dot + 1;
	l = label_get(s, label, len);
	if (!l)
		return fail(-ENOMEM, err, size, "out of memory");
	if (!strcmp(what, "path")) {
		if (value[0] != '/')
			return fail(-EINVAL, err, size,
				    "param.%s must be the absolute path the instance is "
				    "attached at, not '%s'",
				    key, value);
		field = &l->path;
	} else if (!strcmp(what, "ops")) {
		field = &l->ops;
	} else if (!strcmp(what, "include")) {
		field = &l->include;
	} else if (!strcmp(what, "exclude")) {
		field = &l->exclude;
	} else {
		return fail(
			-EINVAL, err, size,
			"param.%s: unknown instance setting '%s' (path, ops, include, "
			"exclude)",
			key, what);
	}
	return set_once(field, key, value, err, size);
}

static int
check_lists(const char *prefix, const char *ops, const char *include, const char *exclude,
	    char *err, size_t size)
{
	char key[96];
	uint32_t mask;
	int r = 0;

	if (ops) {
		snprintf(key, sizeof(key), "%sops", prefix);
		r = parse_ops(key, ops, &mask, err, size);
	}
	if (r == 0 && include) {
		snprintf(key, sizeof(key), "%sinclude", prefix);
		r = parse_patterns(key, include, NULL, NULL, err, size);
	}
	if (r == 0 && exclude) {
		snprintf(key, sizeof(key), "%sexclude", prefix);
		r = parse_patterns(key, exclude, NULL, NULL, err, size);
	}
	return r;
}

static int
one_param(struct ms_settings *s, const char *key, const char *value, char *err,
	  size_t size)
{
	unsigned long v = 0; /* set by parse_uint(); gcc -O3 cannot tell */
	int r;

	if (!strcmp(key, "port")) {
		size_t n = strlen(value);

		if (n < 1 || n > FLT_PORT_NAME_MAX || !strcmp(value, ".") ||
		    !strcmp(value, "..") ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789._-") != n)
			return fail(-EINVAL, err, size,
				    "param.port must be a port name "
				    "([A-Za-z0-9._-]{1,64}), not '%s'",
				    value);
		memcpy(s->port, value, n + 1);
	} else if (!strcmp(key, "max_connections")) {
		r = parse_uint(key, value, 1, 64, 10, &v, err, size);
		if (r < 0)
			return r;
		s->max_connections = (int)v;
	} else if (!strcmp(key, "queue_size")) {
		r = parse_uint(key, value, 1, 1u << 20, 10, &v, err, size);
		if (r < 0)
			return r;
		s->queue_size = (uint32_t)v;
	} else if (!strcmp(key, "backlog")) {
		r = parse_uint(key, value, 0, 1u << 20, 10, &v, err, size);
		if (r < 0)
			return r;
		s->backlog = (uint32_t)v;
	} else if (!strcmp(key, "coalesce_us")) {
		r = parse_uint(key, value, 0, 2000, 10, &v, err, size);
		if (r < 0)
			return r;
		s->coalesce_us = (uint32_t)v;
	} else if (!strcmp(key, "port_mode")) {
		r = parse_uint(key, value, 01, 0777, 8, &v, err, size);
		if (r < 0)
			return r;
		s->port_mode = (mode_t)v;
	} else if (!strcmp(key, "exclude_services")) {
		return parse_bool(key, value, &s->exclude_services, err, size);
	} else if (!strcmp(key, "process")) {
		return parse_bool(key, value, &s->process, err, size);
	} else if (!strcmp(key, "ops")) {
		return set_once(&s->ops, key, value, err, size);
	} else if (!strcmp(key, "include")) {
		return set_once(&s->include, key, value, err, size);
	} else if (!strcmp(key, "exclude")) {
		return set_once(&s->exclude, key, value, err, size);
	} else if (!strncmp(key, "instance.", 9)) {
		return instance_key(s, key, value, err, size);
	} else {
		return fail(-EINVAL, err, size,
			    "unknown parameter param.%s (known: port, max_connections, "
			    "queue_size, backlog, coalesce_us, port_mode, "
			    "exclude_services, process, "
			    "ops, include, exclude, instance.LABEL.path/ops/include/"
			    "exclude)",
			    key);
	}
	return 0;
}

int
ms_settings_parse(const struct flt_filter_config *cfg, struct ms_settings *ret, char *err,
		  size_t size)
{
	struct ms_settings s = {
		.port = "minispy",
		.max_connections = 8,
		.queue_size = 4096,
		.backlog = 8192,
		.exclude_services = true,
		.process = true,
		.port_mode = 0600,
		.coalesce_us = 1000,
	};
	int r = 0;

	for (size_t i = 0; r == 0 && i < cfg->n_params; i++) {
		const char *key = cfg->param_keys[i], *value = cfg->param_values[i];

		if (!key || !value)
			r = fail(-EINVAL, err, size, "a parameter without key or value");
		else
			r = one_param(&s, key, value, err, size);
	}
	if (r == 0)
		r = check_lists("", s.ops, s.include, s.exclude, err, size);
	for (size_t i = 0; r == 0 && i < s.n_labels; i++) {
		const struct ms_label *l = &s.labels[i];
		char prefix[80];

		snprintf(prefix, sizeof(prefix), "instance.%s.", l->name);
		if (!l->path) {
			r = fail(-EINVAL, err, size,
				 "param.instance.%s.path is missing: it names the "
				 "instance the other instance.%s settings are for",
				 l->name, l->name);
			break;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s.labels[j].path, l->path))
				r = fail(-EINVAL, err, size,
					 "param.instance.%s.path and "
					 "param.instance.%s.path both name %s",
					 s.labels[j].name, l->name, l->path);
		if (r == 0)
			r = check_lists(prefix, l->ops, l->include, l->exclude, err,
					size);
	}
	if (r < 0) {
		ms_settings_free(&s);
		return r;
	}
	*ret = s;
	return 0;
}

void
ms_settings_free(struct ms_settings *s)
{
	for (size_t i = 0; i < s->n_labels; i++) {
		free(s->labels[i].name);
		free(s->labels[i].path);
		free(s->labels[i].ops);
		free(s->labels[i].include);
		free(s->labels[i].exclude);
	}
	free(s->labels);
	free(s->ops);
	free(s->include);
	free(s->exclude);
	*s = (struct ms_settings){ 0 };
}

static bool
same_path(const char *configured, const char *canonical)
{
	char buf[PATH_MAX];

	if (!strcmp(configured, canonical))
		return true;
	return realpath(configured, buf) && !strcmp(buf, canonical);
}

int
ms_match_new(const struct ms_settings *s, const char *path, struct ms_match **ret,
	     char *err, size_t size)
{
	const struct ms_label *label = NULL;
	const char *ops, *include, *exclude;
	struct ms_match *m;
	int r;

	for (size_t i = 0; i < s->n_labels; i++) {
		if (!same_path(s->labels[i].path, path))
			continue;
		if (label)
			return fail(-EINVAL, err, size,
				    "param.instance.%s.path and param.instance.%s.path "
				    "both name the instance at %s",
				    label->name, s->labels[i].name, path);
		label = &s->labels[i];
	}
	ops = label && label->ops ? label->ops : s->ops;
	include = label && label->include ? label->include : s->include;
	exclude = label && label->exclude ? label->exclude : s->exclude;

	m = calloc(1, sizeof(*m));
	if (!m)
		return fail(-ENOMEM, err, size, "out of memory");
	m->ops = MS_OPS_ALL;
	r = 0;
	if (label && !(m->label = strdup(label->name)))
		r = fail(-ENOMEM, err, size, "out of memory");
	if (r == 0 && ops)
		r = parse_ops("ops", ops, &m->ops, err, size);
	if (r == 0 && include)
		r = parse_patterns("include", include, &m->include, &m->n_include, err,
				   size);
	if (r == 0 && exclude)
		r = parse_patterns("exclude", exclude, &m->exclude, &m->n_exclude, err,
				   size);
	if (r < 0) {
		ms_match_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

void
ms_match_free(struct ms_match *m)
{
	if (!m)
		return;
	free_strv(m->include, m->n_include);
	free_strv(m->exclude, m->n_exclude);
	free(m->label);
	free(m);
}

static bool
pattern_matches(const char *pat, const char *path)
{
	char comp[NAME_MAX + 1];

	if (pat[0] == '/')
		return fnmatch(pat, path, FNM_PATHNAME | FNM_LEADING_DIR) == 0;
	for (const char *p = path; *p;) {
		const char *e;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		e = strchrnul(p, '/');
		n = (size_t)(e - p);
		if (n < sizeof(comp)) {
			memcpy(comp, p, n);
			comp[n] = '\0';
			if (fnmatch(pat, comp, 0) == 0)
				return true;
		}
		p = e;
	}
	return false;
}

static bool
any_matches(char *const *pats, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (pattern_matches(pats[i], path))
			return true;
	return false;
}

bool
ms_match_path(const struct ms_match *m, const char *path)
{
	if (!path)
		return false;
	if (m->n_include && !any_matches(m->include, m->n_include, path))
		return false;
	return !any_matches(m->exclude, m->n_exclude, path);
}

void
ms_ops_format(uint32_t ops, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	if (ops == MS_OPS_ALL) {
		snprintf(buf, size, "all");
		return;
	}
	for (int i = 0; i < MINISPY_OP_COUNT_; i++) {
		int n;

		if (!(ops & (1u << i)))
			continue;
		n = snprintf(buf + off, size - off, "%s%s", off ? "," : "",
			     minispy_op_name((uint16_t)i));
		if (n < 0 || (size_t)n >= size - off)
			return;
		off += (size_t)n;
	}
}
