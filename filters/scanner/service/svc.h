/* SPDX-License-Identifier: MIT */
/*
 * svc.h — the pieces of the scanner service (filters/scanner/service/)
 * and how they fit: options.c reads the command line; rules.c finds the
 * rule files (a file, an index of includes, a directory tree, yarac
 * output), compiles or loads them, leaving out the ones that fail, and
 * hands out counted references to the current set; externals.c defines
 * the external variables (built-in per scan, and -d ones); policy.c
 * decides each rule's action from its metadata; worker.c runs the
 * threads that take requests, scan the passed fd, reply and count each
 * rule's matches; report.c writes each decision to the log (journal or
 * stderr) and to the JSON stream; stats.c shows the counters; session.c
 * connects, reloads on SIGHUP, reconnects, and stops; selftest.c is
 * `scanner --self-test`.
 *
 * Every fallible function returns 0 or a negative errno value.
 */
#ifndef SCANNER_SERVICE_SVC_H
#define SCANNER_SERVICE_SVC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <limits.h>

#include <fltmgr/user.h>

#include <fltmgr/scanner.h>

enum svc_exit {
	SVC_EXIT_OK = 0,
	SVC_EXIT_FAIL = 1,       /* lost the daemon with --no-reconnect */
	SVC_EXIT_USAGE = 2,      /* bad command line */
	SVC_EXIT_NO_DAEMON = 3,  /* no such port, or nobody listening */
	SVC_EXIT_PERMISSION = 4, /* refused by the port */
	SVC_EXIT_RULES = 5,      /* the rules do not compile */
	SVC_EXIT_SELFTEST = 6,   /* --self-test: the test file was not denied */
};

enum svc_ns_mode {
	SVC_NS_FILE,   /* one namespace per rule file (its path) */
	SVC_NS_FOLDER, /* one per top-level folder of a directory tree */
};

/* What a match does, from least to most severe. */
enum svc_action {
	SVC_ACT_IGNORE = 0, /* counted only */
	SVC_ACT_REPORT = 1, /* logged, allowed */
	SVC_ACT_DENY = 2,   /* logged, denied (unless --report-only) */
};

enum svc_log_target {
	SVC_LOG_AUTO,    /* the journal if stderr is connected to it */
	SVC_LOG_JOURNAL, /* sd_journal_send() with structured fields */
	SVC_LOG_STDERR,  /* one key=value line per decision */
	SVC_LOG_NONE,
};

#define SVC_MAX_DEFINES 64
#define SVC_MAX_TAGS    32

struct svc_define {
	const char *name;
	const char *value;
};

struct svc_options {
	const char *rules; /* a file, an index of includes, or a directory tree */
	enum svc_ns_mode ns_mode;
	bool strict_rules;  /* refuse to start if any rule file fails */
	bool no_eicar;      /* without the built-in EICAR test rule */
	bool rule_warnings; /* print each compiler warning, not a count */
	struct svc_define defines[SVC_MAX_DEFINES]; /* -d name=value */
	unsigned n_defines;
	/* policy.c */
	enum svc_action default_action; /* a rule without policy metadata */
	bool report_only;               /* deny nothing */
	long long deny_score;           /* score/severity >= this denies; -1 off */
	const char *deny_tags[SVC_MAX_TAGS], *report_tags[SVC_MAX_TAGS];
	unsigned n_deny_tags, n_report_tags;
	enum svc_log_target log_target;
	bool check;          /* --check: load the rules, print the summary, exit */
	bool self_test;      /* --self-test */
	const char *scratch; /* --self-test's directory */
	const char *port;    /* name, or a path containing '/' */
	const char *runtime_dir;
	unsigned threads;
	unsigned outstanding;
	uint64_t max_size;
	/* SCANNER_ERROR (the filter's default verdict: "default"),
	 * SCANNER_CLEAN or SCANNER_INFECTED */
	int oversize_verdict;
	int timeout_verdict;   /* the same choice for a scan over --scan-timeout */
	unsigned exec_hold_ms; /* hold.c; 0: answered execs' files closed at once */
	int scan_timeout;      /* seconds, per file (YARA's unit) */
	bool json;
	bool reconnect;
	bool quiet;
	bool stats; /* print the filter's counters and exit */
};

int svc_parse_options(int argc, char **argv, struct svc_options *o);
int svc_port_path(const struct svc_options *o, char *buf, size_t size);

/* ---- rulefiles.c ---- */

/* One file to compile (ns set) or to load (compiled). */
struct svc_unit {
	char *path;
	char *ns; /* NULL for a compiled file */
	bool compiled;
	bool bad;
	bool ok; /* added to a compiler without error once (rules.c) */
};

struct svc_units {
	struct svc_unit *v;
	size_t n, cap;
	unsigned skipped_index; /* index files in a tree, not read */
	int err;                /* the first walk error (-errno) */
};

/* The units o->rules names, in order; errors printed. */
int svc_rule_files_find(const struct svc_options *o, struct svc_units *ret);
void svc_rule_files_free(struct svc_units *u);

/* ---- rules.c ---- */

struct svc_rules;

/* One YR_RULES of a rule set: the sources compiled together, or one
 * yarac-compiled file. `first` is the index of its first rule in the
 * set's per-rule tables (policy.c). */
struct svc_yset {
	void *yr; /* YR_RULES * */
	unsigned first, count;
	bool compiled;
};

struct svc_rule_info {
	uint8_t action; /* enum svc_action */
	_Atomic uint64_t matches;
};

/* Finds and compiles o->rules (see rules.c). Every file that fails is
 * reported (FILE:LINE: error) and left out; with o->strict_rules, or if
 * nothing loads, returns -EINVAL. Prints one summary line on stderr
 * (`loaded N rules from M files ...`). */
int svc_rules_compile(const struct svc_options *o, struct svc_rules **ret);
unsigned svc_rules_count(const struct svc_rules *r);
unsigned svc_rules_failed(const struct svc_rules *r); /* files left out */
unsigned svc_rules_nsets(const struct svc_rules *r);
struct svc_yset *svc_rules_set(struct svc_rules *r, unsigned i);
struct svc_rule_info *svc_rules_info(struct svc_rules *r, unsigned idx);
/* The rule of index idx (YR_RULE *). */
const void *svc_rules_rule(struct svc_rules *r, unsigned idx);
void svc_rules_ref(struct svc_rules *r);
void svc_rules_unref(struct svc_rules *r);

/* ---- externals.c ---- */

/* The external variables every rule may use: the built-in ones (defined
 * per scan from the request) and -d ones. */
bool svc_externals_builtin(const char *name);
int svc_externals_declare(const struct svc_options *o, void *yr_compiler);
/* -d ones on a compiled set (its own declarations decide which apply). */
void svc_externals_define_rules(const struct svc_options *o, void *yr_rules);
/* Per-worker state (the last owner looked up) and the per-scan values. */
struct svc_file_facts {
	char filename[256], filepath[SCANNER_PATH_MAX + 1], extension[32], filetype[16],
		owner[64];
	uint32_t owner_uid;
	bool owner_known;
};
void svc_externals_facts(struct svc_file_facts *f, const struct scanner_request *q,
			 uint32_t uid, const uint8_t *data, size_t len);
void svc_externals_define_scan(void *yr_scanner, const struct svc_file_facts *f);

/* ---- policy.c ---- */

/* Fills r's per-rule actions from the rules' metadata and o. */
void svc_policy_apply(const struct svc_options *o, struct svc_rules *r);
const char *svc_action_name(enum svc_action a);

/* ---- the service ---- */

struct svc_counters {
	_Atomic uint64_t scanned, clean, infected, errors, oversize, timeouts, bad,
		not_regular;
	/* execs whose file someone had open for writing (SCANNER_WRITERS);
	 * read leases that could not be taken for another reason */
	_Atomic uint64_t exec_writers, lease_errors;
	_Atomic uint64_t hold_failures;  /* files closed at once: out of memory */
	_Atomic uint64_t hold_evictions; /* closed early: SVC_HOLD_MAX held */
	_Atomic uint64_t scanning, max_concurrent;
	_Atomic uint64_t reloads;
	_Atomic uint64_t reported;   /* scans with report-only matches, allowed */
	_Atomic uint64_t would_deny; /* --report-only: denials not made */
	_Atomic uint64_t log_errors; /* decisions the log refused */
};

struct service {
	const struct svc_options *o;
	filter_port *port;
	pthread_mutex_t rules_lock;
	struct svc_rules *rules;  /* current set (rules_lock) */
	pthread_mutex_t out_lock; /* serialises detection lines */
	struct svc_counters ctr;
	atomic_bool stop_workers;
	int lost_fd; /* eventfd: a worker saw the connection end */
	pthread_t *threads;
	unsigned n_threads;
	struct svc_hold *hold;         /* hold.c */
	atomic_bool stats_dirty;       /* the stats file is behind (stats.c) */
	char stats_path[PATH_MAX + 8]; /* the counters for --stats (stats.c) */
};

/* The current rules, with a reference. */
struct svc_rules *svc_rules_get(struct service *s);

/* ---- worker.c ---- */

int svc_workers_start(struct service *s);
/* Stops them (at once, or after the scan in progress) and joins them.
 * The port then takes no new requests: close it next. */
void svc_workers_stop(struct service *s);

/* ---- hold.c ---- */

#define SVC_HOLD_MAX 512 /* executed files held at most at once */

int svc_hold_start(struct service *s);
/* Closes every held file and stops the keeper. */
void svc_hold_stop(struct service *s);
/* Takes fd, the leased file of the exec request q just answered, and
 * closes it --exec-hold ms from now (at once if holding is off). */
void svc_hold(struct service *s, int fd, const struct scanner_request *q);
/* q, an open just answered: if it is the same process's open of a file
 * whose exec is held (the exec's FAN_OPEN_PERM), hold that one longer. */
void svc_hold_extend(struct service *s, const struct scanner_request *q);

/* ---- report.c ---- */

/* One matching rule of a scan, and what it decided. */
struct svc_match {
	const void *rule; /* YR_RULE *, alive while the scan's set is held */
	enum svc_action action;
};

#define SVC_MATCHES_MAX 8 /* matches logged per scan; more are counted */

/* What one scan decided, for the log. */
struct svc_decision {
	struct svc_match m[SVC_MATCHES_MAX];
	unsigned n, more;
	bool denied; /* the verdict given: denied */
	char exe[256];
};

/* Reads the opener's exe while it still waits for the verdict. */
void svc_report_exe(const struct scanner_request *q, char *buf, size_t size);
/* Logs each match of d (after the reply). */
void svc_report_decision(struct service *s, const struct scanner_request *q,
			 const struct svc_decision *d);
/* A verdict of policy: the scan ran out of time, or the file is over the
 * size limit. `what` is "timeout" or "oversize". */
void svc_report_limit(struct service *s, const struct scanner_request *q,
		      const char *what, uint64_t size, int64_t ms, int verdict);
/* ---- stats.c ---- */

void svc_print_stats(struct service *s);
/* Writes the service's and the rules' counters to s->stats_path. */
void svc_write_stats(struct service *s);
/* --stats: the filter's counters, then the service's file if any. */
int svc_print_stats_file(const char *path, bool json);

/* ---- selftest.c ---- */

int svc_self_test(const struct svc_options *o, const char *port_path);

/* ---- session.c ---- */

int svc_run(const struct svc_options *o);

#endif
