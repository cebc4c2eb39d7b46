/* SPDX-License-Identifier: MIT */
/*
 * config.c — reading fltmgrd's configuration (format in config.h).
 *
 * libinih does the INI syntax. We feed it through our own line reader,
 * which is how every error gets its line number (the Debian build of
 * libinih has no INI_HANDLER_LINENO), how over-long lines are reported
 * instead of silently split, and how indentation is stripped so an
 * indented key is never glued onto the previous value as a continuation.
 * Every semantic check happens here, so the daemon never meets a value it
 * has to second-guess.
 */
#include "daemon/config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/names.h"

struct parser {
	struct cfg *cfg;
	const char *name;
	const char *text; /* remaining input */
	int line;
	char *errors;
	size_t errors_len;
	int n_errors;
	struct cfg_filter *cur; /* the [filter NAME] being read, or NULL */
	bool in_daemon;         /* inside [fltmgrd] */
	bool in_bad_section;    /* keys of an unknown section are ignored */
};

static void __attribute__((format(printf, 3, 4)))
error_at(struct parser *p, int line, const char *fmt, ...)
{
	char msg[512];
	char *n;
	va_list ap;
	int len;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	len = snprintf(NULL, 0, "%s:%d: %s\n", p->name, line, msg);
	n = realloc(p->errors, p->errors_len + (size_t)len + 1);
	if (!n)
		return;
	p->errors = n;
	snprintf(p->errors + p->errors_len, (size_t)len + 1, "%s:%d: %s\n", p->name, line,
		 msg);
	p->errors_len += (size_t)len;
	p->n_errors++;
}

static void begin_section(struct parser *p, const char *line, size_t n);

/* A line libinih accepts (its default rules; indentation is stripped
 * already): a comment (; or #), [section], or a key with '=' or ':'
 * before any inline " ;" comment. */
static bool
syntax_ok(const char *s, size_t n)
{
	if (s[0] == ';' || s[0] == '#')
		return true;
	if (s[0] == '[')
		return memchr(s, ']', n) != NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=' || s[i] == ':')
			return true;
		if (s[i] == ';' && i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
			return false;
	}
	return false;
}

/* ini_reader: one line per call, counted, indentation stripped. */
static char *
read_line(char *buf, int size, void *stream)
{
	struct parser *p = stream;
	const char *s = p->text, *eol;
	size_t n;

	if (!*s)
		return NULL;
	eol = strchr(s, '\n');
	n = eol ? (size_t)(eol - s) : strlen(s);
	p->text = eol ? eol + 1 : s + n;
	p->line++;
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	/* libinih hands us its own line buffer (199 characters in Debian's
	 * build): the limit we report is the real one. */
	if (n >= (size_t)size || n >= CFG_MAX_LINE) {
		int max = size - 1 < CFG_MAX_LINE - 1 ? size - 1 : CFG_MAX_LINE - 1;

		error_at(p, p->line, "line longer than %d characters", max);
		n = 0; /* hand libinih an empty line */
	}
	if (n && !syntax_ok(s, n)) {
		/* Reported here, so every syntax error of the file is (libinih
		 * would report only the first), and libinih gets an empty line. */
		error_at(p, p->line, "syntax error: %s, not '%.*s'",
			 s[0] == '[' ? "a section is [NAME]"
				     : "expected [section] or key = value",
			 (int)(n > 60 ? 60 : n), s);
		if (s[0] == '[')
			begin_section(p, "[", 1); /* what follows is in no section */
		n = 0;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (n && buf[0] == '[')
		begin_section(p, buf, n);
	return buf;
}

static bool
parse_int(const char *s, long lo, long hi, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*ret = (int)v;
	return true;
}

const char *
cfg_kind_name(enum flt_instance_kind kind)
{
	switch (kind) {
	case FLT_INSTANCE_SUBTREE:
		return "subtree";
	case FLT_INSTANCE_MOUNT:
		return "mount";
	case FLT_INSTANCE_FILESYSTEM:
		return "filesystem";
	}
	return "?";
}

int
cfg_kind_parse(const char *name)
{
	for (int i = 0; i <= FLT_INSTANCE_FILESYSTEM; i++)
		if (!strcmp(name, cfg_kind_name(i)))
			return i;
	return -EINVAL;
}

static bool
set_str(char **field, const char *value)
{
	char *n = strdup(value);

	if (!n)
		return false;
	free(*field);
	*field = n;
	return true;
}

static void
daemon_key(struct parser *p, const char *key, const char *value)
{
	struct cfg *c = p->cfg;

	if (!strcmp(key, "runtime_dir") || !strcmp(key, "filter_dir")) {
		if (value[0] != '/') {
			error_at(p, p->line, "%s must be an absolute path, not '%s'", key,
				 value);
			return;
		}
		set_str(!strcmp(key, "runtime_dir") ? &c->runtime_dir : &c->filter_dir,
			value);
	} else if (!strcmp(key, "log_level")) {
		static const char *const lv[] = { "error", "warning", "notice", "info",
						  "debug" };
		int level = 0;

		for (int i = 0; i < 5; i++)
			if (!strcmp(value, lv[i]))
				level = FLT_LOG_ERROR + i;
		if (level)
			c->log_level = level;
		else
			error_at(p, p->line,
				 "log_level must be error, warning, notice, info or "
				 "debug, "
				 "not '%s'",
				 value);
	} else if (!strcmp(key, "control_group")) {
		/* The name is resolved by the daemon (the group database may
		 * change between a check and a start). */
		if (!*value ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
				  "VWXYZ0123456789._-") != strlen(value))
			error_at(p, p->line,
				 "control_group must be a group name, not '%s'", value);
		else
			set_str(&c->control_group, value);
	} else if (!strcmp(key, "metrics_file")) {
		if (value[0] != '/' || value[strlen(value) - 1] == '/')
			error_at(p, p->line,
				 "metrics_file must be an absolute file path, not '%s'",
				 value);
		else
			set_str(&c->metrics_file, value);
	} else if (!strcmp(key, "metrics_interval")) {
		char *end;
		long n = strtol(value, &end, 10);

		if (*end || end == value || n < 1 || n > 3600)
			error_at(p, p->line,
				 "metrics_interval must be 1 to 3600 (seconds), not '%s'",
				 value);
		else
			c->metrics_interval_s = (int)n;
	} else if (!strcmp(key, "notification_hold_us")) {
		char *end;
		long n = strtol(value, &end, 10);

		if (*end || end == value || n < 0 || n > 100000)
			error_at(p, p->line,
				 "notification_hold_us must be 0 to 100000 "
				 "(microseconds), "
				 "not '%s'",
				 value);
		else {
			c->notification_hold_set = true;
			c->notification_hold_us = (unsigned)n;
		}
	} else {
		error_at(p, p->line, "unknown key '%s' in [fltmgrd]", key);
	}
}

static void
add_instance(struct parser *p, struct cfg_filter *f, const char *value)
{
	char path[CFG_MAX_LINE], kind[32] = "subtree", extra[2];
	struct cfg_instance *n, *in;
	int k, fields;

	if (value[0] == '"') {
		/* "PATH WITH BLANKS" [KIND]: \" and \\ inside the quotes */
		const char *s = value + 1;
		size_t len = 0;

		while (*s && *s != '"' && len + 1 < sizeof(path)) {
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			path[len++] = *s++;
		}
		path[len] = '\0';
		if (*s != '"') {
			error_at(p, p->line, "attach path '%s' has no closing '\"'",
				 value);
			return;
		}
		fields = sscanf(s + 1, "%31s %1s", kind, extra); /* EOF: -1 */
		fields = 1 + (fields > 0 ? fields : 0);
	} else {
		fields = sscanf(value, "%1023s %31s %1s", path, kind, extra);
	}
	if (fields < 1 || fields > 2) {
		error_at(p, p->line,
			 "attach takes PATH [subtree|mount|filesystem], not '%s'", value);
		return;
	}
	if (path[0] != '/') {
		error_at(p, p->line, "attach path must be absolute, not '%s'", path);
		return;
	}
	k = cfg_kind_parse(kind);
	if (k < 0) {
		error_at(p, p->line,
			 "attach kind must be subtree, mount or filesystem, not '%s'%s",
			 kind,
			 value[0] != '"' ? " (a path with blanks is written in double "
					   "quotes: attach = \"/srv/my dir\" subtree)"
					 : "");
		return;
	}
	for (size_t i = 0; i < f->n_instances; i++) {
		if (!strcmp(f->instances[i].path, path)) {
			error_at(p, p->line,
				 "filter %s is already attached to %s (line %d)", f->name,
				 path, f->instances[i].line);
			return;
		}
	}
	n = realloc(f->instances, (f->n_instances + 1) * sizeof(*n));
	if (!n)
		return;
	f->instances = n;
	in = &f->instances[f->n_instances];
	in->path = strdup(path);
	if (!in->path)
		return;
	in->kind = (enum flt_instance_kind)k;
	in->line = p->line;
	f->n_instances++;
}

static void
add_param(struct parser *p, struct cfg_filter *f, const char *key, const char *value)
{
	struct cfg_param *n, *pa;

	if (!*key ||
	    strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(key)) {
		error_at(p, p->line,
			 "bad parameter name 'param.%s' (lower case, digits, _ . -)",
			 key);
		return;
	}
	for (size_t i = 0; i < f->n_params; i++) {
		if (!strcmp(f->params[i].key, key)) {
			error_at(p, p->line, "param.%s is already set (line %d)", key,
				 f->params[i].line);
			return;
		}
	}
	n = realloc(f->params, (f->n_params + 1) * sizeof(*n));
	if (!n)
		return;
	f->params = n;
	pa = &f->params[f->n_params];
	pa->key = strdup(key);
	pa->value = strdup(value);
	if (!pa->key || !pa->value) {
		free(pa->key);
		free(pa->value);
		return;
	}
	pa->line = p->line;
	f->n_params++;
}

static void
filter_key(struct parser *p, struct cfg_filter *f, const char *key, const char *value)
{
	if (!strcmp(key, "altitude")) {
		f->bad_altitude = !altitude_valid(value);
		if (f->bad_altitude)
			error_at(p, p->line,
				 "altitude must be a decimal number such as 385100 or "
				 "385100.5, not '%s'",
				 value);
		else
			set_str(&f->altitude, value);
	} else if (!strcmp(key, "object")) {
		if (!*value || strstr(value, ".."))
			error_at(p, p->line, "bad filter object '%s'", value);
		else
			set_str(&f->object, value);
	} else if (!strcmp(key, "deadline_ms")) {
		if (!parse_int(value, 1, 3600000, &f->deadline_ms))
			error_at(p, p->line, "deadline_ms must be 1..3600000, not '%s'",
				 value);
	} else if (!strcmp(key, "default_verdict")) {
		if (!strcmp(value, "allow"))
			f->default_verdict = 0;
		else if (!strcmp(value, "deny"))
			f->default_verdict = -EPERM;
		else
			error_at(p, p->line,
				 "default_verdict must be allow or deny, not '%s'",
				 value);
	} else if (!strcmp(key, "attach")) {
		add_instance(p, f, value);
	} else if (!strncmp(key, "param.", 6)) {
		add_param(p, f, key + 6, value);
	} else {
		char msg[256];
		int r = cfg_auto_key(&f->automatic, key, value, p->line, msg,
				     sizeof(msg));

		if (r == -EINVAL)
			error_at(p, p->line, "%s", msg);
		else if (r == -ENOMEM)
			error_at(p, p->line, "out of memory");
		else if (r > 0)
			error_at(p, p->line,
				 "unknown key '%s' in [filter %s] (a filter's own "
				 "settings "
				 "are written param.NAME)",
				 key, f->name);
	}
}

static struct cfg_filter *
new_filter(struct parser *p, const char *name)
{
	struct cfg *c = p->cfg;
	struct cfg_filter *n, *f;

	for (size_t i = 0; i < c->n_filters; i++) {
		if (!strcmp(c->filters[i].name, name)) {
			error_at(p, p->line, "filter %s is already defined (line %d)",
				 name, c->filters[i].line);
			return NULL;
		}
	}
	n = realloc(c->filters, (c->n_filters + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->filters = n;
	f = &c->filters[c->n_filters];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	if (!f->name)
		return NULL;
	f->line = p->line;
	c->n_filters++;
	return f;
}

/* Called by libinih for every key = value; sections were seen by the
 * line reader (begin_section), which also catches empty and repeated
 * ones that libinih alone would not report. */
static int
on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parser *p = user;

	(void)section;
	if (p->in_bad_section)
		return 1;
	if (!p->in_daemon && !p->cur)
		error_at(p, p->line, "'%s' is outside any section", key);
	else if (!*value)
		error_at(p, p->line, "%s has no value", key);
	else if (p->in_daemon)
		daemon_key(p, key, value);
	else
		filter_key(p, p->cur, key, value);
	return 1; /* keep going: report every error */
}

static void
begin_section(struct parser *p, const char *line, size_t n)
{
	char name[CFG_MAX_LINE];
	const char *close = memchr(line, ']', n);
	size_t len;

	p->cur = NULL;
	p->in_daemon = false;
	p->in_bad_section = true;
	if (!close)
		return; /* libinih reports the syntax error */
	len = (size_t)(close - line - 1);
	memcpy(name, line + 1, len);
	name[len] = '\0';
	if (!strcmp(name, "fltmgrd")) {
		p->in_daemon = true;
		p->in_bad_section = false;
	} else if (!strncmp(name, "filter ", 7)) {
		const char *fname = name + 7;

		while (*fname == ' ')
			fname++;
		if (!name_valid(fname)) {
			error_at(p, p->line,
				 "bad filter name '%s' ([A-Za-z0-9._-]{1,64})", fname);
			return;
		}
		p->cur = new_filter(p, fname);
		p->in_bad_section = !p->cur;
	} else {
		error_at(p, p->line,
			 "unknown section [%s] (use [fltmgrd] or [filter NAME])", name);
	}
}

void
cfg_filter_free(struct cfg_filter *f)
{
	for (size_t i = 0; i < f->n_instances; i++)
		free(f->instances[i].path);
	for (size_t i = 0; i < f->n_params; i++) {
		free(f->params[i].key);
		free(f->params[i].value);
	}
	free(f->instances);
	free(f->params);
	cfg_auto_free(&f->automatic);
	free(f->name);
	free(f->object);
	free(f->altitude);
}

void
cfg_free(struct cfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_filters; i++)
		cfg_filter_free(&c->filters[i]);
	free(c->filters);
	free(c->file);
	free(c->runtime_dir);
	free(c->filter_dir);
	free(c->control_group);
	free(c->metrics_file);
	free(c);
}

int
cfg_parse_string(const char *name, const char *text, struct cfg **ret_cfg,
		 char **ret_errors)
{
	struct parser p = { .name = name, .text = text };
	int r;

	*ret_errors = NULL;
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg || !(p.cfg->file = strdup(name))) {
		free(p.cfg);
		return -ENOMEM;
	}
	r = ini_parse_stream(read_line, &p, on_key, &p);
	if (r > 0)
		error_at(&p, r, "syntax error (expected [section] or key = value)");
	else if (r < 0)
		error_at(&p, 0, "cannot parse (out of memory)");
	for (size_t i = 0; i < p.cfg->n_filters; i++) {
		struct cfg_filter *f = &p.cfg->filters[i];

		char msg[256];
		int line = 0;

		if (!f->altitude && !f->bad_altitude)
			error_at(&p, f->line, "filter %s has no altitude", f->name);
		if (cfg_auto_check(&f->automatic, msg, sizeof(msg), &line) < 0)
			error_at(&p, line, "%s", msg);
		if (!f->object && asprintf(&f->object, "%s.so", f->name) < 0)
			f->object = NULL;
	}
	if (p.n_errors) {
		cfg_free(p.cfg);
		*ret_errors = p.errors;
		return -EINVAL;
	}
	free(p.errors);
	*ret_cfg = p.cfg;
	return 0;
}

/* Nothing but blank lines and comments: no configuration at all. */
static bool
is_empty(const char *text)
{
	for (const char *l = text; *l;) {
		size_t n = strcspn(l, "\n");
		size_t i = strspn(l, " \t\r");

		if (i < n && l[i] != ';' && l[i] != '#')
			return false;
		l += n + (l[n] == '\n');
	}
	return true;
}

int
cfg_load_fd(int fd, const char *name, struct cfg **ret_cfg, char **ret_errors)
{
	char *text = NULL, buf[4096];
	size_t len = 0;
	FILE *m;
	ssize_t n;
	int r = 0;

	*ret_errors = NULL;
	m = open_memstream(&text, &len);
	if (!m)
		return -ENOMEM;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		fwrite(buf, 1, (size_t)n, m);
	}
	fclose(m);
	if (r < 0) {
		free(text);
		if (asprintf(ret_errors, "%s: cannot read: %s\n", name, strerror(-r)) < 0)
			*ret_errors = NULL;
		return r;
	}
	if (!text)
		return -ENOMEM;
	if (memchr(text, '\0', len)) {
		free(text);
		if (asprintf(ret_errors, "%s: not a text file (NUL byte)\n", name) < 0)
			*ret_errors = NULL;
		return -EINVAL;
	}
	if (is_empty(text)) {
		free(text);
		if (asprintf(ret_errors,
			     "%s: the configuration is empty (no section, no setting); "
			     "it would run no filter\n",
			     name) < 0)
			*ret_errors = NULL;
		return -EINVAL;
	}
	r = cfg_parse_string(name, text, ret_cfg, ret_errors);
	free(text);
	return r;
}

int
cfg_load(const char *path, struct cfg **ret_cfg, char **ret_errors)
{
	int fd, r;

	*ret_errors = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (asprintf(ret_errors, "%s: cannot open: %s\n", path, strerror(errno)) <
		    0)
			*ret_errors = NULL;
		return r;
	}
	r = cfg_load_fd(fd, path, ret_cfg, ret_errors);
	close(fd);
	return r;
}

const struct cfg_filter *
cfg_find_filter(const struct cfg *c, const char *name)
{
	for (size_t i = 0; c && i < c->n_filters; i++)
		if (!strcmp(c->filters[i].name, name))
			return &c->filters[i];
	return NULL;
}

bool
cfg_filter_same_settings(const struct cfg_filter *a, const struct cfg_filter *b)
{
	if (strcmp(a->object, b->object) || strcmp(a->altitude, b->altitude) ||
	    a->deadline_ms != b->deadline_ms ||
	    a->default_verdict != b->default_verdict || a->n_params != b->n_params)
		return false;
	for (size_t i = 0; i < a->n_params; i++)
		if (strcmp(a->params[i].key, b->params[i].key) ||
		    strcmp(a->params[i].value, b->params[i].value))
			return false;
	return true;
}

bool
cfg_filter_same_instances(const struct cfg_filter *a, const struct cfg_filter *b)
{
	if (a->n_instances != b->n_instances)
		return false;
	for (size_t i = 0; i < a->n_instances; i++)
		if (strcmp(a->instances[i].path, b->instances[i].path) ||
		    a->instances[i].kind != b->instances[i].kind)
			return false;
	return true;
}

int
cfg_filter_copy(const struct cfg_filter *src, struct cfg_filter *dst)
{
	*dst = (struct cfg_filter){
		.deadline_ms = src->deadline_ms,
		.default_verdict = src->default_verdict,
		.line = src->line,
	};
	dst->name = strdup(src->name);
	dst->object = strdup(src->object);
	/* NULL for a filter loaded at its own default altitude (fltmc load
	 * NAME), until it is known */
	dst->altitude = src->altitude ? strdup(src->altitude) : NULL;
	if (!dst->name || !dst->object || (src->altitude && !dst->altitude))
		goto oom;
	if (cfg_auto_copy(&src->automatic, &dst->automatic) < 0)
		goto oom;
	if (src->n_instances) {
		dst->instances = calloc(src->n_instances, sizeof(*dst->instances));
		if (!dst->instances)
			goto oom;
	}
	for (size_t i = 0; i < src->n_instances; i++, dst->n_instances++) {
		dst->instances[i] = src->instances[i];
		dst->instances[i].path = strdup(src->instances[i].path);
		if (!dst->instances[i].path)
			goto oom;
	}
	if (src->n_params) {
		dst->params = calloc(src->n_params, sizeof(*dst->params));
		if (!dst->params)
			goto oom;
	}
	for (size_t i = 0; i < src->n_params; i++, dst->n_params++) {
		dst->params[i].line = src->params[i].line;
		dst->params[i].key = strdup(src->params[i].key);
		dst->params[i].value = strdup(src->params[i].value);
		if (!dst->params[i].key || !dst->params[i].value) {
			dst->n_params++; /* so the free below sees it */
			goto oom;
		}
	}
	return 0;
oom:
	cfg_filter_free(dst);
	*dst = (struct cfg_filter){ 0 };
	return -ENOMEM;
}
