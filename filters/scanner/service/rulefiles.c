/* SPDX-License-Identifier: MIT */
/*
 * rulefiles.c — what --rules names, as a list of units to compile or
 * load (rules.c does that): a source file, each file an index includes,
 * every rule file of a directory tree, or a compiled file, each with its
 * namespace (scanner(8), docs/scanner.md section 2.1). Reads only the
 * first bytes of each file (a compiled file's header) and index files;
 * owns the list until svc_rule_files_free().
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "svc.h"

#define MAX_DEPTH 16

static int
units_add(struct svc_units *u, const char *path, const char *ns, bool compiled)
{
	struct svc_unit *x;

	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		struct svc_unit *v = realloc(u->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	x = &u->v[u->n];
	*x = (struct svc_unit){ .compiled = compiled };
	x->path = strdup(path);
	x->ns = ns ? strdup(ns) : NULL;
	if (!x->path || (ns && !x->ns)) {
		free(x->path);
		free(x->ns);
		return -ENOMEM;
	}
	u->n++;
	return 0;
}

void
svc_rule_files_free(struct svc_units *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].path);
		free(u->v[i].ns);
	}
	free(u->v);
}

/* "YARA" at offset 0: yarac output. */
static bool
is_compiled(const char *path)
{
	char head[4];
	FILE *f = fopen(path, "re");
	bool yes;

	if (!f)
		return false;
	yes = fread(head, 1, 4, f) == 4 && !memcmp(head, "YARA", 4);
	fclose(f);
	return yes;
}

/* Skips blanks and comments from *p; false at the end. */
static bool
skip_blank(const char **p)
{
	const char *s = *p;

	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (s[0] == '/' && s[1] == '/') {
			s += strcspn(s, "\n");
		} else if (s[0] == '/' && s[1] == '*') {
			const char *e = strstr(s + 2, "*/");

			s = e ? e + 2 : s + strlen(s);
		} else {
			break;
		}
	}
	*p = s;
	return *s != '\0';
}

/* If path is an index file (only include directives and comments, at
 * least one include), calls add(dir, included) for each and returns the
 * number of includes; 0 if it is not an index; -errno. */
static int
index_includes(const char *path, int (*add)(void *, const char *), void *arg)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t cap = 0, len = 0;
	const char *p;
	int n = 0, r = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t got;

		if (len + 4097 > cap) {
			char *t = realloc(text, cap = (len + 4097) * 2);

			if (!t) {
				free(text);
				fclose(f);
				return -ENOMEM;
			}
			text = t;
		}
		got = fread(text + len, 1, 4096, f);
		len += got;
		if (got == 0 || len > (1u << 20)) /* an index is small */
			break;
	}
	fclose(f);
	text[len] = '\0';
	/* First pass: is it one? Second: add them. */
	for (int pass = 0; pass < 2 && r == 0; pass++) {
		p = text;
		n = 0;
		while (skip_blank(&p)) {
			const char *q, *e;

			if (strncmp(p, "include", 7) != 0) {
				n = 0;
				goto out;
			}
			q = p + 7;
			while (*q == ' ' || *q == '\t')
				q++;
			if (*q != '"' || !(e = strchr(q + 1, '"')) ||
			    memchr(q, '\n', (size_t)(e - q))) {
				n = 0;
				goto out;
			}
			if (pass == 1) {
				char *inc = strndup(q + 1, (size_t)(e - q - 1));

				if (!inc) {
					r = -ENOMEM;
					goto out;
				}
				r = add(arg, inc);
				free(inc);
				if (r < 0)
					goto out;
			}
			n++;
			p = e + 1;
		}
		if (n == 0)
			goto out;
	}
out:
	free(text);
	return r < 0 ? r : n;
}

static bool
has_rule_suffix(const char *name)
{
	static const char *const suffixes[] = { ".yar", ".yara", ".yarc", ".yc" };
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t k = strlen(suffixes[i]);

		if (n > k && !strcmp(name + n - k, suffixes[i]))
			return true;
	}
	return false;
}

/* The namespace of rel (a path relative to the root). */
static void
ns_of(const struct svc_options *o, const char *rel, char *buf, size_t size)
{
	const char *slash = strchr(rel, '/');

	if (o->ns_mode == SVC_NS_FOLDER && slash)
		snprintf(buf, size, "%.*s", (int)(slash - rel), rel);
	else
		snprintf(buf, size, "%s", rel);
}

struct walk {
	const struct svc_options *o;
	struct svc_units *u;
	const char *base; /* the index file's directory */
	/* the directories being read, root first: a symbolic link back to
	 * one of them is not followed */
	dev_t dev[MAX_DEPTH + 2];
	ino_t ino[MAX_DEPTH + 2];
};

static int
add_source(struct walk *w, const char *path, const char *rel)
{
	char ns[PATH_MAX];

	if (is_compiled(path))
		return units_add(w->u, path, NULL, true);
	ns_of(w->o, rel, ns, sizeof(ns));
	return units_add(w->u, path, ns, false);
}

static int
add_included(void *arg, const char *inc)
{
	struct walk *w = arg;
	char path[PATH_MAX];
	const char *rel = inc;

	if (inc[0] == '/')
		snprintf(path, sizeof(path), "%s", inc);
	else
		snprintf(path, sizeof(path), "%s/%s", w->base, inc);
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	return add_source(w, path, rel);
}

/* For index_includes() when it only tells whether a file is an index. */
static int
no_add(void *arg, const char *inc)
{
	(void)arg;
	(void)inc;
	return 0;
}

static int
walk_dir(struct walk *w, const char *dir, const char *rel, int depth)
{
	struct dirent **list;
	int n, r = 0;

	if (depth > MAX_DEPTH) {
		fprintf(stderr, "scanner: %s: deeper than %d levels; not read\n", dir,
			MAX_DEPTH);
		return 0;
	}
	n = scandir(dir, &list, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "scanner: %s: %s\n", dir, strerror(errno));
		if (!w->u->err)
			w->u->err = -errno;
		return 0;
	}
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX], sub[PATH_MAX];
		const char *name = list[i]->d_name;
		struct stat sb;

		if (name[0] == '.' || r < 0)
			goto next;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", name);
		if (stat(path, &sb) < 0) {
			fprintf(stderr, "scanner: %s: %s\n", path, strerror(errno));
			goto next;
		}
		if (S_ISDIR(sb.st_mode)) {
			bool loop = false;

			for (int k = 0; k <= depth && k < MAX_DEPTH + 1; k++)
				loop = loop ||
				       (w->dev[k] == sb.st_dev && w->ino[k] == sb.st_ino);
			if (loop) {
				fprintf(stderr,
					"scanner: %s: a link back to a directory above; "
					"not read\n",
					path);
				goto next;
			}
			if (depth + 1 <= MAX_DEPTH) {
				w->dev[depth + 1] = sb.st_dev;
				w->ino[depth + 1] = sb.st_ino;
			}
			r = walk_dir(w, path, sub, depth + 1);
		} else if (S_ISREG(sb.st_mode) && has_rule_suffix(name)) {
			int k = is_compiled(path) ? 0
						  : index_includes(path, no_add, NULL);

			if (k > 0)
				w->u->skipped_index++;
			else
				r = add_source(w, path, sub);
		}
next:
		free(list[i]);
	}
	free(list);
	return r;
}

int
svc_rule_files_find(const struct svc_options *o, struct svc_units *u)
{
	struct walk w = { .o = o, .u = u };
	struct stat sb;
	int k;

	if (stat(o->rules, &sb) < 0) {
		int e = errno;

		fprintf(stderr, "scanner: %s: %s\n", o->rules, strerror(e));
		return -e;
	}
	if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode)) {
		/* a FIFO would block the first read for ever */
		fprintf(stderr, "scanner: %s: not a regular file or a directory\n",
			o->rules);
		return -EINVAL;
	}
	if (S_ISDIR(sb.st_mode)) {
		w.dev[0] = sb.st_dev;
		w.ino[0] = sb.st_ino;
		return walk_dir(&w, o->rules, "", 0);
	}
	if (is_compiled(o->rules))
		return units_add(u, o->rules, NULL, true);
	k = index_includes(o->rules, no_add, NULL);
	if (k > 0) {
		char *dir = strdup(o->rules), *slash;

		if (!dir)
			return -ENOMEM;
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		w.base = slash ? (*dir ? dir : "/") : ".";
		k = index_includes(o->rules, add_included, &w);
		free(dir);
		return k < 0 ? k : 0;
	}
	{
		const char *base = strrchr(o->rules, '/');

		return units_add(u, o->rules, base ? base + 1 : o->rules, false);
	}
}
