/* SPDX-License-Identifier: MIT */
/*
 * session.c — the service's life: compile the rules, connect to the
 * scanner port with a context announcing its window (threads x
 * outstanding), run the workers, and react to signals and to the daemon
 * going away. The main thread does only this; scanning is worker.c's.
 *
 * Signals (SIGINT, SIGTERM, SIGHUP, SIGUSR1) are blocked before any
 * thread starts and read from a signalfd polled with the port's
 * descriptor and the workers' eventfd, so they are handled here and
 * never inside a scan:
 *  - SIGHUP compiles the rules again; on success the new set replaces the
 *    old one (scans in progress finish with the old), then the filter is
 *    told to flush its verdict caches. On failure the old set stays. The
 *    connection is kept either way.
 *  - SIGUSR1 prints the counters on stderr.
 *  - SIGINT/SIGTERM stop the workers (a scan in progress finishes and is
 *    answered), close the port and exit 0. Requests not yet taken are
 *    answered by the filter at once with its default verdict.
 *
 * When the connection ends (fltmgrd stopped or restarted, the filter
 * unloaded), the workers are stopped and the service reconnects with
 * exponential backoff (100 ms to 5 s); with --no-reconnect it exits 1.
 * The first connection is not retried: a missing daemon is one line and
 * a distinct exit status.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <yara.h>

#include "svc.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct session {
	struct service s;
	char path[PATH_MAX];
	int sfd;
	bool stopping;
	int exit_code;
};

__attribute__((format(printf, 2, 3))) static void
say(const struct session *ss, const char *fmt, ...)
{
	va_list ap;

	if (ss->s.o->quiet)
		return;
	fputs("scanner: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct svc_rules *
svc_rules_get(struct service *s)
{
	struct svc_rules *r;

	pthread_mutex_lock(&s->rules_lock);
	r = s->rules;
	svc_rules_ref(r);
	pthread_mutex_unlock(&s->rules_lock);
	return r;
}

static const char *
connect_cause(int err, int *ret_exit)
{
	*ret_exit = SVC_EXIT_FAIL;
	switch (err) {
	case -ENOENT:
		*ret_exit = SVC_EXIT_NO_DAEMON;
		return "no such port (is fltmgrd running with the scanner filter?)";
	case -ECONNREFUSED:
		*ret_exit = SVC_EXIT_NO_DAEMON;
		return "nobody is listening (fltmgrd is not running)";
	case -EACCES:
	case -EPERM:
		*ret_exit = SVC_EXIT_PERMISSION;
		return "permission denied (the port's mode refuses this user; try as "
		       "root)";
	case -EUSERS:
		return "the port is at its connection limit (param.max_connections)";
	case -EPROTO:
		return "the filter refused the connection context (another version?)";
	}
	return strerror(-err);
}

static int
connect_port(struct session *ss, uint32_t window)
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE];

	scanner_context_encode(window, ctx);
	return filter_connect_communication_port(ss->path, 0, ctx, sizeof(ctx),
						 &ss->s.port);
}

/* ---- signals ---- */

static int
signals_block(sigset_t *set)
{
	signal(SIGPIPE, SIG_IGN);
	/* A read lease on an exec's file (worker.c) sends SIGIO to us when
	 * someone opens it for writing; the writer waits until the filter
	 * side has answered and closed the file. Nothing to do for us, and
	 * SIGIO's default action would end the service. */
	signal(SIGIO, SIG_IGN);
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, set, NULL))
		return -EINVAL;
	return 0;
}

static void
reload(struct session *ss)
{
	struct service *s = &ss->s;
	struct svc_rules *r, *old;
	uint8_t cmd[SCANNER_CMD_SIZE];
	size_t olen = 0;
	int rc = svc_rules_compile(s->o, &r);

	if (rc < 0) {
		fprintf(stderr,
			"scanner: SIGHUP: the rules in %s do not compile; "
			"keeping the current ones\n",
			s->o->rules);
		return;
	}
	pthread_mutex_lock(&s->rules_lock);
	old = s->rules;
	s->rules = r;
	pthread_mutex_unlock(&s->rules_lock);
	svc_rules_unref(old);
	atomic_fetch_add(&s->ctr.reloads, 1);
	svc_write_stats(s);
	/* After the swap: a request the filter sends from now on is scanned
	 * with the new rules, so nothing cached after the flush is stale. */
	if (s->port) {
		scanner_cmd_encode(SCANNER_CMD_FLUSH, cmd);
		rc = filter_send_message(s->port, cmd, sizeof(cmd), NULL, 0, &olen);
	}
	say(ss, "rules reloaded from %s: %u rules%s%s", s->o->rules, svc_rules_count(r),
	    rc < 0 ? "; could not flush the filter's caches: " : "",
	    rc < 0 ? strerror(-rc) : "");
}

/* Handles what the signalfd holds; true if it is time to stop. */
static bool
handle_signals(struct session *ss)
{
	struct signalfd_siginfo si;

	while (read(ss->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			reload(ss);
		else if (si.ssi_signo == SIGUSR1)
			svc_print_stats(&ss->s);
		else if (!ss->stopping)
			ss->stopping = true;
	}
	return ss->stopping;
}

/* ---- connection ---- */

static void
disconnect(struct session *ss)
{
	uint64_t v;

	svc_workers_stop(&ss->s);
	filter_close_port(ss->s.port);
	ss->s.port = NULL;
	while (read(ss->s.lost_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

static bool
wait_signal(struct session *ss, int timeout_ms)
{
	struct pollfd pf = { .fd = ss->sfd, .events = POLLIN };

	if (poll(&pf, 1, timeout_ms) > 0)
		return handle_signals(ss);
	return ss->stopping;
}

/* Reconnects until it works or a stop signal comes. */
static bool
reconnect(struct session *ss, uint32_t window)
{
	int delay = BACKOFF_MIN_MS, last_err = 0;

	say(ss,
	    "lost the connection to %s (fltmgrd stopped or the filter was "
	    "unloaded); reconnecting",
	    ss->path);
	while (!wait_signal(ss, delay)) {
		int code, r = connect_port(ss, window);

		if (r == 0) {
			say(ss, "reconnected to %s", ss->path);
			return true;
		}
		if (r != last_err && r != -ENOENT && r != -ECONNREFUSED)
			say(ss, "%s: %s; still trying", ss->path,
			    connect_cause(r, &code));
		last_err = r;
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	}
	return false;
}

static void
run_loop(struct session *ss, uint32_t window)
{
	struct service *s = &ss->s;

	while (!ss->stopping) {
		struct pollfd pf[3] = {
			{ .fd = ss->sfd, .events = POLLIN },
			{ .fd = s->lost_fd, .events = POLLIN },
			{ .fd = filter_port_fd(s->port), .events = 0 }, /* POLLHUP */
		};
		int r;

		/* The stats file follows detections within a second. */
		r = poll(pf, 3, atomic_load(&s->stats_dirty) ? 1000 : -1);
		if (r == 0) {
			svc_write_stats(s);
			continue;
		}
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "scanner: poll: %s\n", strerror(errno));
			ss->exit_code = SVC_EXIT_FAIL;
			break;
		}
		if (pf[0].revents && handle_signals(ss))
			break;
		if (!pf[1].revents && !(pf[2].revents & (POLLHUP | POLLERR)))
			continue;
		disconnect(ss);
		if (!s->o->reconnect) {
			fprintf(stderr,
				"scanner: lost the connection to %s; exiting "
				"(--no-reconnect)\n",
				ss->path);
			ss->exit_code = SVC_EXIT_FAIL;
			return;
		}
		if (!reconnect(ss, window))
			return;
		r = svc_workers_start(s);
		if (r < 0) {
			fprintf(stderr, "scanner: cannot start workers: %s\n",
				strerror(-r));
			ss->exit_code = SVC_EXIT_FAIL;
			return;
		}
	}
}

/* --stats: a monitor connection (window 0) asks for the counters. */
static int
print_filter_stats(struct session *ss)
{
	uint8_t cmd[SCANNER_CMD_SIZE], out[SCANNER_STATS_SIZE + 512];
	uint64_t v[SCANNER_CTR_COUNT_];
	size_t olen = 0;
	int code, r = connect_port(ss, 0);

	if (r < 0) {
		fprintf(stderr, "scanner: cannot connect to port %s: %s\n", ss->path,
			connect_cause(r, &code));
		return code;
	}
	scanner_cmd_encode(SCANNER_CMD_STATS, cmd);
	r = filter_send_message(ss->s.port, cmd, sizeof(cmd), out, sizeof(out), &olen);
	filter_close_port(ss->s.port);
	ss->s.port = NULL;
	if (r < 0 || scanner_stats_decode(out, olen, v) < 0) {
		fprintf(stderr, "scanner: the filter's counters: %s\n",
			r < 0 ? strerror(-r) : "malformed answer");
		return SVC_EXIT_FAIL;
	}
	for (int i = 0; i < SCANNER_CTR_COUNT_; i++)
		printf(ss->s.o->json ? "%s\"%s\":%llu" : "%s%s %llu\n",
		       ss->s.o->json ? (i ? "," : "{") : "", scanner_counter_names[i],
		       (unsigned long long)v[i]);
	if (ss->s.o->json)
		printf("}\n");
	/* The service's own counters and each rule's matches, from the file
	 * the running service keeps (report.c). */
	(void)svc_print_stats_file(ss->s.stats_path, ss->s.o->json);
	return SVC_EXIT_OK;
}

int
svc_run(const struct svc_options *o)
{
	struct session *ss = calloc(1, sizeof(*ss));
	uint32_t window = o->threads * o->outstanding;
	sigset_t set;
	int r, code = SVC_EXIT_FAIL;

	if (!ss) {
		fprintf(stderr, "scanner: out of memory\n");
		return SVC_EXIT_FAIL;
	}
	ss->s.o = o;
	ss->sfd = -1;
	ss->s.lost_fd = -1;
	pthread_mutex_init(&ss->s.rules_lock, NULL);
	pthread_mutex_init(&ss->s.out_lock, NULL);
	if (svc_port_path(o, ss->path, sizeof(ss->path)) < 0) {
		fprintf(stderr, "scanner: the port path is too long\n");
		code = SVC_EXIT_USAGE;
		goto out;
	}
	snprintf(ss->s.stats_path, sizeof(ss->s.stats_path), "%s.stats", ss->path);
	if (o->stats) {
		code = print_filter_stats(ss);
		goto out;
	}
	if (o->self_test) {
		code = svc_self_test(o, ss->path);
		goto out;
	}
	if (yr_initialize() != ERROR_SUCCESS) {
		fprintf(stderr, "scanner: cannot initialise libyara\n");
		goto out;
	}
	r = svc_rules_compile(o, &ss->s.rules);
	if (r < 0) {
		fprintf(stderr, "scanner: no rules loaded from %s; exiting\n", o->rules);
		code = SVC_EXIT_RULES;
		goto out_yara;
	}
	if (o->check) {
		code = SVC_EXIT_OK;
		goto out_yara;
	}
	if (signals_block(&set) < 0 ||
	    (ss->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    (ss->s.lost_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		fprintf(stderr, "scanner: signalfd/eventfd: %s\n", strerror(errno));
		goto out_yara;
	}
	/* Descriptors: one per request in flight and per held executed file
	 * (hold.c); the soft limit is often far below the hard one. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	r = svc_hold_start(&ss->s);
	if (r < 0) {
		fprintf(stderr, "scanner: cannot start the lease keeper: %s\n",
			strerror(-r));
		goto out_yara;
	}
	r = connect_port(ss, window);
	if (r < 0) {
		fprintf(stderr, "scanner: cannot connect to port %s: %s\n", ss->path,
			connect_cause(r, &code));
		goto out_yara;
	}
	r = svc_workers_start(&ss->s);
	if (r < 0) {
		fprintf(stderr, "scanner: cannot start workers: %s\n", strerror(-r));
		svc_workers_stop(&ss->s);
		goto out_yara;
	}
	say(ss, "connected to %s: %u rules from %s, %u threads x %u outstanding",
	    ss->path, svc_rules_count(ss->s.rules), o->rules, o->threads, o->outstanding);
	svc_write_stats(&ss->s);
	ss->exit_code = SVC_EXIT_OK;
	run_loop(ss, window);
	code = ss->exit_code;
	if (ss->s.port)
		disconnect(ss);
	svc_print_stats(&ss->s);
	(void)unlink(ss->s.stats_path); /* the counters go with the service */

out_yara:
	if (ss->s.port) { /* workers failed to start */
		filter_close_port(ss->s.port);
		ss->s.port = NULL;
	}
	svc_hold_stop(&ss->s);
	svc_rules_unref(ss->s.rules);
	yr_finalize();
out:
	if (ss->sfd >= 0)
		close(ss->sfd);
	if (ss->s.lost_fd >= 0)
		close(ss->s.lost_fd);
	pthread_mutex_destroy(&ss->s.rules_lock);
	pthread_mutex_destroy(&ss->s.out_lock);
	free(ss);
	return code;
}
