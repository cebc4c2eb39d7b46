/* SPDX-License-Identifier: MIT */
/*
 * svc.h — the pieces of the scanner service (filters/scanner/service/)
 * and how they fit: options.c reads the command line; rules.c compiles
 * YARA rules and hands out counted references to the current set;
 * worker.c runs the threads that take requests, scan the passed fd and
 * reply; report.c writes detections (text or JSON Lines); session.c
 * connects, reloads on SIGHUP, reconnects, and stops.
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

#include <fltmgr/user.h>

#include <fltmgr/scanner.h>

enum svc_exit {
	SVC_EXIT_OK = 0,
	SVC_EXIT_FAIL = 1,       /* lost the daemon with --no-reconnect */
	SVC_EXIT_USAGE = 2,      /* bad command line */
	SVC_EXIT_NO_DAEMON = 3,  /* no such port, or nobody listening */
	SVC_EXIT_PERMISSION = 4, /* refused by the port */
	SVC_EXIT_RULES = 5,      /* the rules do not compile */
};

struct svc_options {
	const char *rules; /* a file, or a directory of *.yar / *.yara */
	const char *port;  /* name, or a path containing '/' */
	const char *runtime_dir;
	unsigned threads;
	unsigned outstanding;
	uint64_t max_size;
	/* SCANNER_ERROR (the filter's default verdict: "default"),
	 * SCANNER_CLEAN or SCANNER_INFECTED */
	int oversize_verdict;
	unsigned exec_hold_ms; /* hold.c; 0: answered execs' files closed at once */
	int scan_timeout;      /* seconds, per file (YARA's unit) */
	bool json;
	bool reconnect;
	bool quiet;
	bool stats; /* print the filter's counters and exit */
};

int svc_parse_options(int argc, char **argv, struct svc_options *o);
int svc_port_path(const struct svc_options *o, char *buf, size_t size);

/* ---- rules.c ---- */

struct svc_rules;

/* Compiles o->rules. On errors prints each as FILE:LINE: message on
 * stderr and returns -EINVAL. */
int svc_rules_compile(const char *path, struct svc_rules **ret);
unsigned svc_rules_count(const struct svc_rules *r);
void svc_rules_ref(struct svc_rules *r);
void svc_rules_unref(struct svc_rules *r);
/* YR_RULES * of r (opaque here). */
void *svc_rules_yara(struct svc_rules *r);

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
	struct svc_hold *hold; /* hold.c */
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

void svc_report_detection(struct service *s, const struct scanner_request *q,
			  const char *rule, const char *ns);
void svc_print_stats(struct service *s);

/* ---- session.c ---- */

int svc_run(const struct svc_options *o);

#endif
