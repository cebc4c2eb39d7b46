/* SPDX-License-Identifier: MIT */
/*
 * fltmgrd.c — the daemon's life: command line, configuration (a file, or
 * the built-in default), dropping capabilities, the runtime-directory lock,
 * startup, the main loop (signals, control socket, systemd watchdog,
 * metrics timer) and the ordered shutdown. See fltmgrd(8). Reloading and
 * the health check are reload.c's, metrics_file is metrics.c's: the
 * command handlers call those, never this file.
 *
 * One thread runs all of this; libfltmgr's own threads do the filtering.
 * Signals are blocked in every thread and read from a signalfd, so a
 * SIGHUP can never interrupt a half-done change.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/runtime_dir.h"
#include "common/timeutil.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "daemon/dlog.h"
#include "daemon/loader.h"
#include "daemon/metrics.h"
#include "daemon/privileges.h"
#include "daemon/rundir.h"
#include "daemon/trust.h"
#include "daemon/commands.h"
#include "ctl/prom.h"
#include "engine/kernel.h"

#ifndef FLTMGR_VERSION
#define FLTMGR_VERSION "unknown"
#endif
#ifndef FLTMGR_FILTER_DIR
#define FLTMGR_FILTER_DIR "/usr/lib/fltmgr/filters"
#endif
/* Where this binary was built, and the filters built with it: an fltmgrd
 * run from its build tree uses those (meson sets both; an installed
 * fltmgrd is elsewhere and never does). */
#ifndef FLTMGR_BUILD_DAEMON
#define FLTMGR_BUILD_DAEMON ""
#endif
#ifndef FLTMGR_BUILD_FILTER_DIR
#define FLTMGR_BUILD_FILTER_DIR ""
#endif

enum exit_code {
	EXIT_OK = 0,
	EXIT_CONFIG = 1,
	EXIT_USAGE = 2,
	EXIT_RUNNING = 3,
	EXIT_PRIVILEGE = 4,
};

struct options {
	const char *config;
	const char **attach;
	size_t n_attach;
	const char *runtime_dir;
	const char *filter_dir;
	int log_level; /* 0: not given */
	bool foreground;
	bool check_config;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: fltmgrd [OPTIONS]\n"
		"  -c, --config FILE      configuration (fltmgr.conf(5)); without it,\n"
		"                         minispy attached to --attach PATH "
		"(default " DAEMON_DEFAULT_ATTACH ")\n"
		"  -a, --attach PATH      built-in default only; repeatable\n"
		"  -r, --runtime-dir DIR  sockets and lock (default "
		"$FLTMGR_RUNTIME_DIR,\n"
		"                         the config's runtime_dir, "
		"or " RUNTIME_DIR_DEFAULT ")\n"
		"      --filter-dir DIR   filter objects (default the config's "
		"filter_dir\n"
		"                         or " FLTMGR_FILTER_DIR ";\n"
		"                         run from its build tree: that tree's filters)\n"
		"  -f, --foreground       do not fork (systemd runs it like this)\n"
		"      --check-config     check the configuration and exit\n"
		"  -l, --log-level LEVEL  error, warning, notice (default), info, debug\n"
		"  -h, --help             this text\n"
		"  -V, --version          the version\n");
}

static int
parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_FILTER_DIR = 256, OPT_CHECK };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "attach", required_argument, NULL, 'a' },
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "filter-dir", required_argument, NULL, OPT_FILTER_DIR },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:a:r:fl:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'a': {
			const char **n =
				realloc(o->attach, (o->n_attach + 1) * sizeof(*n));

			if (!n)
				return EXIT_CONFIG;
			o->attach = n;
			o->attach[o->n_attach++] = optarg;
			break;
		}
		case 'r':
			o->runtime_dir = optarg;
			break;
		case OPT_FILTER_DIR:
			o->filter_dir = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case OPT_CHECK:
			o->check_config = true;
			break;
		case 'l':
			o->log_level = dlog_parse_level(optarg);
			if (o->log_level < 0) {
				fprintf(stderr,
					"fltmgrd: --log-level must be error, warning, "
					"notice, info or debug, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf("fltmgrd " FLTMGR_VERSION "\n");
			exit(EXIT_OK);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fltmgrd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o->config && o->n_attach) {
		fprintf(stderr, "fltmgrd: --attach is for the built-in default; with "
				"--config, use attach lines in the file\n");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/*
 * The default filter directory: the installed one, unless this very
 * binary is the one meson built (the same file as FLTMGR_BUILD_DAEMON,
 * by device and inode): then the filters of its own build tree, so
 * `build/src/daemon/fltmgrd --attach DIR` works before any install. An
 * installed copy is another file and never loads from a build tree.
 */
static const char *
default_filter_dir(void)
{
	static const char build_daemon[] = FLTMGR_BUILD_DAEMON;
	static const char build_filters[] = FLTMGR_BUILD_FILTER_DIR;
	static const char *dir;
	struct stat self, built;

	if (dir)
		return dir;
	dir = FLTMGR_FILTER_DIR;
	if (build_daemon[0] && build_filters[0] && stat("/proc/self/exe", &self) == 0 &&
	    stat(build_daemon, &built) == 0 && self.st_dev == built.st_dev &&
	    self.st_ino == built.st_ino)
		dir = build_filters;
	return dir;
}

/* The command line's choices, as start and every reload use them. */
static struct daemon_cli
cli_of(const struct options *o)
{
	return (struct daemon_cli){
		.attach = o->attach,
		.n_attach = o->n_attach,
		.runtime_dir = o->runtime_dir,
		.filter_dir = o->filter_dir,
		.log_level = o->log_level,
		.default_filter_dir = default_filter_dir(),
	};
}

static int
load_config(const struct options *o, struct cfg **ret)
{
	char *errors = NULL;
	int r;

	if (!o->config) {
		struct daemon_cli cli = cli_of(o);

		return daemon_builtin_config(&cli, ret);
	}
	r = cfg_load_trusted(o->config, ret, &errors);
	if (r < 0) {
		if (errors)
			fputs(errors, stderr);
		else
			fprintf(stderr, "fltmgrd: %s: %s\n", o->config, strerror(-r));
	}
	free(errors);
	return r;
}

/* --check-config: everything that can be known without starting. */
static int
check_config(const struct options *o, const struct cfg *c)
{
	struct daemon_cli cli = cli_of(o);
	const char *dir = daemon_filter_dir(&cli, c);
	int bad = 0;
	gid_t gid;

	if (daemon_resolve_group(c->control_group, &gid) < 0) {
		fprintf(stderr, "%s: control_group '%s' does not exist\n", c->file,
			c->control_group);
		bad++;
	}
	for (size_t i = 0; i < c->n_filters; i++) {
		const struct cfg_filter *f = &c->filters[i];
		struct filter_image img;
		char *why = NULL;
		int r;

		/* Trusted (trust.h) and a whole shared object: what a load
		 * would check before touching anything. */
		r = filter_image_open(dir, f, &img, &why);
		if (r < 0) {
			fprintf(stderr, "%s:%d: filter %s: %s\n", c->file, f->line,
				f->name, why ? why : strerror(-r));
			bad++;
		} else {
			filter_image_close(&img);
		}
		free(why);
		for (size_t k = 0; k < f->n_instances; k++) {
			struct stat st;

			if (stat(f->instances[k].path, &st) < 0 || !S_ISDIR(st.st_mode))
				fprintf(stderr,
					"%s:%d: warning: filter %s: %s is not a "
					"directory "
					"now; attaching it will fail until it is\n",
					c->file, f->instances[k].line, f->name,
					f->instances[k].path);
		}
	}
	if (bad)
		return EXIT_CONFIG;
	printf("%s: configuration OK (%zu filter%s)\n", c->file, c->n_filters,
	       c->n_filters == 1 ? "" : "s");
	return EXIT_OK;
}

static bool
privileged(void)
{
	char line[256];
	bool ok = geteuid() == 0;
	FILE *f;

	if (ok)
		return true;
	f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;

		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			ok = caps & (1ULL << 21); /* CAP_SYS_ADMIN */
	}
	fclose(f);
	return ok;
}

/* ---- the daemon proper ---- */

static struct {
	bool logged_unhealthy;
} g;

static void
watchdog_tick(struct daemon *d)
{
	if (daemon_progressing(d)) {
		sd_notify(0, "WATCHDOG=1");
		d->ctr.watchdog_pings++;
		if (g.logged_unhealthy)
			dlog(FLT_LOG_NOTICE, "engine is making progress again");
		g.logged_unhealthy = false;
		return;
	}
	/* No ping: if this lasts, systemd restarts us (WatchdogSec). */
	d->ctr.watchdog_withheld++;
	if (!g.logged_unhealthy)
		dlog(FLT_LOG_ERROR,
		     "engine is stuck (a permission event is more than %d ms past its "
		     "deadline, or every reader is blocked); withholding the watchdog "
		     "ping",
		     DAEMON_PROGRESS_GRACE_MS);
	g.logged_unhealthy = true;
}

static int
open_watchdog_timer(void)
{
	uint64_t usec = 0;
	struct itimerspec its = { 0 };
	int fd;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return -1;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -1;
	usec /= 2;
	its.it_interval.tv_sec = (time_t)(usec / 1000000);
	its.it_interval.tv_nsec = (long)(usec % 1000000) * 1000;
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Returns the signal that ended the loop. */
static int
main_loop(struct daemon *d, int sig_fd, int wd_fd)
{
	for (;;) {
		struct pollfd p[3 + CONTROL_POLLFDS];
		struct signalfd_siginfo si;
		int n = 0, nc, timeout;

		p[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = wd_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = metrics_timer_fd(), .events = POLLIN };
		nc = control_pollfds(d->ctl, p + n, (int)(sizeof(p) / sizeof(p[0])) - n);
		timeout = control_expire(d->ctl);
		if (poll(p, (nfds_t)(n + nc), timeout) < 0) {
			if (errno == EINTR)
				continue;
			dlog(FLT_LOG_ERROR, "poll: %s", strerror(errno));
			return SIGTERM;
		}
		if (p[1].revents & POLLIN) {
			uint64_t ticks;

			if (read(wd_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
				watchdog_tick(d);
		}
		if (p[2].revents & POLLIN) {
			uint64_t ticks;

			if (read(metrics_timer_fd(), &ticks, sizeof(ticks)) ==
			    sizeof(ticks))
				metrics_write(d);
		}
		control_dispatch(d->ctl, p + n, nc);
		if (!(p[0].revents & POLLIN))
			continue;
		if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			struct apply_result res;

			dlog(FLT_LOG_NOTICE, "SIGHUP: reloading");
			char *why = NULL;

			(void)daemon_reload(d, &res, &why);
			free(why);
			continue;
		}
		return (int)si.ssi_signo;
	}
}

/* Without --foreground: the parent waits for the child to report its
 * startup result through a pipe and exits with it, so "fltmgrd && ..."
 * means "filtering". Returns the pipe's write end in the child. */
static int
daemonize(void)
{
	int pfd[2];
	pid_t pid;
	char code = EXIT_CONFIG;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &code, 1) != 1)
			code = EXIT_CONFIG;
		_exit(code);
	}
	close(pfd[0]);
	if (setsid() < 0)
		return -errno;
	return pfd[1];
}

static void
report_started(int *status_fd, int code)
{
	char c = (char)code;

	if (*status_fd < 0)
		return;
	if (code == EXIT_OK) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		dlog_use_syslog();
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	if (write(*status_fd, &c, 1) < 0) {
		/* the parent is gone: nobody to tell */
	}
	close(*status_fd);
	*status_fd = -1;
}

static int
run(const struct options *o, struct cfg *c)
{
	struct flt_manager_options mo = { 0 };
	struct daemon d = { .control_gid = (gid_t)-1 };
	int lock_fd, status_fd = -1, sig_fd = -1, wd_fd = -1, code = EXIT_CONFIG, sig;
	struct apply_result res;
	sigset_t mask;
	pid_t holder;
	char *why = NULL;

	if (!privileged()) {
		fprintf(stderr, "fltmgrd: needs root (CAP_SYS_ADMIN) for fanotify\n");
		cfg_free(c);
		return EXIT_PRIVILEGE;
	}
	if (!flt_kernel_supported(stderr)) {
		cfg_free(c);
		return EXIT_CONFIG;
	}
	/* First, while we are the only thread: everything below, and every
	 * reload, runs with the run-time set only (privileges.c says why). */
	if (privileges_drop() < 0) {
		cfg_free(c);
		return EXIT_PRIVILEGE;
	}
	d.cli = cli_of(o);
	d.runtime_dir = strdup(daemon_runtime_dir(&d.cli, c));
	d.filter_dir = strdup(daemon_filter_dir(&d.cli, c));
	d.config_path = o->config;
	if (!d.runtime_dir || !d.filter_dir)
		goto out;
	if (daemon_resolve_group(c->control_group, &d.control_gid) < 0) {
		fprintf(stderr, "fltmgrd: %s: control_group '%s' does not exist\n",
			c->file, c->control_group);
		goto out;
	}
	lock_fd = rundir_lock(d.runtime_dir, &holder, &why);
	if (lock_fd < 0) {
		fprintf(stderr, "fltmgrd: %s\n", why ? why : strerror(-lock_fd));
		free(why);
		code = lock_fd == -EBUSY ? EXIT_RUNNING : EXIT_CONFIG;
		goto out;
	}
	if (!o->foreground) {
		status_fd = daemonize();
		if (status_fd < 0) {
			fprintf(stderr, "fltmgrd: cannot fork: %s\n",
				strerror(-status_fd));
			goto out_unlock;
		}
	}
	(void)rundir_write_pid(lock_fd);

	/* Blocked before any thread exists, so every thread inherits it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0) {
		dlog(FLT_LOG_ERROR, "signalfd: %s", strerror(errno));
		goto out_unlock;
	}

	mo.runtime_dir = d.runtime_dir;
	mo.log_level = FLT_LOG_DEBUG; /* dlog_sink filters */
	mo.log_func = dlog_sink;
	if (flt_manager_new(&mo, &d.mgr) < 0) {
		dlog(FLT_LOG_ERROR, "cannot create the filter manager");
		goto out_unlock;
	}
	/* Denials and fail-open decisions: structured journal entries under
	 * systemd, a line on stderr otherwise. */
	flt_manager_set_decision_log(d.mgr, dlog_decision, NULL);
	daemon_apply_notification_hold(&d, c);
	d.started_ns = now_ns();
	filterset_init(&d.fs, d.mgr);
	if (filterset_set_dir(&d.fs, d.filter_dir) < 0)
		goto out_mgr;
	if (filterset_apply(&d.fs, c, &res) < 0) {
		size_t missing = 0;

		for (size_t i = 0; i < c->n_filters; i++) {
			struct running_filter *rf =
				filterset_find(&d.fs, c->filters[i].name);

			missing += !rf || !rf->lf.filter;
		}
		/* A filter that could not start stops the start; one that
		 * runs without an instance it could not attach does not (it
		 * shows in fltmc status). */
		if (missing) {
			dlog(FLT_LOG_ERROR, "%zu filter%s could not be started; stopping",
			     missing, missing == 1 ? "" : "s");
			goto out_filters;
		}
	}
	d.cfg = c;
	c = NULL;
	{
		int r = control_open(&d, &d.ctl);

		if (r < 0) {
			dlog(FLT_LOG_ERROR, "cannot create the control socket in %s: %s",
			     d.runtime_dir, strerror(-r));
			goto out_filters;
		}
	}
	wd_fd = open_watchdog_timer();
	metrics_arm(&d);
	dlog(FLT_LOG_NOTICE,
	     "fltmgrd " FLTMGR_VERSION " filtering with %zu filter%s (%s)", d.fs.n,
	     d.fs.n == 1 ? "" : "s",
	     d.config_path ? d.config_path : "built-in configuration");
	sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=Filtering with %zu filter%s",
		   (int)getpid(), d.fs.n, d.fs.n == 1 ? "" : "s");
	report_started(&status_fd, EXIT_OK);

	sig = main_loop(&d, sig_fd, wd_fd);

	dlog(FLT_LOG_NOTICE, "%s: shutting down", strsignal(sig));
	sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
	code = EXIT_OK;
	control_close(d.ctl);
	d.ctl = NULL;
out_filters:
	/* Each unload answers that filter's pending events with its default
	 * verdict and disconnects its services before its ports go. */
	filterset_unload_all(&d.fs);
out_mgr:
	flt_manager_free(d.mgr);
out_unlock:
	report_started(&status_fd, code);
	rundir_unlock(lock_fd);
out:
	if (sig_fd >= 0)
		close(sig_fd);
	if (wd_fd >= 0)
		close(wd_fd);
	cfg_free(d.cfg);
	cfg_free(c);
	free(d.runtime_dir);
	free(d.filter_dir);
	return code;
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	struct cfg *c = NULL;
	int code;

	code = parse_options(argc, argv, &o);
	if (code != EXIT_OK) {
		free(o.attach);
		return code;
	}
	if (o.log_level)
		dlog_set_level(o.log_level);
	if (load_config(&o, &c) < 0) {
		free(o.attach);
		return EXIT_CONFIG;
	}
	if (!o.log_level && c->log_level)
		dlog_set_level(c->log_level);
	if (o.check_config) {
		code = check_config(&o, c);
		cfg_free(c);
	} else {
		code = run(&o, c); /* takes c */
	}
	free(o.attach);
	return code;
}
