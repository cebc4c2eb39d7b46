/* SPDX-License-Identifier: MIT */
/*
 * rules.c — a rule set as vendors ship one: finding its files, compiling
 * or loading them, and reference counting, so that a reload can swap the
 * set while scans in progress finish with the one they started with.
 * Owns the YR_RULES of a set; the last reference destroys them.
 *
 * --rules names one of:
 *  - a source file: compiled as it is (its include directives resolved
 *    relative to it by libyara);
 *  - an index file (nothing but include directives and comments, like
 *    Yara-Rules' index.yar): each included file is a unit of its own;
 *  - a directory: every *.yar, *.yara, *.yarc and *.yc below it (sorted,
 *    recursive, dot-files skipped), index files among them skipped, as
 *    the files they include are in the tree themselves;
 *  - a compiled file (`yarac` output, told by its "YARA" header, not its
 *    name), loaded with yr_rules_load() as a set of its own.
 * Each source unit gets its own namespace, its path relative to the root
 * (or, with --namespace folder, its top-level folder), so that two
 * vendors' files defining the same rule name can be loaded together.
 *
 * A file that does not compile is reported with every error libyara
 * gives for it and left out; the others are loaded (or, with
 * --strict-rules, nothing is). libyara's compiler is unusable after an
 * error, so the first failure restarts the compilation without the bad
 * file, and from then on each remaining file is first compiled alone:
 * one that fails alone is left out without a restart (with namespaces
 * per folder, unless its only errors are undefined identifiers, which
 * may name private rules of an earlier file of its folder), so that the
 * whole set costs about twice one compilation however many files fail. Warnings are counted
 * and summarised in one line unless --rule-warnings asks for each.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yara.h>

#include "svc.h"

#define MAX_DEPTH 16

struct unit {
	char *path;
	char *ns; /* NULL for a compiled file */
	bool compiled;
	bool bad;
	bool ok; /* added to a compiler without error once */
};

struct units {
	struct unit *v;
	size_t n, cap;
	unsigned skipped_index;
	int err; /* the first walk error (-errno) */
};

struct svc_rules {
	atomic_uint refs;
	unsigned count, nsets;
	unsigned failed; /* rule files left out */
	struct svc_yset *sets;
	struct svc_rule_info *info;
	const YR_RULE **by_idx;
};

/* ---- finding the files ---- */

static int
units_add(struct units *u, const char *path, const char *ns, bool compiled)
{
	struct unit *x;

	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		struct unit *v = realloc(u->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	x = &u->v[u->n];
	*x = (struct unit){ .compiled = compiled };
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

static void
units_free(struct units *u)
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
	struct units *u;
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

static int
find_units(const struct svc_options *o, struct units *u)
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

/* ---- compiling ---- */

struct compile_log {
	const struct svc_options *o;
	unsigned errors;   /* in the current unit */
	unsigned warnings; /* in the current pass */
	bool quiet;        /* a trial compile: errors only, kept in errs */
	char **warn;       /* the current pass's warnings (--rule-warnings) */
	size_t n_warn;
	char **errs; /* a trial's errors, printed if the file is left out */
	size_t n_errs;
	bool other_error; /* a trial error other than an undefined identifier */
};

/* Appends a formatted line to *v. */
static void
lines_add(char ***v, size_t *n, const char *file, int line, const char *what,
	  const char *message)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return;
	*v = nv;
	if (asprintf(&nv[*n], "scanner: %s:%d: %s: %s", file ? file : "(rules)", line,
		     what, message) >= 0)
		(*n)++;
}

static void
lines_free(char ***v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
	*n = 0;
}

static void
on_compile_message(int level, const char *file, int line, const YR_RULE *rule,
		   const char *message, void *user)
{
	struct compile_log *l = user;

	(void)rule;
	if (level == YARA_ERROR_LEVEL_ERROR) {
		l->errors++;
		if (!l->quiet) {
			fprintf(stderr, "scanner: %s:%d: error: %s\n",
				file ? file : "(rules)", line, message);
			return;
		}
		lines_add(&l->errs, &l->n_errs, file, line, "error", message);
		if (strncmp(message, "undefined identifier", 20) != 0)
			l->other_error = true;
		return;
	}
	if (l->quiet)
		return;
	l->warnings++;
	if (l->o->rule_warnings)
		lines_add(&l->warn, &l->n_warn, file, line, "warning", message);
}

static void
warnings_clear(struct compile_log *l)
{
	lines_free(&l->warn, &l->n_warn);
	l->warnings = 0;
}

static int
compiler_new(const struct svc_options *o, struct compile_log *l, YR_COMPILER **ret)
{
	YR_COMPILER *c;
	int r;

	if (yr_compiler_create(&c) != ERROR_SUCCESS)
		return -ENOMEM;
	yr_compiler_set_callback(c, on_compile_message, l);
	r = svc_externals_declare(o, c);
	if (r < 0) {
		yr_compiler_destroy(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* Adds one unit; the number of errors (the compiler is then unusable). */
static unsigned
add_unit(YR_COMPILER *c, struct compile_log *l, const struct unit *x)
{
	FILE *f = fopen(x->path, "re");

	l->errors = 0;
	if (!f) {
		fprintf(stderr, "scanner: %s: %s\n", x->path, strerror(errno));
		return 1;
	}
	yr_compiler_add_file(c, f, x->ns, x->path);
	fclose(f);
	return l->errors;
}

/* Compiles one unit alone. False (its errors printed) if it is bad for
 * sure: with a namespace per file, any error; with a namespace per
 * folder, an error other than an undefined identifier, which may be a
 * private rule of an earlier file of the folder (then the real
 * compilation tells). */
static bool
trial(const struct svc_options *o, const struct unit *x)
{
	struct compile_log l = { .o = o, .quiet = true };
	YR_COMPILER *c;
	bool bad;

	if (compiler_new(o, &l, &c) < 0)
		return true; /* let the real compilation tell */
	bad = add_unit(c, &l, x) != 0 && (o->ns_mode == SVC_NS_FILE || l.other_error);
	yr_compiler_destroy(c);
	for (size_t i = 0; bad && i < l.n_errs; i++)
		fprintf(stderr, "%s\n", l.errs[i]);
	lines_free(&l.errs, &l.n_errs);
	return !bad;
}

/* Compiles every good source unit into *ret (NULL if there is none);
 * marks the failing ones bad. */
static int
compile_sources(const struct svc_options *o, struct units *u, struct compile_log *l,
		YR_RULES **ret)
{
	bool precheck = false, any;

	*ret = NULL;
	for (;;) {
		YR_COMPILER *c;
		bool restart = false;
		int r;

		warnings_clear(l);
		r = compiler_new(o, l, &c);
		if (r < 0)
			return r;
		any = false;
		for (size_t i = 0; i < u->n && !restart; i++) {
			struct unit *x = &u->v[i];

			if (x->compiled || x->bad)
				continue;
			if (precheck && !x->ok && !trial(o, x)) {
				x->bad = true;
				continue;
			}
			if (add_unit(c, l, x) == 0) {
				x->ok = true;
			} else {
				x->bad = true;
				restart = true;
				/* From now on each remaining file is tried
				 * alone first, so that those bad for sure
				 * cost no restart (trial()). */
				precheck = true;
			}
			any = true;
		}
		if (restart) {
			yr_compiler_destroy(c);
			continue;
		}
		if (!any) {
			yr_compiler_destroy(c);
			return 0;
		}
		r = yr_compiler_get_rules(c, ret);
		yr_compiler_destroy(c);
		return r == ERROR_SUCCESS ? 0 : -ENOMEM;
	}
}

static unsigned
count_rules(YR_RULES *yr)
{
	const YR_RULE *rule;
	unsigned n = 0;

	yr_rules_foreach(yr, rule)
	{
		n++;
	}
	return n;
}

static int
set_add(struct svc_rules *r, YR_RULES *yr, bool compiled)
{
	struct svc_yset *v = realloc(r->sets, (r->nsets + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	r->sets = v;
	v[r->nsets] = (struct svc_yset){
		.yr = yr,
		.first = r->count,
		.count = count_rules(yr),
		.compiled = compiled,
	};
	r->count += v[r->nsets].count;
	r->nsets++;
	return 0;
}

static void
rules_free(struct svc_rules *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < r->nsets; i++)
		yr_rules_destroy(r->sets[i].yr);
	free(r->sets);
	free(r->info);
	free(r->by_idx);
	free(r);
}

static int
index_rules(struct svc_rules *r)
{
	r->info = calloc(r->count ? r->count : 1, sizeof(*r->info));
	r->by_idx = calloc(r->count ? r->count : 1, sizeof(*r->by_idx));
	if (!r->info || !r->by_idx)
		return -ENOMEM;
	for (unsigned s = 0; s < r->nsets; s++) {
		YR_RULES *yr = r->sets[s].yr;
		const YR_RULE *rule;
		unsigned i = r->sets[s].first;

		yr_rules_foreach(yr, rule)
		{
			r->by_idx[i++] = rule;
		}
	}
	return 0;
}

int
svc_rules_compile(const struct svc_options *o, struct svc_rules **ret)
{
	struct compile_log l = { .o = o };
	struct units u = { 0 };
	struct svc_rules *r = calloc(1, sizeof(*r));
	unsigned files = 0, bad = 0, compiled = 0;
	struct timespec t0, t1;
	YR_RULES *yr = NULL;
	int rc;

	if (!r)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = find_units(o, &u);
	if (rc < 0)
		goto fail;
	if (u.n == 0) {
		fprintf(stderr,
			"scanner: %s: no rule files (*.yar, *.yara, *.yarc, *.yc)\n",
			o->rules);
		rc = -EINVAL;
		goto fail;
	}
	rc = compile_sources(o, &u, &l, &yr);
	if (rc < 0)
		goto fail;
	if (yr && (rc = set_add(r, yr, false)) < 0) {
		yr_rules_destroy(yr);
		goto fail;
	}
	for (size_t i = 0; i < u.n; i++) {
		struct unit *x = &u.v[i];

		if (!x->compiled)
			continue;
		rc = yr_rules_load(x->path, &yr);
		if (rc != ERROR_SUCCESS) {
			fprintf(stderr,
				"scanner: %s: a compiled rule file this libyara (%s) "
				"cannot load (error %d: made by another YARA "
				"version?)\n",
				x->path, YR_VERSION, rc);
			x->bad = true;
			continue;
		}
		svc_externals_define_rules(o, yr);
		rc = set_add(r, yr, true);
		if (rc < 0) {
			yr_rules_destroy(yr);
			goto fail;
		}
	}
	for (size_t i = 0; i < u.n; i++) {
		files++;
		bad += u.v[i].bad;
		compiled += u.v[i].compiled && !u.v[i].bad;
	}
	for (size_t i = 0; i < l.n_warn; i++)
		fprintf(stderr, "%s\n", l.warn[i]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr,
		"scanner: rules: loaded %u rules from %u of %u files in %s (%u "
		"compiled)",
		r->count, files - bad, files, o->rules, compiled);
	if (u.skipped_index)
		fprintf(stderr, ", %u index files skipped", u.skipped_index);
	if (l.warnings)
		fprintf(stderr, ", %u compiler warnings%s", l.warnings,
			o->rule_warnings ? "" : " (--rule-warnings prints them)");
	fprintf(stderr, ", %lld ms\n",
		(long long)((t1.tv_sec - t0.tv_sec) * 1000 +
			    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	if (bad) {
		fprintf(stderr, "scanner: rules: %u of %u files FAILED and %s:\n", bad,
			files,
			o->strict_rules ? "nothing is loaded (--strict-rules)"
					: "are left out (their errors are above)");
		for (size_t i = 0; i < u.n; i++)
			if (u.v[i].bad)
				fprintf(stderr, "scanner: rules:   left out: %s\n",
					u.v[i].path);
	}
	if ((bad && o->strict_rules) || r->count == 0) {
		if (r->count == 0)
			fprintf(stderr, "scanner: rules: no rule loaded\n");
		rc = -EINVAL;
		goto fail;
	}
	rc = index_rules(r);
	if (rc < 0)
		goto fail;
	r->failed = bad;
	svc_policy_apply(o, r);
	warnings_clear(&l);
	units_free(&u);
	atomic_init(&r->refs, 1);
	*ret = r;
	return 0;
fail:
	warnings_clear(&l);
	units_free(&u);
	rules_free(r);
	return rc;
}

unsigned
svc_rules_count(const struct svc_rules *r)
{
	return r->count;
}

unsigned
svc_rules_failed(const struct svc_rules *r)
{
	return r->failed;
}

unsigned
svc_rules_nsets(const struct svc_rules *r)
{
	return r->nsets;
}

struct svc_yset *
svc_rules_set(struct svc_rules *r, unsigned i)
{
	assert(i < r->nsets);
	return &r->sets[i];
}

struct svc_rule_info *
svc_rules_info(struct svc_rules *r, unsigned idx)
{
	assert(idx < r->count);
	return &r->info[idx];
}

const void *
svc_rules_rule(struct svc_rules *r, unsigned idx)
{
	assert(idx < r->count);
	return r->by_idx[idx];
}

void
svc_rules_ref(struct svc_rules *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void
svc_rules_unref(struct svc_rules *r)
{
	if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
		rules_free(r);
}
