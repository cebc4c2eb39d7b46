/* SPDX-License-Identifier: MIT */
/*
 * rules.c — a rule set as vendors ship one, compiled or loaded from the
 * units rulefiles.c finds (a namespace each), and reference counted, so
 * that a reload can swap the set while scans in progress finish with the
 * one they started with. Owns the YR_RULES of a set (the sources compiled
 * together, and one per compiled file) and the per-rule tables of
 * policy.c and the workers' match counters; the last reference destroys
 * them.
 *
 * A file that does not compile is reported with every error libyara
 * gives for it and left out; the others are loaded (or, with
 * --strict-rules, nothing is). libyara's compiler is unusable after an
 * error, so the first failure restarts the compilation without the bad
 * file, and from then on each remaining file is first compiled alone:
 * one that fails alone is left out without a restart (with namespaces
 * per folder, unless its only errors are undefined identifiers, which
 * may name private rules of an earlier file of its folder), so that the
 * whole set costs about twice one compilation however many files fail.
 * Warnings are counted and summarised in one line unless --rule-warnings
 * asks for each.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yara.h>

#include "svc.h"

struct svc_rules {
	atomic_uint refs;
	unsigned count, nsets;
	unsigned builtin; /* of count: the built-in EICAR rule, unless --no-eicar */
	unsigned failed;  /* rule files left out */
	struct svc_yset *sets;
	struct svc_rule_info *info;
	const YR_RULE **by_idx;
};

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
add_unit(YR_COMPILER *c, struct compile_log *l, const struct svc_unit *x)
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
trial(const struct svc_options *o, const struct svc_unit *x)
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
compile_sources(const struct svc_options *o, struct svc_units *u, struct compile_log *l,
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
			struct svc_unit *x = &u->v[i];

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

/*
 * The EICAR anti-virus test file (eicar.org), always detected unless
 * --no-eicar, as anti-virus products do: `scanner --self-test` and an
 * operator's own check work whatever rule set is loaded. Its bytes are
 * written in hex, so this program never holds the test string itself.
 */
#define EICAR_NAMESPACE "fltmgr-builtin"
static const char eicar_rule[] =
	"rule fltmgr_eicar_test_file {\n"
	"  meta:\n"
	"    action = \"deny\"\n"
	"    description = \"the EICAR anti-virus test file (built in)\"\n"
	"  strings:\n"
	"    $eicar = { 58 35 4F 21 50 25 40 41 50 5B 34 5C 50 5A 58 35 34 "
	"28 50 5E 29 37 43 43 29 37 7D 24 45 49 43 41 52 2D "
	"53 54 41 4E 44 41 52 44 2D 41 4E 54 49 56 49 52 55 "
	"53 2D 54 45 53 54 2D 46 49 4C 45 21 24 48 2B 48 2A }\n"
	"  condition:\n"
	"    $eicar at 0 and filesize <= 128\n"
	"}\n";

/* The built-in rules, as a set of their own. */
static int
add_builtin(const struct svc_options *o, struct svc_rules *r)
{
	struct compile_log l = { .o = o };
	YR_COMPILER *c;
	YR_RULES *yr = NULL;
	int rc;

	rc = compiler_new(o, &l, &c);
	if (rc < 0)
		return rc;
	if (yr_compiler_add_string(c, eicar_rule, EICAR_NAMESPACE) != 0 ||
	    yr_compiler_get_rules(c, &yr) != ERROR_SUCCESS) {
		yr_compiler_destroy(c);
		lines_free(&l.errs, &l.n_errs);
		warnings_clear(&l);
		return -EINVAL; /* a bug here, not the user's rules */
	}
	yr_compiler_destroy(c);
	lines_free(&l.errs, &l.n_errs);
	warnings_clear(&l);
	rc = set_add(r, yr, false);
	if (rc < 0) {
		yr_rules_destroy(yr);
		return rc;
	}
	r->builtin = count_rules(yr);
	return 0;
}

int
svc_rules_compile(const struct svc_options *o, struct svc_rules **ret)
{
	struct compile_log l = { .o = o };
	struct svc_units u = { 0 };
	struct svc_rules *r = calloc(1, sizeof(*r));
	unsigned files = 0, bad = 0, compiled = 0;
	struct timespec t0, t1;
	YR_RULES *yr = NULL;
	int rc;

	if (!r)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = svc_rule_files_find(o, &u);
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
		struct svc_unit *x = &u.v[i];

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
	if (!o->no_eicar && r->count)
		fprintf(stderr, ", and the built-in EICAR test rule");
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
	if (!o->no_eicar && (rc = add_builtin(o, r)) < 0)
		goto fail;
	rc = index_rules(r);
	if (rc < 0)
		goto fail;
	r->failed = bad;
	svc_policy_apply(o, r);
	warnings_clear(&l);
	svc_rule_files_free(&u);
	atomic_init(&r->refs, 1);
	*ret = r;
	return 0;
fail:
	warnings_clear(&l);
	svc_rule_files_free(&u);
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
