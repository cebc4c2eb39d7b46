/* SPDX-License-Identifier: MIT */
/*
 * rules.c — YARA rules: compiling a file or a directory of *.yar and *.yara files
 * (sorted by name), reporting each error as FILE:LINE: message, and
 * reference counting, so that a reload can swap the set while scans in
 * progress finish with the one they started with. Owns the YR_RULES; the
 * last reference destroys it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yara.h>

#include "svc.h"

struct svc_rules {
	atomic_uint refs;
	YR_RULES *rules;
	unsigned count;
};

struct errs {
	unsigned n;
};

static void
on_compile_message(int level, const char *file, int line, const YR_RULE *rule,
		   const char *message, void *user)
{
	struct errs *e = user;

	(void)rule;
	fprintf(stderr, "scanner: %s:%d: %s: %s\n", file ? file : "(rules)", line,
		level == YARA_ERROR_LEVEL_ERROR ? "error" : "warning", message);
	if (level == YARA_ERROR_LEVEL_ERROR)
		e->n++;
}

static int
is_rule_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && ((n > 4 && !strcmp(d->d_name + n - 4, ".yar")) ||
				       (n > 5 && !strcmp(d->d_name + n - 5, ".yara")));
}

/* Adds one file; false after an error (the compiler is then unusable). */
static bool
add_file(YR_COMPILER *c, const char *path, struct errs *e)
{
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "scanner: %s: %s\n", path, strerror(errno));
		e->n++;
		return false;
	}
	yr_compiler_add_file(c, f, NULL, path);
	fclose(f);
	return e->n == 0;
}

int
svc_rules_compile(const char *path, struct svc_rules **ret)
{
	YR_COMPILER *c = NULL;
	struct errs e = { 0 };
	struct svc_rules *r;
	struct stat sb;
	YR_RULE *rule;
	int rc;

	if (stat(path, &sb) < 0) {
		fprintf(stderr, "scanner: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (yr_compiler_create(&c) != ERROR_SUCCESS)
		return -ENOMEM;
	yr_compiler_set_callback(c, on_compile_message, &e);
	if (S_ISDIR(sb.st_mode)) {
		struct dirent **list;
		int n = scandir(path, &list, is_rule_file, alphasort);

		if (n < 0) {
			fprintf(stderr, "scanner: %s: %s\n", path, strerror(errno));
			e.n++;
		} else if (n == 0) {
			fprintf(stderr, "scanner: %s: no *.yar or *.yara files\n", path);
			e.n++;
		}
		for (int i = 0; i < n; i++) {
			char file[PATH_MAX];

			snprintf(file, sizeof(file), "%s/%s", path, list[i]->d_name);
			if (e.n == 0)
				add_file(c, file, &e);
			free(list[i]);
		}
		if (n >= 0)
			free(list);
	} else {
		add_file(c, path, &e);
	}
	if (e.n) {
		yr_compiler_destroy(c);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		yr_compiler_destroy(c);
		return -ENOMEM;
	}
	rc = yr_compiler_get_rules(c, &r->rules);
	yr_compiler_destroy(c);
	if (rc != ERROR_SUCCESS) {
		free(r);
		return -ENOMEM;
	}
	yr_rules_foreach(r->rules, rule)
	{
		r->count++;
	}
	atomic_init(&r->refs, 1);
	*ret = r;
	return 0;
}

unsigned
svc_rules_count(const struct svc_rules *r)
{
	return r->count;
}

void
svc_rules_ref(struct svc_rules *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void
svc_rules_unref(struct svc_rules *r)
{
	if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
		yr_rules_destroy(r->rules);
		free(r);
	}
}

void *
svc_rules_yara(struct svc_rules *r)
{
	return r->rules;
}
