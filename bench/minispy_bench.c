/* SPDX-License-Identifier: MIT */
/*
 * minispy_bench.c — minispy end to end, next to fatrace and inotifywait
 * (root only).
 *
 * Measures how many file-system events per second reach the minispy
 * service's JSON Lines file, what that costs in CPU per delivered event,
 * and what is lost (and whether the loss is reported), on a file-churn
 * workload, with the Debian tools fatrace and inotifywait on the same
 * workload in the same run.
 *
 * The program moves into a private mount namespace and mounts two tmpfs:
 * "watch", where a churn process works and which every listener watches
 * (and nothing else), and "out", where the listeners write their output,
 * fltmgrd keeps its runtime directory and the filter object. Every
 * listener is the real program, started as a child:
 *   (a) none       — the churn alone, its baseline rate
 *   (b) minispy    — `fltmgrd -f --attach WATCH` (built-in default:
 *                    the minispy filter) and the service
 *                    `minispy --json --output OUT/minispy.json`
 *   (c) fatrace    — `fatrace -c -o OUT/fatrace.txt`, run in WATCH
 *   (d) inotifywait — `inotifywait -m -r -o OUT/inotify.txt WATCH`
 * each measured alone, in an order that rotates from one repetition to
 * the next, once flat out and once at a fixed rate ("paced").
 *
 * The churn process (forked per run, so it is never a listener's own
 * process) does, per iteration, in one of --dirs subdirectories and under
 * fresh names: open(O_CREAT|O_EXCL|O_WRONLY) + write(1 byte) + close +
 * rename + unlink. That is 5 operations and 6 events: create, open,
 * write, close_write, rename, delete. Each tool's output is counted per
 * operation (see count_*()), only for the churn's pid (inotify has no
 * pid: only for this run's names), so every listener has exactly
 * 6 × iterations events to report.
 *
 * Delivery time: this process polls the size of the listener's output
 * file every POLL_MS. A minispy run ends when the churn has finished and
 * the service has printed as many lines as the port sent messages
 * (`fltmc stats`: messages_sent), the filter holding nothing unsent (see
 * minispy_caught_up()), or after DRAIN_MAX_MS; the other tools give no
 * count to compare with, so theirs ends when the file has not grown for
 * --quiet-ms. Rate = delivered / (last growth − churn start). CPU = the listener processes' CPU clocks
 * (clock_getcpuclockid: every thread, exited ones too, in ns) from just
 * before the churn starts to the end of the run; for minispy fltmgrd and
 * the service together. Loss = expected − delivered; it is reported when
 * the tool said so: minispy's "lost" records (exact counts for its own
 * queue, none for a kernel overflow), fatrace's pid-0 line for a kernel
 * overflow, inotifywait's Q_OVERFLOW line. minispy's stream is checked
 * too: its seq numbers and loss ranges must cover every record, and its
 * record and message counts must agree with `fltmc stats --json`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define DEFAULT_REPS     5
#define DEFAULT_CHURN    20000 /* flat-out iterations */
#define DEFAULT_RATE     5000  /* paced iterations per second */
#define DEFAULT_PACED_MS 2000
#define DEFAULT_DIRS     4
#define DEFAULT_QUIET_MS 300
#define CHECK_MS         20 /* minispy: still this long, ask fltmc */
#define MAX_REPS         1000
#define MAX_COUNT        10000000
#define EVENTS_PER_ITER  6
#define OPS_PER_ITER     5
#define POLL_MS          2
#define READY_MS         10000 /* a listener must be ready within this */
#define DRAIN_MAX_MS     120000
#define STOP_MS          5000

enum listener { L_NONE, L_MINISPY, L_FATRACE, L_INOTIFY, L_NOPROC, N_LISTENERS };
enum mode { M_FLAT, M_PACED, N_MODES };
enum op { OP_CREATE, OP_OPEN, OP_WRITE, OP_CLOSE_WRITE, OP_RENAME, OP_DELETE, N_OPS };

static const char *const lname[N_LISTENERS] = { "none", "minispy", "fatrace",
						"inotifywait", "minispy-noproc" };
static const char lletter[N_LISTENERS] = { 'a', 'b', 'c', 'd', 'e' };
static const char *const mname[N_MODES] = { "flat-out", "paced" };
static const char *const opname[N_OPS] = { "create",      "open",   "write",
					   "close_write", "rename", "delete" };

struct config {
	unsigned reps;
	unsigned long long churn, rate, paced_ms, dirs, quiet_ms;
	const char *json;
	const char *build;
	const char *keep; /* copy every run's output here */
	bool noproc;      /* also (e): minispy with param.process = false */
};

struct bench {
	struct config cfg;
	char exe_fltmgrd[PATH_MAX], exe_fltmc[PATH_MAX], exe_minispy[PATH_MAX],
		obj_minispy[PATH_MAX];
	char exe_fatrace[PATH_MAX], exe_inotify[PATH_MAX];
	bool have[N_LISTENERS];
	char base[64], watch[128], out[128];
	bool watch_mounted, out_mounted;
};

/* One listener, one mode, one repetition. */
struct run {
	bool ran;
	char why[160]; /* when it did not run, or what went wrong */
	uint64_t iters, expected;
	double gen_ops_s;      /* the churn's own operations per second */
	double gen_cpu_us;     /* the churn's CPU per iteration */
	double ev_s;           /* delivered events per second */
	double cpu_us_ev;      /* listener CPU per delivered event */
	double cpu_ms;         /* listener CPU, total */
	double cpu_ms_proc[2]; /* minispy: fltmgrd, the service */
	double lag_ms;         /* last delivery after the churn ended */
	uint64_t per_op[N_OPS];
	uint64_t delivered, other;
	int64_t missing;       /* expected - delivered */
	uint64_t lost_counted; /* minispy: sum of QUEUE/BACKLOG counts */
	uint64_t notices;      /* overflow indications in the output */
	int64_t unreported;    /* missing that nothing in the output covers */
	/* minispy only */
	bool seq_ok;
	uint64_t records, lines, last_seq, loss_records;
	bool stats_ok;
	uint64_t st_sent, st_delivered, st_seen, st_overflows, st_dropped;
};

struct rep {
	char order[N_LISTENERS + 1];
	struct run r[N_MODES][N_LISTENERS];
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t
cpu_ns(pid_t pid)
{
	struct timespec ts;
	clockid_t cid;

	if (pid <= 0 || clock_getcpuclockid(pid, &cid) != 0 ||
	    clock_gettime(cid, &ts) < 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Finds NAME on $PATH plus the sbin directories; false if absent. */
static bool
find_program(const char *name, char *ret, size_t size)
{
	const char *env = getenv("PATH");
	char *path, *save = NULL;
	bool found = false;

	if (asprintf(&path, "%s:/usr/sbin:/sbin:/usr/bin:/bin", env ? env : "") < 0)
		return false;
	for (char *d = strtok_r(path, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(ret, size, "%s/%s", *d ? d : ".", name);
		found = access(ret, X_OK) == 0;
	}
	free(path);
	return found;
}

static bool
file_contains(const char *path, const char *needle)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* The first line of a file, for error messages. */
static void
first_line(const char *path, char *ret, size_t size)
{
	FILE *f = fopen(path, "re");

	ret[0] = '\0';
	if (!f)
		return;
	if (fgets(ret, (int)size, f))
		ret[strcspn(ret, "\n")] = '\0';
	fclose(f);
}

/*
 * Starts argv[0] with cwd, stdout and stderr redirected to files (NULL:
 * /dev/null), dying with this process (PR_SET_PDEATHSIG). env: one extra
 * "NAME=value" or NULL.
 */
static pid_t
spawn(char *const argv[], const char *cwd, const char *out, const char *err,
      const char *env, int deathsig)
{
	pid_t pid;

	/* A log left by the previous run must not look like this one's. */
	if (out)
		unlink(out);
	if (err)
		unlink(err);
	pid = fork();
	if (pid != 0)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, deathsig);
	if (cwd && chdir(cwd) < 0)
		_exit(127);
	{
		int o = open(out ? out : "/dev/null",
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int e = open(err ? err : "/dev/null",
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int n = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (o < 0 || e < 0 || n < 0 || dup2(n, 0) < 0 || dup2(o, 1) < 0 ||
		    dup2(e, 2) < 0)
			_exit(127);
	}
	if (env)
		putenv((char *)env);
	execv(argv[0], argv);
	_exit(127);
}

/* Sends sig and reaps pid, SIGKILL after STOP_MS; the wait status, or -1. */
static int
stop_child(pid_t pid, int sig)
{
	int64_t deadline = now_ns() + (int64_t)STOP_MS * 1000000;
	int status;

	if (pid <= 0)
		return -1;
	if (sig)
		kill(pid, sig);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			return status;
		if (w < 0 && errno != EINTR)
			return -1;
		if (now_ns() > deadline) {
			fprintf(stderr,
				"minispy_bench: pid %d did not stop, killing it\n",
				(int)pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		sleep_ms(2);
	}
}

static int
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out, r = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if ((r = write_full(out, buf, (size_t)n)) < 0)
			break;
	if (n < 0)
		r = -errno;
	if (fchmod(out, mode) < 0 && r == 0)
		r = -errno;
	close(in);
	close(out);
	return r;
}

/* ------------------------------------------------------------------ */
/* The churn                                                            */

struct churn_result {
	int64_t start_ns, end_ns, cpu_ns;
	uint64_t iters;
	int err;
};

/*
 * The churn process: waits for the go byte, then M iterations in
 * WATCH/d<i % dirs>, each under names nobody used before (prefix is unique
 * per run). rate 0: flat out; else iteration i starts no earlier than
 * start + i / rate seconds.
 */
static void
churn_main(const struct bench *b, const char *prefix, uint64_t iters, uint64_t rate,
	   int go_fd, int res_fd)
{
	struct churn_result res = { 0 };
	char a[96], c[96];
	struct timespec ts;
	char go;

	if (chdir(b->watch) < 0) {
		res.err = errno;
		goto out;
	}
	if (read(go_fd, &go, 1) != 1)
		_exit(1);
	res.start_ns = now_ns();
	for (uint64_t i = 0; i < iters; i++) {
		unsigned d = (unsigned)(i % b->cfg.dirs);
		int fd;

		if (rate) {
			int64_t t =
				res.start_ns + (int64_t)((double)i * 1e9 / (double)rate);

			if (now_ns() < t) {
				ts.tv_sec = t / 1000000000;
				ts.tv_nsec = t % 1000000000;
				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
						       &ts, NULL) == EINTR)
					;
			}
		}
		snprintf(a, sizeof(a), "d%u/%s%llu", d, prefix, (unsigned long long)i);
		snprintf(c, sizeof(c), "d%u/%s%llu.r", d, prefix, (unsigned long long)i);
		fd = open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) < 0 ||
		    rename(a, c) < 0 || unlink(c) < 0) {
			res.err = errno;
			break;
		}
		res.iters++;
	}
	res.end_ns = now_ns();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	res.cpu_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
out:
	(void)write_full(res_fd, &res, sizeof(res));
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* Counting what each tool delivered                                    */

static void
tally_missing(struct run *r)
{
	r->delivered = 0;
	for (int o = 0; o < N_OPS; o++)
		r->delivered += r->per_op[o];
	r->missing = (int64_t)r->expected - (int64_t)r->delivered;
}

/*
 * minispy JSON Lines: one object per event (op, pid, seq) or per loss
 * ({"op":"lost","count","first_seq","last_seq","cause"}; a kernel overflow
 * has count 0 and a seq of its own). Counts the churn's events per
 * operation and checks the stream: event seqs strictly increase and every
 * gap is covered by exactly one loss record with count = last - first + 1.
 */
static int
count_minispy(const char *path, pid_t churn, struct run *r)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	uint64_t next = 1;
	ssize_t n;

	if (!f)
		return -errno;
	r->seq_ok = true;
	while ((n = getline(&line, &cap, f)) > 0) {
		json_object *o = json_tokener_parse(line), *v;
		const char *op;
		int64_t seq = -1;

		r->lines++;
		if (!o) {
			r->seq_ok = false;
			r->other++;
			continue;
		}
		op = json_object_object_get_ex(o, "op", &v) ? json_object_get_string(v)
							    : "";
		if (json_object_object_get_ex(o, "seq", &v))
			seq = json_object_get_int64(v);
		if (!strcmp(op, "lost")) {
			int64_t cnt = 0, first = 0, last = 0;

			r->loss_records++;
			if (json_object_object_get_ex(o, "count", &v))
				cnt = json_object_get_int64(v);
			if (json_object_object_get_ex(o, "first_seq", &v))
				first = json_object_get_int64(v);
			if (json_object_object_get_ex(o, "last_seq", &v))
				last = json_object_get_int64(v);
			if (cnt == 0) { /* kernel: its own seq, count unknown */
				r->notices++;
				if (seq >= 0) {
					if ((uint64_t)seq != next)
						r->seq_ok = false;
					next = (uint64_t)seq + 1;
				}
			} else {
				if ((uint64_t)first != next || last - first + 1 != cnt)
					r->seq_ok = false;
				r->lost_counted += (uint64_t)cnt;
				next = (uint64_t)last + 1;
			}
		} else {
			int64_t pid = json_object_object_get_ex(o, "pid", &v)
					      ? json_object_get_int64(v)
					      : -1;
			int k;

			r->records++;
			if (seq < 0 || (uint64_t)seq != next)
				r->seq_ok = false;
			if (seq >= 0)
				next = (uint64_t)seq + 1;
			for (k = 0; k < N_OPS; k++)
				if (!strcmp(op, opname[k]))
					break;
			if (pid == churn && k < N_OPS)
				r->per_op[k]++;
			else
				r->other++;
		}
		json_object_put(o);
	}
	r->last_seq = next - 1;
	free(line);
	fclose(f);
	tally_missing(r);
	return 0;
}

/*
 * fatrace: "comm(pid): FLAGS path", one line per fanotify record, FLAGS
 * the record's merged mask: O open, W write (also printed with C for a
 * close after writing), C close, + create, D delete, < > moved from/to
 * (one rename). Any W counts as the write, capped at one per iteration.
 * A kernel queue overflow comes out as a line with pid 0 and no flags.
 */
static int
count_fatrace(const char *path, pid_t churn, struct run *r)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *p = strstr(line, "): "), *q;
		long pid;

		if (!p) {
			r->other++;
			continue;
		}
		q = p;
		while (q > line && q[-1] != '(')
			q--;
		pid = strtol(q, NULL, 10);
		p += 3;
		if (pid == 0) {
			r->notices++;
			continue;
		}
		if (pid != churn) {
			r->other++;
			continue;
		}
		r->records++;
		for (bool ren = false; *p && *p != ' '; p++) {
			switch (*p) {
			case '+':
				r->per_op[OP_CREATE]++;
				break;
			case 'O':
				r->per_op[OP_OPEN]++;
				break;
			case 'W':
				r->per_op[OP_WRITE]++;
				break;
			case 'C':
				r->per_op[OP_CLOSE_WRITE]++;
				break;
			case 'D':
				r->per_op[OP_DELETE]++;
				break;
			case '<':
			case '>':
				if (!ren)
					r->per_op[OP_RENAME]++;
				ren = true;
				break;
			default:
				r->other++;
			}
		}
	}
	free(line);
	fclose(f);
	/* 'W' is printed for a modify and for a close after writing ("CW"),
	 * so a file can show two; this workload writes each file once. */
	for (int k = 0; k < N_OPS; k++)
		if (r->per_op[k] > r->iters) {
			r->other += r->per_op[k] - r->iters;
			r->per_op[k] = r->iters;
		}
	tally_missing(r);
	return 0;
}

/*
 * inotifywait: "DIR/ EVENTS NAME", one line per inotify event, EVENTS
 * comma-separated (CLOSE_WRITE,CLOSE is one event). A rename is
 * MOVED_FROM + MOVED_TO: counted once, from MOVED_FROM. No pid: only
 * names with this run's prefix count. Q_OVERFLOW is a loss notice.
 */
static int
count_inotify(const char *path, const char *prefix, struct run *r)
{
	static const struct {
		const char *name;
		int op;
	} map[] = {
		{ "CREATE", OP_CREATE },     { "OPEN", OP_OPEN },
		{ "MODIFY", OP_WRITE },      { "CLOSE_WRITE", OP_CLOSE_WRITE },
		{ "MOVED_FROM", OP_RENAME }, { "DELETE", OP_DELETE },
		{ "MOVED_TO", -1 },          { "CLOSE", -1 },
	};
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *ev = strchr(line, ' '), *name, *save = NULL;

		line[strcspn(line, "\n")] = '\0';
		if (strstr(line, "Q_OVERFLOW")) {
			r->notices++;
			continue;
		}
		name = ev ? strchr(ev + 1, ' ') : NULL;
		if (!name || strncmp(name + 1, prefix, strlen(prefix)) != 0) {
			r->other++;
			continue;
		}
		*name = '\0';
		r->records++;
		for (char *w = strtok_r(ev + 1, ",", &save); w;
		     w = strtok_r(NULL, ",", &save)) {
			size_t k;

			for (k = 0; k < sizeof(map) / sizeof(map[0]); k++)
				if (!strcmp(w, map[k].name))
					break;
			if (k == sizeof(map) / sizeof(map[0]))
				r->other++;
			else if (map[k].op >= 0)
				r->per_op[map[k].op]++;
		}
	}
	free(line);
	fclose(f);
	tally_missing(r);
	return 0;
}

/* `fltmc stats --json`: the engine's, the filter's and the port's counters. */
static void
read_fltmc_stats(const char *path, struct run *r)
{
	json_object *o = json_object_from_file(path), *e, *a, *v;

	if (!o)
		return;
	if (json_object_object_get_ex(o, "engine", &e)) {
		if (json_object_object_get_ex(e, "overflows", &v))
			r->st_overflows = (uint64_t)json_object_get_int64(v);
		if (json_object_object_get_ex(e, "dropped", &v))
			r->st_dropped = (uint64_t)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(o, "filters", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *fo = json_object_array_get_idx(a, i);

			if (!json_object_object_get_ex(fo, "name", &v) ||
			    strcmp(json_object_get_string(v), "minispy"))
				continue;
			if (json_object_object_get_ex(fo, "seen", &v))
				r->st_seen = (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(fo, "delivered", &v))
				r->st_delivered = (uint64_t)json_object_get_int64(v);
			r->stats_ok = true;
		}
	if (json_object_object_get_ex(o, "ports", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *po = json_object_array_get_idx(a, i);

			if (json_object_object_get_ex(po, "name", &v) &&
			    !strcmp(json_object_get_string(v), "minispy") &&
			    json_object_object_get_ex(po, "messages_sent", &v))
				r->st_sent = (uint64_t)json_object_get_int64(v);
		}
	json_object_put(o);
}

/* `fltmc --json stats` into path; false if it did not run or failed. */
static bool
fltmc_stats_to(const struct bench *b, const char *path)
{
	char run_dir[PATH_MAX], *argv[] = {
		(char *)b->exe_fltmc, "--runtime-dir", NULL, "--json", "stats", NULL
	};
	pid_t p;

	snprintf(run_dir, sizeof(run_dir), "%s/run", b->out);
	argv[2] = run_dir;
	p = spawn(argv, "/", path, NULL, NULL, SIGKILL);
	return p > 0 && stop_child(p, 0) == 0;
}

/* A count of the lines of a growing file, read on from where it was. */
struct line_count {
	off_t off;
	uint64_t lines;
};

static void
count_lines_on(const char *path, struct line_count *lc)
{
	char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = pread(fd, buf, sizeof(buf), lc->off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			lc->lines += buf[i] == '\n';
		lc->off += n;
	}
	close(fd);
}

/*
 * Whether the minispy service has printed everything of a run whose
 * churn made `expected` events: it has printed as many lines as the port
 * sent messages (fltmc's messages_sent), the filter holds no record it
 * has not sent or dropped (one connection: records = sent + dropped +
 * queued unsent), and the filter has made a record of every expected
 * event, unless the kernel or the engine reported a loss (then fewer
 * ever come). Stats first, lines second: lines printed can only catch up.
 */
static bool
minispy_caught_up(const struct bench *b, const char *output, uint64_t expected,
		  struct line_count *lc)
{
	uint64_t messages_sent = 0, records = 0, sent = 0, dropped = 0, losses = 0;
	json_object *o, *a, *v, *c;
	char path[PATH_MAX];
	bool port_ok = false, filter_ok = false;

	snprintf(path, sizeof(path), "%s/progress.json", b->out);
	o = fltmc_stats_to(b, path) ? json_object_from_file(path) : NULL;
	unlink(path);
	if (!o)
		return false;
	if (json_object_object_get_ex(o, "ports", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *po = json_object_array_get_idx(a, i);

			if (json_object_object_get_ex(po, "name", &v) &&
			    !strcmp(json_object_get_string(v), "minispy") &&
			    json_object_object_get_ex(po, "messages_sent", &v)) {
				messages_sent = (uint64_t)json_object_get_int64(v);
				port_ok = true;
			}
		}
	if (json_object_object_get_ex(o, "filters", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *fo = json_object_array_get_idx(a, i);

			if (!json_object_object_get_ex(fo, "name", &v) ||
			    strcmp(json_object_get_string(v), "minispy") ||
			    !json_object_object_get_ex(fo, "counters", &c))
				continue;
			filter_ok = json_object_object_get_ex(c, "records", &v);
			records = (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(c, "sent", &v))
				sent = (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(c, "dropped", &v))
				dropped = (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(c, "kernel_overflows", &v))
				losses += (uint64_t)json_object_get_int64(v);
			if (json_object_object_get_ex(c, "engine_losses", &v))
				losses += (uint64_t)json_object_get_int64(v);
		}
	json_object_put(o);
	if (!port_ok || !filter_ok)
		return false;
	count_lines_on(output, lc);
	return lc->lines == messages_sent && sent + dropped >= records &&
	       (records >= expected || losses > 0);
}

/* ------------------------------------------------------------------ */
/* Listeners                                                            */

struct live {
	pid_t pid[2]; /* the processes whose CPU counts */
	char output[PATH_MAX];
	char log[2][PATH_MAX];
	char notify_path[108]; /* sun_path */
	int notify_fd;
};

/* Waits for cond(arg) up to READY_MS; false on timeout or if pid died. */
static bool
wait_until(bool (*cond)(const struct live *, int), const struct live *lv, int which)
{
	int64_t deadline = now_ns() + (int64_t)READY_MS * 1000000;

	while (now_ns() < deadline) {
		if (cond(lv, which))
			return true;
		for (int i = 0; i < 2; i++)
			if (lv->pid[i] > 0 && waitpid(lv->pid[i], NULL, WNOHANG) != 0)
				return false;
		sleep_ms(5);
	}
	return false;
}

static bool
cond_connected(const struct live *lv, int which)
{
	return file_contains(lv->log[which], "connected to");
}

static bool
cond_watches(const struct live *lv, int which)
{
	return file_contains(lv->log[which], "Watches established");
}

static bool
cond_output_exists(const struct live *lv, int which)
{
	(void)which;
	return access(lv->output, F_OK) == 0;
}

/* fltmgrd -f says READY=1 on $NOTIFY_SOCKET once it is filtering. */
static bool
wait_ready_notify(const struct live *lv)
{
	int64_t deadline = now_ns() + (int64_t)READY_MS * 1000000;
	char buf[512];

	while (now_ns() < deadline) {
		ssize_t n = recv(lv->notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, "READY=1"))
				return true;
			continue;
		}
		if (waitpid(lv->pid[0], NULL, WNOHANG) != 0)
			return false;
		sleep_ms(5);
	}
	return false;
}

static void
why_failed(struct run *r, const char *what, const char *log)
{
	char l[120];

	first_line(log, l, sizeof(l));
	snprintf(r->why, sizeof(r->why), "%.60s%s%.90s", what, l[0] ? ": " : "", l);
}

static int
start_minispy(const struct bench *b, struct live *lv, struct run *r, bool noproc)
{
	char run_dir[PATH_MAX], filters[PATH_MAX], env[PATH_MAX + 16];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(run_dir, sizeof(run_dir), "%s/run", b->out);
	snprintf(filters, sizeof(filters), "%s/filters", b->out);
	snprintf(lv->output, sizeof(lv->output), "%s/minispy.json", b->out);
	snprintf(lv->log[0], sizeof(lv->log[0]), "%s/fltmgrd.log", b->out);
	snprintf(lv->log[1], sizeof(lv->log[1]), "%s/minispy.log", b->out);
	if (snprintf(lv->notify_path, sizeof(lv->notify_path), "%s/notify", b->out) >=
	    (int)sizeof(lv->notify_path)) {
		snprintf(r->why, sizeof(r->why), "notify socket: path too long");
		return -1;
	}
	memcpy(sa.sun_path, lv->notify_path, sizeof(lv->notify_path));
	lv->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (lv->notify_fd < 0 || bind(lv->notify_fd, (void *)&sa, sizeof(sa)) < 0) {
		snprintf(r->why, sizeof(r->why), "notify socket: %s", strerror(errno));
		return -1;
	}
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", lv->notify_path);
	if (!noproc) {
		/* The built-in default, as scripts/demo runs it. */
		char *argv[] = { (char *)b->exe_fltmgrd,
				 "-f",
				 "--runtime-dir",
				 run_dir,
				 "--filter-dir",
				 filters,
				 "--attach",
				 (char *)b->watch,
				 NULL };

		lv->pid[0] = spawn(argv, "/", NULL, lv->log[0], env, SIGTERM);
	} else {
		/* The same, but pid only: no uid, exe, comm from /proc. */
		char conf[PATH_MAX];
		char *argv[] = { (char *)b->exe_fltmgrd,
				 "-f",
				 "--runtime-dir",
				 run_dir,
				 "--filter-dir",
				 filters,
				 "--config",
				 conf,
				 NULL };
		FILE *f;

		snprintf(conf, sizeof(conf), "%s/noproc.conf", b->out);
		f = fopen(conf, "we");
		if (!f) {
			snprintf(r->why, sizeof(r->why), "noproc.conf: %s",
				 strerror(errno));
			return -1;
		}
		fprintf(f,
			"[filter minispy]\naltitude = 385100\nattach = %s\n"
			"param.process = false\n",
			b->watch);
		if (fclose(f) != 0) {
			snprintf(r->why, sizeof(r->why), "writing noproc.conf failed");
			return -1;
		}
		lv->pid[0] = spawn(argv, "/", NULL, lv->log[0], env, SIGTERM);
	}
	if (lv->pid[0] < 0 || !wait_ready_notify(lv)) {
		why_failed(r, "fltmgrd did not start", lv->log[0]);
		return -1;
	}
	{
		char *argv[] = {
			(char *)b->exe_minispy, "--json", "--output",       lv->output,
			"--runtime-dir",        run_dir,  "--no-reconnect", NULL
		};

		lv->pid[1] = spawn(argv, "/", NULL, lv->log[1], NULL, SIGTERM);
	}
	if (lv->pid[1] < 0 || !wait_until(cond_connected, lv, 1)) {
		why_failed(r, "the minispy service did not connect", lv->log[1]);
		return -1;
	}
	return 0;
}

static int
start_fatrace(const struct bench *b, struct live *lv, struct run *r)
{
	char *argv[] = { (char *)b->exe_fatrace, "-c", "-o", lv->output, NULL };

	snprintf(lv->output, sizeof(lv->output), "%s/fatrace.txt", b->out);
	snprintf(lv->log[0], sizeof(lv->log[0]), "%s/fatrace.log", b->out);
	unlink(lv->output); /* fatrace opens it O_EXCL */
	/* -c: FAN_MARK_FILESYSTEM on the current directory's filesystem. */
	lv->pid[0] = spawn(argv, b->watch, NULL, lv->log[0], NULL, SIGINT);
	/* fatrace marks first, then creates its output file. */
	if (lv->pid[0] < 0 || !wait_until(cond_output_exists, lv, 0)) {
		why_failed(r, "fatrace did not start", lv->log[0]);
		return -1;
	}
	sleep_ms(20);
	return 0;
}

static int
start_inotify(const struct bench *b, struct live *lv, struct run *r)
{
	char *argv[] = { (char *)b->exe_inotify, "-m", "-r", "-o", lv->output,
			 (char *)b->watch,       NULL };

	snprintf(lv->output, sizeof(lv->output), "%s/inotify.txt", b->out);
	snprintf(lv->log[0], sizeof(lv->log[0]), "%s/inotify.log", b->out);
	lv->pid[0] = spawn(argv, "/", NULL, lv->log[0], NULL, SIGTERM);
	if (lv->pid[0] < 0 || !wait_until(cond_watches, lv, 0)) {
		why_failed(r, "inotifywait did not start", lv->log[0]);
		return -1;
	}
	return 0;
}

static void
stop_listener(const struct bench *b, enum listener l, struct live *lv)
{
	/* minispy: the service first (it flushes what it got), then fltmgrd. */
	if (l == L_MINISPY || l == L_NOPROC) {
		stop_child(lv->pid[1], SIGTERM);
		stop_child(lv->pid[0], SIGTERM);
	} else {
		stop_child(lv->pid[0], l == L_FATRACE ? SIGINT : SIGTERM);
	}
	if (lv->notify_fd >= 0)
		close(lv->notify_fd);
	if (lv->notify_path[0])
		unlink(lv->notify_path);
	(void)b;
}

/* ------------------------------------------------------------------ */
/* One run                                                              */

static int
run_one(const struct bench *b, unsigned rep, enum mode m, enum listener l, struct run *r)
{
	uint64_t iters =
		m == M_FLAT ? b->cfg.churn : b->cfg.rate * b->cfg.paced_ms / 1000;
	struct live lv = { .notify_fd = -1 };
	struct churn_result cr = { 0 };
	int go[2] = { -1, -1 }, res[2] = { -1, -1 };
	int64_t cpu0[2] = { 0, 0 }, cpu1[2] = { 0, 0 }, t_last = 0, t_end = 0;
	char prefix[32];
	pid_t churn = -1;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->iters = iters;
	r->expected = iters * EVENTS_PER_ITER;
	snprintf(prefix, sizeof(prefix), "r%um%d%c-", rep, (int)m, lletter[l]);
	if (!b->have[l]) {
		snprintf(r->why, sizeof(r->why), "not installed");
		return 0;
	}
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	churn = fork();
	if (churn < 0) {
		rc = -errno;
		goto out;
	}
	if (churn == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(go[1]);
		close(res[0]);
		churn_main(b, prefix, iters, m == M_PACED ? b->cfg.rate : 0, go[0],
			   res[1]);
	}
	close(go[0]);
	close(res[1]);
	go[0] = res[1] = -1;

	switch (l) {
	case L_MINISPY:
	case L_NOPROC:
		rc = start_minispy(b, &lv, r, l == L_NOPROC);
		break;
	case L_FATRACE:
		rc = start_fatrace(b, &lv, r);
		break;
	case L_INOTIFY:
		rc = start_inotify(b, &lv, r);
		break;
	default:
		break;
	}
	if (rc < 0) {
		rc = 0; /* reported in r->why, the run is skipped */
		goto stop;
	}
	for (int i = 0; i < 2; i++)
		cpu0[i] = cpu_ns(lv.pid[i]);
	if (write(go[1], "g", 1) != 1) {
		rc = -errno;
		goto stop;
	}
	/* The churn runs; watch the output grow. minispy's run ends once its
	 * service has printed all the port sent and the filter holds nothing
	 * more (minispy_caught_up(), twice in a row, asked once the output
	 * has been still for CHECK_MS: a busy machine can hold a service up
	 * for longer than any quiet time); the others' once the output has
	 * been still for quiet_ms after the churn finished (they have no
	 * count to compare with). */
	{
		int64_t t0 = now_ns(), quiet = (int64_t)b->cfg.quiet_ms * 1000000;
		int64_t check = (int64_t)CHECK_MS * 1000000, t_check = 0;
		bool minispy = l == L_MINISPY || l == L_NOPROC;
		struct line_count lc = { 0, 0 };
		off_t size = 0;
		bool done = false;
		int agreed = 0;

		t_last = t_end = t0;
		for (;;) {
			int64_t t;

			if (!done) {
				struct timeval tv = { 0, 0 };
				fd_set set;

				FD_ZERO(&set);
				FD_SET(res[0], &set);
				if (select(res[0] + 1, &set, NULL, NULL, &tv) > 0) {
					if (read_full(res[0], &cr, sizeof(cr)) < 0) {
						rc = -EPIPE;
						goto stop;
					}
					done = true;
					t_end = cr.end_ns;
					if (l == L_NONE)
						break;
				}
			}
			t = now_ns();
			if (l != L_NONE) {
				off_t s = file_size(lv.output);

				if (s != size) {
					size = s;
					t_last = t;
				}
			}
			if (minispy && done && t - t_last >= check &&
			    t - t_check >= check) {
				t_check = t;
				if (!minispy_caught_up(b, lv.output,
						       cr.iters * EVENTS_PER_ITER, &lc))
					agreed = 0;
				else if (++agreed == 2)
					break;
				t = now_ns();
			} else if (!minispy && done &&
				   t - (t_last > t_end ? t_last : t_end) >= quiet) {
				break;
			}
			if (t - t0 > (int64_t)DRAIN_MAX_MS * 1000000) {
				fprintf(stderr,
					"minispy_bench: %s still delivering after %d s; "
					"counting what is there\n",
					lname[l], DRAIN_MAX_MS / 1000);
				break;
			}
			sleep_ms(POLL_MS);
		}
	}
	for (int i = 0; i < 2; i++)
		cpu1[i] = cpu_ns(lv.pid[i]);
	if (cr.err) {
		fprintf(stderr, "minispy_bench: churn failed: %s\n", strerror(cr.err));
		rc = -cr.err;
		goto stop;
	}
	r->ran = true;
	r->gen_ops_s =
		(double)cr.iters * OPS_PER_ITER * 1e9 / (double)(cr.end_ns - cr.start_ns);
	r->gen_cpu_us = (double)cr.cpu_ns / 1e3 / (double)(cr.iters ? cr.iters : 1);
	if (l == L_MINISPY || l == L_NOPROC) {
		char st[PATH_MAX];

		snprintf(st, sizeof(st), "%s/stats.json", b->out);
		if (fltmc_stats_to(b, st))
			read_fltmc_stats(st, r);
		unlink(st);
	}
stop:
	if (l != L_NONE)
		stop_listener(b, l, &lv);
	if (churn > 0) {
		int status;

		if (!r->ran)
			kill(churn, SIGKILL);
		waitpid(churn, &status, 0);
	}
	if (r->ran && l != L_NONE) {
		int c = 0;

		r->cpu_ms = 0;
		for (int i = 0; i < 2; i++)
			if (lv.pid[i] > 0) {
				r->cpu_ms_proc[i] = (double)(cpu1[i] - cpu0[i]) / 1e6;
				r->cpu_ms += r->cpu_ms_proc[i];
			}
		if (l == L_MINISPY || l == L_NOPROC)
			c = count_minispy(lv.output, churn, r);
		else if (l == L_FATRACE)
			c = count_fatrace(lv.output, churn, r);
		else
			c = count_inotify(lv.output, prefix, r);
		if (c < 0) {
			snprintf(r->why, sizeof(r->why), "reading %.100s: %.40s",
				 lv.output, err_str(c));
			r->ran = false;
		}
		r->ev_s = t_last > cr.start_ns ? (double)r->delivered * 1e9 /
							 (double)(t_last - cr.start_ns)
					       : 0;
		r->cpu_us_ev =
			r->delivered ? r->cpu_ms * 1e3 / (double)r->delivered : NAN;
		r->lag_ms = (double)(t_last - cr.end_ns) / 1e6;
		/* What no loss record or overflow notice accounts for. A
		 * kernel overflow says "some", not how many: it covers all. */
		r->unreported = r->missing - (int64_t)r->lost_counted;
		if (r->notices > 0 || r->unreported < 0)
			r->unreported = 0;
	}
	if (lv.output[0] && b->cfg.keep) {
		char to[PATH_MAX];

		snprintf(to, sizeof(to), "%s/%s%s", b->cfg.keep, prefix,
			 strrchr(lv.output, '/') + 1);
		if (copy_file(lv.output, to, 0644) < 0)
			fprintf(stderr, "minispy_bench: --keep: cannot write %s\n", to);
	}
	if (lv.output[0])
		unlink(lv.output);
out:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (res[i] >= 0)
			close(res[i]);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Summary                                                              */

enum col { C_GEN, C_EVS, C_CPU, C_MISS, C_UNREP, C_LAG, N_COLS };

static double
col_value(const struct run *r, enum col c)
{
	if (!r->ran)
		return NAN;
	switch (c) {
	case C_GEN:
		return r->gen_ops_s;
	case C_EVS:
		return r->ev_s;
	case C_CPU:
		return r->cpu_us_ev;
	case C_MISS:
		return (double)r->missing;
	case C_UNREP:
		return (double)r->unreported;
	case C_LAG:
		return r->lag_ms;
	default:
		return NAN;
	}
}

/* Median, min and max of the non-NaN values; NaN if none. */
static void
stats3(const double *v, unsigned n, double *med, double *min, double *max)
{
	double *s = calloc(n ? n : 1, sizeof(double));
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (!isnan(v[i]))
			s[k++] = v[i];
	if (!k) {
		*med = *min = *max = NAN;
	} else {
		qsort(s, k, sizeof(double), cmp_double);
		*min = s[0];
		*max = s[k - 1];
		*med = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
	}
	free(s);
}

struct summary {
	double med[N_MODES][N_LISTENERS][N_COLS], min[N_MODES][N_LISTENERS][N_COLS],
		max[N_MODES][N_LISTENERS][N_COLS];
	/* minispy / fatrace within each rep: events/s, CPU per event */
	double rr_evs[N_MODES][3], rr_cpu[N_MODES][3]; /* median, min, max */
	bool have_ratio[N_MODES];
	bool pass_evs[N_MODES], pass_cpu[N_MODES];
	unsigned unrep_runs, minispy_runs, seq_bad, stats_bad, kernel_bad;
	bool pass_loss;
};

static void
summarize(const struct bench *b, const struct rep *reps, struct summary *s)
{
	unsigned n = b->cfg.reps;
	double *v = calloc(n, sizeof(double)), *w = calloc(n, sizeof(double));

	memset(s, 0, sizeof(*s));
	for (int m = 0; m < N_MODES; m++) {
		for (int l = 0; l < N_LISTENERS; l++)
			for (int c = 0; c < N_COLS; c++) {
				for (unsigned i = 0; i < n; i++)
					v[i] = col_value(&reps[i].r[m][l], (enum col)c);
				stats3(v, n, &s->med[m][l][c], &s->min[m][l][c],
				       &s->max[m][l][c]);
			}
		for (unsigned i = 0; i < n; i++) {
			const struct run *a = &reps[i].r[m][L_MINISPY],
					 *f = &reps[i].r[m][L_FATRACE];
			bool ok = a->ran && f->ran && f->ev_s > 0 && f->cpu_us_ev > 0;

			v[i] = ok ? a->ev_s / f->ev_s : NAN;
			w[i] = ok ? a->cpu_us_ev / f->cpu_us_ev : NAN;
		}
		stats3(v, n, &s->rr_evs[m][0], &s->rr_evs[m][1], &s->rr_evs[m][2]);
		stats3(w, n, &s->rr_cpu[m][0], &s->rr_cpu[m][1], &s->rr_cpu[m][2]);
		s->have_ratio[m] = !isnan(s->rr_evs[m][0]);
		s->pass_evs[m] = s->have_ratio[m] && s->rr_evs[m][0] >= 1.0;
		s->pass_cpu[m] = s->have_ratio[m] && s->rr_cpu[m][0] < 1.0;
		for (unsigned i = 0; i < 2 * n; i++) {
			const struct run *a =
				&reps[i / 2].r[m][i % 2 ? L_NOPROC : L_MINISPY];

			if (!a->ran)
				continue;
			s->minispy_runs++;
			s->unrep_runs += a->unreported > 0;
			s->seq_bad += !a->seq_ok;
			/* every kernel overflow fltmgr saw should reach the
			 * service as a "kernel" loss record */
			s->kernel_bad += a->notices != a->st_overflows;
			s->stats_bad += !a->stats_ok || a->lines != a->st_sent ||
					a->last_seq != a->st_delivered;
		}
	}
	s->pass_loss = s->minispy_runs > 0 && s->unrep_runs == 0;
	free(v);
	free(w);
}

static const char *
verdict(bool pass)
{
	return pass ? "PASS" : "MISS";
}

static void
print_run_row(unsigned rep, const char *order, enum listener l, const struct run *r)
{
	char lead[24];

	if (l == 0)
		snprintf(lead, sizeof(lead), "%-3u %-6s", rep + 1, order);
	else
		snprintf(lead, sizeof(lead), "%10s", "");
	if (!r->ran) {
		printf("%s %-14s  -- %s\n", lead, lname[l], r->why);
		return;
	}
	if (l == L_NONE) {
		printf("%s %-14s %9.0f\n", lead, lname[l], r->gen_ops_s);
		return;
	}
	printf("%s %-14s %9.0f %9.0f %8.2f %8.1f %8llu %8lld %7lld %5llu %7.0f\n", lead,
	       lname[l], r->gen_ops_s, r->ev_s, r->cpu_us_ev, r->cpu_ms,
	       (unsigned long long)r->delivered, (long long)r->missing,
	       (long long)r->unreported, (unsigned long long)r->notices, r->lag_ms);
}

static void
print_header(const struct bench *b)
{
	printf("minispy_bench: %u reps; flat out %llu iterations; paced %llu "
	       "iterations/s for %llu ms (%llu iterations); %llu dirs; %d events "
	       "per iteration\n",
	       b->cfg.reps, b->cfg.churn, b->cfg.rate, b->cfg.paced_ms,
	       b->cfg.rate * b->cfg.paced_ms / 1000, b->cfg.dirs, EVENTS_PER_ITER);
	printf("  fltmgrd   %s\n  minispy   %s\n", b->exe_fltmgrd, b->exe_minispy);
	for (int l = L_FATRACE; l <= L_INOTIFY; l++)
		printf("  %-9.9s %s\n", lname[l],
		       b->have[l] ? (l == L_FATRACE ? b->exe_fatrace : b->exe_inotify)
				  : "not installed: skipped");
	printf("  order rotates per rep: (a) none, (b) minispy, (c) fatrace, "
	       "(d) inotifywait\n");
	fflush(stdout);
}

static void
print_mode_header(const struct bench *b, enum mode m)
{
	uint64_t it = m == M_FLAT ? b->cfg.churn : b->cfg.rate * b->cfg.paced_ms / 1000;

	printf("\n%s: %llu iterations, %llu events expected per listener\n", mname[m],
	       (unsigned long long)it, (unsigned long long)(it * EVENTS_PER_ITER));
	printf("rep order  listener       gen op/s  events/s  cpu/ev   cpu ms delivered "
	       " missing unrep. notes  lag ms\n");
}

static void
print_summary(const struct bench *b, const struct rep *reps, const struct summary *s)
{
	static const char *const cname[N_COLS] = { "gen ops/s",    "events/s",
						   "cpu us/event", "missing",
						   "unreported",   "lag ms" };
	static const int prec[N_COLS] = { 0, 0, 2, 0, 0, 0 };

	for (int m = 0; m < N_MODES; m++) {
		if (m == M_PACED && !b->cfg.rate)
			continue;
		printf("\nsummary, %s: median [min - max] over %u reps\n", mname[m],
		       b->cfg.reps);
		printf("%-14s", "");
		for (int c = 0; c < N_COLS; c++)
			printf(" %24s", cname[c]);
		printf("\n");
		for (int l = 0; l < N_LISTENERS; l++) {
			if (l == L_NOPROC && !b->cfg.noproc)
				continue;
			printf("%-14s", lname[l]);
			for (int c = 0; c < N_COLS; c++) {
				char a[16], lo[16], hi[16], cell[64];

				if (isnan(s->med[m][l][c]) ||
				    (l == L_NONE && c != C_GEN)) {
					printf(" %24s", "-");
					continue;
				}
				snprintf(a, sizeof(a), "%.*f", prec[c], s->med[m][l][c]);
				snprintf(lo, sizeof(lo), "%.*f", prec[c],
					 s->min[m][l][c]);
				snprintf(hi, sizeof(hi), "%.*f", prec[c],
					 s->max[m][l][c]);
				snprintf(cell, sizeof(cell), "%s [%s-%s]", a, lo, hi);
				printf(" %24s", cell);
			}
			printf("\n");
		}
		if (!s->have_ratio[m]) {
			printf("ratios minispy/fatrace: n/a (fatrace or minispy did not "
			       "run)\n");
			continue;
		}
		printf("minispy / fatrace, per rep, median [min - max]:\n");
		if (m == M_FLAT)
			printf("  events/s      %.2f [%.2f - %.2f]   goal >= 1.00   %s\n",
			       s->rr_evs[m][0], s->rr_evs[m][1], s->rr_evs[m][2],
			       verdict(s->pass_evs[m]));
		else /* both deliver at the churn's rate if they keep up */
			printf("  events/s      %.2f [%.2f - %.2f]   (no goal: paced; "
			       "see "
			       "missing and lag)\n",
			       s->rr_evs[m][0], s->rr_evs[m][1], s->rr_evs[m][2]);
		printf("  cpu per event %.2f [%.2f - %.2f]   goal <  1.00   %s\n",
		       s->rr_cpu[m][0], s->rr_cpu[m][1], s->rr_cpu[m][2],
		       verdict(s->pass_cpu[m]));
	}
	printf("\nminispy: unreported loss in %u of %u runs   goal 0   %s\n",
	       s->unrep_runs, s->minispy_runs, verdict(s->pass_loss));
	printf("minispy checks: seq/loss ranges cover every record in %u of %u runs; "
	       "lines = fltmc messages_sent and last seq = filter delivered in %u "
	       "of %u runs; kernel loss records = fltmc engine overflows in %u of "
	       "%u runs\n",
	       s->minispy_runs - s->seq_bad, s->minispy_runs,
	       s->minispy_runs - s->stats_bad, s->minispy_runs,
	       s->minispy_runs - s->kernel_bad, s->minispy_runs);
	for (int v = 0; v < 2 * N_MODES; v++) {
		int m = v / 2;
		enum listener l = v % 2 ? L_NOPROC : L_MINISPY;
		double ov = 0, dr = 0, lc = 0, lr = 0, cd = 0, cs = 0, ev = 0;
		unsigned k = 0;

		for (unsigned i = 0; i < b->cfg.reps; i++) {
			const struct run *a = &reps[i].r[m][l];

			if (!a->ran)
				continue;
			k++;
			ov += (double)a->st_overflows;
			dr += (double)a->st_dropped;
			lc += (double)a->lost_counted;
			lr += (double)a->loss_records;
			cd += a->cpu_ms_proc[0];
			cs += a->cpu_ms_proc[1];
			ev += (double)a->delivered;
		}
		if (k)
			printf("%s %s, mean per run: %.0f loss records covering "
			       "%.0f "
			       "records, %.1f kernel overflows, engine dropped %.0f "
			       "(unresolvable records)\n",
			       lname[l], mname[m], lr / k, lc / k, ov / k, dr / k);
		if (k && ev > 0)
			printf("%s %s, CPU per delivered event: fltmgrd %.2f us, "
			       "service %.2f us\n",
			       lname[l], mname[m], cd * 1e3 / ev, cs * 1e3 / ev);
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

static json_object *
jnum(double v)
{
	return isnan(v) || isinf(v) ? NULL : json_object_new_double(v);
}

static json_object *
run_json(const struct run *r)
{
	json_object *o = json_object_new_object(), *ops = json_object_new_object();

	json_object_object_add(o, "ran", json_object_new_boolean(r->ran));
	if (!r->ran) {
		json_object_object_add(o, "why", json_object_new_string(r->why));
		json_object_put(ops);
		return o;
	}
	json_object_object_add(o, "iterations", json_object_new_int64((int64_t)r->iters));
	json_object_object_add(o, "expected",
			       json_object_new_int64((int64_t)r->expected));
	json_object_object_add(o, "gen_ops_per_s", jnum(r->gen_ops_s));
	json_object_object_add(o, "gen_cpu_us_per_iteration", jnum(r->gen_cpu_us));
	json_object_object_add(o, "events_per_s", jnum(r->ev_s));
	json_object_object_add(o, "cpu_us_per_event", jnum(r->cpu_us_ev));
	json_object_object_add(o, "cpu_ms", jnum(r->cpu_ms));
	json_object_object_add(o, "lag_ms", jnum(r->lag_ms));
	json_object_object_add(o, "delivered",
			       json_object_new_int64((int64_t)r->delivered));
	json_object_object_add(o, "missing", json_object_new_int64(r->missing));
	json_object_object_add(o, "lost_counted",
			       json_object_new_int64((int64_t)r->lost_counted));
	json_object_object_add(o, "overflow_notices",
			       json_object_new_int64((int64_t)r->notices));
	json_object_object_add(o, "unreported", json_object_new_int64(r->unreported));
	json_object_object_add(o, "records", json_object_new_int64((int64_t)r->records));
	json_object_object_add(o, "other", json_object_new_int64((int64_t)r->other));
	for (int k = 0; k < N_OPS; k++)
		json_object_object_add(ops, opname[k],
				       json_object_new_int64((int64_t)r->per_op[k]));
	json_object_object_add(o, "per_op", ops);
	if (r->seq_ok || r->lines) {
		json_object *c = json_object_new_object();

		json_object_object_add(c, "cpu_ms_fltmgrd", jnum(r->cpu_ms_proc[0]));
		json_object_object_add(c, "cpu_ms_service", jnum(r->cpu_ms_proc[1]));
		json_object_object_add(c, "seq_ok", json_object_new_boolean(r->seq_ok));
		json_object_object_add(c, "lines",
				       json_object_new_int64((int64_t)r->lines));
		json_object_object_add(c, "last_seq",
				       json_object_new_int64((int64_t)r->last_seq));
		json_object_object_add(c, "loss_records",
				       json_object_new_int64((int64_t)r->loss_records));
		json_object_object_add(c, "fltmc_ok",
				       json_object_new_boolean(r->stats_ok));
		json_object_object_add(c, "fltmc_messages_sent",
				       json_object_new_int64((int64_t)r->st_sent));
		json_object_object_add(c, "fltmc_filter_delivered",
				       json_object_new_int64((int64_t)r->st_delivered));
		json_object_object_add(c, "fltmc_filter_seen",
				       json_object_new_int64((int64_t)r->st_seen));
		json_object_object_add(c, "fltmc_engine_overflows",
				       json_object_new_int64((int64_t)r->st_overflows));
		json_object_object_add(c, "fltmc_engine_dropped",
				       json_object_new_int64((int64_t)r->st_dropped));
		json_object_object_add(o, "minispy", c);
	}
	return o;
}

static const char *const cjson[N_COLS] = { "gen_ops_per_s",    "events_per_s",
					   "cpu_us_per_event", "missing",
					   "unreported",       "lag_ms" };

static int
write_json(const struct bench *b, const struct rep *reps, const struct summary *s)
{
	json_object *root = json_object_new_object(), *cfg = json_object_new_object();
	json_object *modes = json_object_new_object();
	int r;

	json_object_object_add(cfg, "reps", json_object_new_int((int)b->cfg.reps));
	json_object_object_add(cfg, "churn",
			       json_object_new_int64((int64_t)b->cfg.churn));
	json_object_object_add(cfg, "rate", json_object_new_int64((int64_t)b->cfg.rate));
	json_object_object_add(cfg, "paced_ms",
			       json_object_new_int64((int64_t)b->cfg.paced_ms));
	json_object_object_add(cfg, "dirs", json_object_new_int64((int64_t)b->cfg.dirs));
	json_object_object_add(cfg, "quiet_ms",
			       json_object_new_int64((int64_t)b->cfg.quiet_ms));
	json_object_object_add(cfg, "events_per_iteration",
			       json_object_new_int(EVENTS_PER_ITER));
	json_object_object_add(root, "config", cfg);
	for (int m = 0; m < N_MODES; m++) {
		json_object *mo = json_object_new_object(),
			    *ls = json_object_new_object();
		json_object *ratio = json_object_new_object();

		for (int l = 0; l < N_LISTENERS; l++) {
			json_object *lo = json_object_new_object();
			json_object *md = json_object_new_object(),
				    *mn = json_object_new_object(),
				    *mx = json_object_new_object(),
				    *pr = json_object_new_array();

			for (int c = 0; c < N_COLS; c++) {
				json_object_object_add(md, cjson[c],
						       jnum(s->med[m][l][c]));
				json_object_object_add(mn, cjson[c],
						       jnum(s->min[m][l][c]));
				json_object_object_add(mx, cjson[c],
						       jnum(s->max[m][l][c]));
			}
			for (unsigned i = 0; i < b->cfg.reps; i++)
				json_object_array_add(pr, run_json(&reps[i].r[m][l]));
			json_object_object_add(lo, "median", md);
			json_object_object_add(lo, "min", mn);
			json_object_object_add(lo, "max", mx);
			json_object_object_add(lo, "per_rep", pr);
			json_object_object_add(ls, lname[l], lo);
		}
		json_object_object_add(mo, "listeners", ls);
		{
			json_object *e = json_object_new_object(),
				    *c = json_object_new_object();

			json_object_object_add(e, "median", jnum(s->rr_evs[m][0]));
			json_object_object_add(e, "min", jnum(s->rr_evs[m][1]));
			json_object_object_add(e, "max", jnum(s->rr_evs[m][2]));
			json_object_object_add(e, "goal_min",
					       json_object_new_double(1.0));
			json_object_object_add(e, "pass",
					       json_object_new_boolean(s->pass_evs[m]));
			json_object_object_add(c, "median", jnum(s->rr_cpu[m][0]));
			json_object_object_add(c, "min", jnum(s->rr_cpu[m][1]));
			json_object_object_add(c, "max", jnum(s->rr_cpu[m][2]));
			json_object_object_add(c, "goal_below",
					       json_object_new_double(1.0));
			json_object_object_add(c, "pass",
					       json_object_new_boolean(s->pass_cpu[m]));
			json_object_object_add(ratio, "events_per_s", e);
			json_object_object_add(ratio, "cpu_per_event", c);
		}
		json_object_object_add(mo, "minispy_over_fatrace_per_rep", ratio);
		json_object_object_add(modes, mname[m], mo);
	}
	json_object_object_add(root, "modes", modes);
	{
		json_object *o = json_object_new_array();

		for (unsigned i = 0; i < b->cfg.reps; i++)
			json_object_array_add(o, json_object_new_string(reps[i].order));
		json_object_object_add(root, "order", o);
	}
	json_object_object_add(root, "minispy_runs",
			       json_object_new_int((int)s->minispy_runs));
	json_object_object_add(root, "minispy_unreported_loss_runs",
			       json_object_new_int((int)s->unrep_runs));
	json_object_object_add(root, "minispy_seq_check_failures",
			       json_object_new_int((int)s->seq_bad));
	json_object_object_add(root, "minispy_fltmc_check_failures",
			       json_object_new_int((int)s->stats_bad));
	json_object_object_add(root, "minispy_kernel_notice_mismatches",
			       json_object_new_int((int)s->kernel_bad));
	json_object_object_add(root, "pass_no_unreported_loss",
			       json_object_new_boolean(s->pass_loss));
	r = json_object_to_file_ext(b->cfg.json, root,
				    JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE);
	json_object_put(root);
	return r < 0 ? -EIO : 0;
}

/* ------------------------------------------------------------------ */
/* Setup and main                                                       */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: minispy_bench [--reps R] [--churn M] [--rate N] [--paced-ms T]\n"
		"                     [--dirs D] [--quiet-ms Q] [--json FILE] [--build "
		"DIR]\n"
		"                     [--keep DIR] [--noproc]\n"
		"  --reps R       repetitions; medians are over these (%d)\n"
		"  --churn M      flat-out iterations per listener and rep (%d)\n"
		"  --rate N       paced run: iterations per second (%d; 0: no paced "
		"run)\n"
		"  --paced-ms T   paced run length in ms (%d)\n"
		"  --dirs D       subdirectories the churn spreads over (%d)\n"
		"  --quiet-ms Q   fatrace, inotifywait: a run ends once the output has\n"
		"                 been still this long (%d); minispy's once all its\n"
		"                 port sent is printed\n"
		"  --json FILE    also write medians, ratios, verdicts, per-rep values\n"
		"  --build DIR    the build tree with fltmgrd, fltmc, minispy "
		"(default: ..\n"
		"                 of this program's directory)\n"
		"  --keep DIR     copy each run's output file into DIR (to look at)\n"
		"  --noproc       also (e): minispy with param.process = false (pid\n"
		"                 only; shows what the uid/exe/comm lookup costs)\n"
		"Each iteration: create+write+close+rename+unlink = 6 events.\n"
		"Runs as root, in a private mount namespace on its own tmpfs.\n",
		DEFAULT_REPS, DEFAULT_CHURN, DEFAULT_RATE, DEFAULT_PACED_MS, DEFAULT_DIRS,
		DEFAULT_QUIET_MS);
}

static int
parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option longopts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "churn", required_argument, NULL, 'c' },
		{ "rate", required_argument, NULL, 'R' },
		{ "paced-ms", required_argument, NULL, 'p' },
		{ "dirs", required_argument, NULL, 'd' },
		{ "quiet-ms", required_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "build", required_argument, NULL, 'b' },
		{ "keep", required_argument, NULL, 'k' },
		{ "noproc", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long long v;
	int c;

	*cfg = (struct config){ .reps = DEFAULT_REPS,
				.churn = DEFAULT_CHURN,
				.rate = DEFAULT_RATE,
				.paced_ms = DEFAULT_PACED_MS,
				.dirs = DEFAULT_DIRS,
				.quiet_ms = DEFAULT_QUIET_MS };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_count("reps", optarg, MAX_REPS, &v) < 0)
				return -EINVAL;
			cfg->reps = (unsigned)v;
			break;
		case 'c':
			if (parse_count("churn", optarg, MAX_COUNT, &cfg->churn) < 0)
				return -EINVAL;
			break;
		case 'R':
			if (!strcmp(optarg, "0"))
				cfg->rate = 0;
			else if (parse_count("rate", optarg, MAX_COUNT, &cfg->rate) < 0)
				return -EINVAL;
			break;
		case 'p':
			if (parse_count("paced-ms", optarg, 600000, &cfg->paced_ms) < 0)
				return -EINVAL;
			break;
		case 'd':
			if (parse_count("dirs", optarg, 1000, &cfg->dirs) < 0)
				return -EINVAL;
			break;
		case 'q':
			if (parse_count("quiet-ms", optarg, 60000, &cfg->quiet_ms) < 0)
				return -EINVAL;
			break;
		case 'j':
			cfg->json = optarg;
			break;
		case 'b':
			cfg->build = optarg;
			break;
		case 'k':
			cfg->keep = optarg;
			break;
		case 'n':
			cfg->noproc = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "minispy_bench: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	if (cfg->rate && cfg->rate * cfg->paced_ms / 1000 == 0) {
		fprintf(stderr,
			"minispy_bench: --rate x --paced-ms makes no iteration\n");
		return -EINVAL;
	}
	return 0;
}

/* Finds the programs; false if a fltmgr one is missing. */
static bool
find_programs(struct bench *b)
{
	char self[PATH_MAX], build[PATH_MAX - 64];
	ssize_t n;

	if (b->cfg.build) {
		snprintf(build, sizeof(build), "%s", b->cfg.build);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return false;
		self[n] = '\0';
		snprintf(build, sizeof(build), "%s", dirname(dirname(self)));
	}
	snprintf(b->exe_fltmgrd, sizeof(b->exe_fltmgrd), "%s/src/daemon/fltmgrd", build);
	snprintf(b->exe_fltmc, sizeof(b->exe_fltmc), "%s/src/ctl/fltmc", build);
	snprintf(b->exe_minispy, sizeof(b->exe_minispy),
		 "%s/filters/minispy/service/minispy", build);
	snprintf(b->obj_minispy, sizeof(b->obj_minispy), "%s/filters/minispy.so", build);
	for (const char *p = b->exe_fltmgrd; p; p = p == b->exe_fltmgrd   ? b->exe_fltmc
						    : p == b->exe_fltmc   ? b->exe_minispy
						    : p == b->exe_minispy ? b->obj_minispy
									  : NULL)
		if (access(p, R_OK) < 0) {
			fprintf(stderr,
				"minispy_bench: %s is missing (build fltmgr, or pass "
				"--build DIR)\n",
				p);
			return false;
		}
	b->have[L_NONE] = b->have[L_MINISPY] = true;
	b->have[L_NOPROC] = b->cfg.noproc;
	b->have[L_FATRACE] =
		find_program("fatrace", b->exe_fatrace, sizeof(b->exe_fatrace));
	b->have[L_INOTIFY] =
		find_program("inotifywait", b->exe_inotify, sizeof(b->exe_inotify));
	for (int l = L_FATRACE; l <= L_INOTIFY; l++)
		if (!b->have[l])
			fprintf(stderr,
				"minispy_bench: %s not found (Debian package %s): its "
				"runs are skipped\n",
				lname[l], l == L_FATRACE ? "fatrace" : "inotify-tools");
	return true;
}

/*
 * Private mount namespace; BASE/watch and BASE/out, each a tmpfs. Only
 * watch is watched; out gets the outputs, fltmgrd's runtime directory and
 * a root-owned copy of minispy.so (the loader wants that).
 */
static int
fs_setup(struct bench *b)
{
	char p[PATH_MAX + 32];
	int r;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		r = -errno;
		fprintf(stderr, "minispy_bench: private mount namespace: %s\n",
			err_str(r));
		return r;
	}
	snprintf(b->base, sizeof(b->base), "/tmp/fltmgr-minispy-bench.XXXXXX");
	if (!mkdtemp(b->base)) {
		r = -errno;
		b->base[0] = '\0';
		fprintf(stderr, "minispy_bench: mkdtemp: %s\n", err_str(r));
		return r;
	}
	chmod(b->base, 0755);
	snprintf(b->watch, sizeof(b->watch), "%s/watch", b->base);
	snprintf(b->out, sizeof(b->out), "%s/out", b->base);
	if (mkdir(b->watch, 0755) < 0 || mkdir(b->out, 0755) < 0)
		goto fail;
	if (mount("minispy-bench-watch", b->watch, "tmpfs", 0, "mode=0755,size=64m") < 0)
		goto fail;
	b->watch_mounted = true;
	if (mount("minispy-bench-out", b->out, "tmpfs", 0, "mode=0755,size=512m") < 0)
		goto fail;
	b->out_mounted = true;
	for (unsigned long long d = 0; d < b->cfg.dirs; d++) {
		snprintf(p, sizeof(p), "%s/d%llu", b->watch, d);
		if (mkdir(p, 0755) < 0)
			goto fail;
	}
	snprintf(p, sizeof(p), "%s/run", b->out);
	if (mkdir(p, 0755) < 0)
		goto fail;
	snprintf(p, sizeof(p), "%s/filters", b->out);
	if (mkdir(p, 0755) < 0)
		goto fail;
	snprintf(p, sizeof(p), "%s/filters/minispy.so", b->out);
	r = copy_file(b->obj_minispy, p, 0644);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	return 0;
fail:
	r = -errno;
	fprintf(stderr, "minispy_bench: setting up %s: %s\n", b->base, err_str(r));
	return r;
}

static void
fs_teardown(struct bench *b)
{
	if (b->out_mounted && umount2(b->out, MNT_DETACH) < 0)
		fprintf(stderr, "minispy_bench: umount %s: %s\n", b->out,
			strerror(errno));
	if (b->watch_mounted && umount2(b->watch, MNT_DETACH) < 0)
		fprintf(stderr, "minispy_bench: umount %s: %s\n", b->watch,
			strerror(errno));
	if (b->base[0]) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/watch", b->base);
		rmdir(p);
		snprintf(p, sizeof(p), "%s/out", b->base);
		rmdir(p);
		if (rmdir(b->base) < 0)
			fprintf(stderr, "minispy_bench: rmdir %s: %s\n", b->base,
				strerror(errno));
	}
}

int
main(int argc, char **argv)
{
	struct bench b = { 0 };
	struct rep *reps;
	struct summary s;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_args(argc, argv, &b.cfg) < 0)
		return 2;
	if (geteuid() != 0) {
		fprintf(stderr, "minispy_bench: must run as root (fltmgrd, fatrace and "
				"the private mount namespace need CAP_SYS_ADMIN)\n");
		return 1;
	}
	if (!find_programs(&b))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	reps = calloc(b.cfg.reps, sizeof(*reps));
	if (!reps)
		return 1;
	r = fs_setup(&b);
	if (r < 0) {
		fs_teardown(&b);
		return 1;
	}
	print_header(&b);
	for (int m = 0; m < N_MODES && r == 0; m++) {
		if (m == M_PACED && !b.cfg.rate)
			continue;
		print_mode_header(&b, (enum mode)m);
		for (unsigned i = 0; i < b.cfg.reps && r == 0; i++) {
			struct rep *rp = &reps[i];
			enum listener on[N_LISTENERS], seq[N_LISTENERS];
			unsigned n_on = 0;

			/* Rotate over the listeners this run has (noproc is
			 * optional; a missing peer still gets its turn and says
			 * why it did not run). */
			for (int l = 0; l < N_LISTENERS; l++)
				if (l != L_NOPROC || b.cfg.noproc)
					on[n_on++] = (enum listener)l;
			for (unsigned k = 0; k < n_on; k++) {
				seq[k] = on[(i + k) % n_on];
				rp->order[k] = lletter[seq[k]];
			}
			rp->order[n_on] = '\0';
			for (unsigned k = 0; k < n_on && r == 0; k++)
				r = run_one(&b, i, (enum mode)m, seq[k],
					    &rp->r[m][seq[k]]);
			for (unsigned k = 0; k < n_on && r == 0; k++)
				print_run_row(i, rp->order, on[k], &rp->r[m][on[k]]);
		}
	}
	if (r == 0) {
		summarize(&b, reps, &s);
		print_summary(&b, reps, &s);
		if (b.cfg.json) {
			int w = write_json(&b, reps, &s);

			if (w < 0) {
				fprintf(stderr, "minispy_bench: writing %s: %s\n",
					b.cfg.json, err_str(w));
				r = w;
			}
		}
	} else {
		fprintf(stderr, "minispy_bench: failed: %s\n", err_str(r));
	}
	fs_teardown(&b);
	free(reps);
	return r == 0 ? 0 : 1;
}
