/* SPDX-License-Identifier: MIT */
/*
 * scanner_bench.c — what the scanner costs an opener (root only).
 *
 * Runs the real fltmgrd with scanner.so and the real scanner service (a
 * one-rule YARA set), and next to them the cheapest honest raw design:
 * a fanotify FAN_OPEN_PERM listener process that forwards each event's
 * fd over SOCK_SEQPACKET (SCM_RIGHTS) to a second process, which replies
 * allow; the listener then answers the kernel. Everything runs in a
 * private mount namespace on a tmpfs this program mounts, and only that
 * tmpfs is watched. This process is the opener; the listeners are other
 * processes.
 *
 * Each repetition measures, in an order that rotates from one repetition
 * to the next:
 *   none    open+close of one file, no listener
 *   cached  the same with fltmgrd + scanner + service, the file already
 *           scanned (the kernel cache answers: goal <= 1.3x none)
 *   first   open+close of N distinct, never-opened files, each scanned by
 *           the service (goal <= 1.15x raw)
 *   raw     the same on fresh files with the raw forwarding listener
 * and prints medians over the repetitions, min-max, and the two ratios
 * computed within the run; --json FILE also writes them, with the
 * per-repetition values, for bench/run's report.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

#define MAX_REPS 100

enum cfg { CFG_NONE, CFG_CACHED, CFG_FIRST, CFG_RAW, CFG_COUNT };
static const char *const cfg_name[CFG_COUNT] = { "none", "cached", "first", "raw" };

struct bench {
	const char *fltmgrd, *scanner, *scanner_so;
	const char *json; /* --json FILE, or NULL */
	unsigned reps;
	unsigned long long opens; /* none, cached */
	unsigned long long files; /* first, raw */
	char root[64];            /* the tmpfs */
	char watch[128], rundir[128], fdir[128], conf[160], rules[160], log[160];
	unsigned set; /* file sets made so far */
};

static double results[MAX_REPS][CFG_COUNT]; /* ns per open */

/* ---- processes ---- */

static pid_t
spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (fd < 0 || null < 0)
			_exit(127);
		dup2(null, 0);
		dup2(null, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void
stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static bool
wait_file(const char *path, int ms)
{
	int64_t end = now_ns() + (int64_t)ms * 1000000;

	while (now_ns() < end) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(2000);
	}
	return false;
}

/* Waits for needle to appear in the file (the service's "connected"). */
static bool
wait_text(const char *path, const char *needle, int ms)
{
	int64_t end = now_ns() + (int64_t)ms * 1000000;
	char buf[8192];

	while (now_ns() < end) {
		FILE *f = fopen(path, "re");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, needle))
			return true;
		usleep(2000);
	}
	return false;
}

/* ---- files ---- */

static int
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

/* A fresh directory of n small files, made before any listener runs. */
static int
make_set(struct bench *b, unsigned long long n, char *dir, size_t size)
{
	char path[PATH_MAX + 32];

	snprintf(dir, size, "%s/set%u", b->watch, b->set++);
	if (mkdir(dir, 0755) < 0)
		return -errno;
	for (unsigned long long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%llu", dir, i);
		if (write_file(path, "an ordinary small file, nothing to see here\n") < 0)
			return -EIO;
	}
	return 0;
}

static double
time_opens_one(const char *path, unsigned long long n)
{
	int64_t t0;

	for (int i = 0; i < 200; i++) /* warm up (and get it cached) */
		close(open(path, O_RDONLY | O_CLOEXEC));
	t0 = now_ns();
	for (unsigned long long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return -1;
		close(fd);
	}
	return (double)(now_ns() - t0) / (double)n;
}

static double
time_opens_set(const char *dir, unsigned long long n)
{
	char path[PATH_MAX + 32];
	int64_t total = 0;

	for (unsigned long long i = 0; i < n; i++) {
		int64_t t0;
		int fd;

		snprintf(path, sizeof(path), "%s/%llu", dir, i);
		t0 = now_ns();
		fd = open(path, O_RDONLY | O_CLOEXEC);
		total += now_ns() - t0;
		if (fd < 0)
			return -1;
		close(fd);
	}
	return (double)total / (double)n;
}

/* ---- fltmgrd + scanner ---- */

struct scan_procs {
	pid_t daemon, service;
};

static int
scanner_start(struct bench *b, struct scan_procs *p)
{
	char port[300];
	char *dargv[] = { (char *)b->fltmgrd,
			  "--foreground",
			  "--runtime-dir",
			  b->rundir,
			  "--config",
			  b->conf,
			  NULL };
	char *sargv[] = { (char *)b->scanner, "--rules", b->rules,
			  "--runtime-dir",    b->rundir, NULL };

	snprintf(port, sizeof(port), "%s/control", b->rundir);
	p->daemon = spawn(dargv, b->log);
	if (!wait_file(port, 10000))
		return -ETIMEDOUT;
	if (truncate(b->log, 0) < 0)
		return -errno;
	p->service = spawn(sargv, b->log);
	if (!wait_text(b->log, "connected to", 10000))
		return -ETIMEDOUT;
	return 0;
}

static void
scanner_stop(struct scan_procs *p)
{
	stop(p->service);
	stop(p->daemon);
	p->service = p->daemon = 0;
}

/* ---- the raw forwarding listener ---- */

/* The second process: takes an fd, replies allow (1 byte). */
static void
raw_peer(int sock)
{
	for (;;) {
		char byte, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);

		if (n <= 0)
			_exit(0);
		c = CMSG_FIRSTHDR(&m);
		if (c && c->cmsg_type == SCM_RIGHTS) {
			int fd;

			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			close(fd);
		}
		byte = 1;
		if (send(sock, &byte, 1, 0) != 1)
			_exit(1);
	}
}

/* The listener: reads one permission event at a time, forwards its fd,
 * waits for the reply, answers the kernel. */
static void
raw_listener(const char *path, int sock, int ready)
{
	int fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE,
				O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	char buf[4096] __attribute__((aligned(8)));

	if (fan < 0 || fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
				     FAN_OPEN_PERM, AT_FDCWD, path) < 0)
		_exit(1);
	if (write(ready, "1", 1) != 1)
		_exit(1);
	for (;;) {
		ssize_t n = read(fan, buf, sizeof(buf));
		struct fanotify_event_metadata *e = (void *)buf;

		if (n <= 0)
			_exit(n == 0 ? 0 : 1);
		for (; FAN_EVENT_OK(e, n); e = FAN_EVENT_NEXT(e, n)) {
			struct fanotify_response r = { .fd = e->fd,
						       .response = FAN_ALLOW };
			char byte = 0, cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
			struct iovec iov = { &byte, 1 };
			struct msghdr m = { .msg_iov = &iov,
					    .msg_iovlen = 1,
					    .msg_control = cbuf,
					    .msg_controllen = sizeof(cbuf) };
			struct cmsghdr *c = CMSG_FIRSTHDR(&m);

			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &e->fd, sizeof(int));
			if (sendmsg(sock, &m, 0) != 1 || recv(sock, &byte, 1, 0) != 1)
				r.response = FAN_ALLOW; /* the peer died: allow */
			if (write(fan, &r, sizeof(r)) != sizeof(r))
				_exit(1);
			close(e->fd);
		}
	}
}

struct raw_procs {
	pid_t listener, peer;
};

static int
raw_start(struct bench *b, struct raw_procs *p)
{
	int sv[2], ready[2];
	char c;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	p->peer = fork();
	if (p->peer == 0) {
		close(sv[0]);
		raw_peer(sv[1]);
	}
	p->listener = fork();
	if (p->listener == 0) {
		close(sv[1]);
		raw_listener(b->watch, sv[0], ready[1]);
	}
	close(sv[0]);
	close(sv[1]);
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		return -EIO;
	}
	close(ready[0]);
	return 0;
}

static void
raw_stop(struct raw_procs *p)
{
	kill(p->listener, SIGKILL);
	waitpid(p->listener, NULL, 0);
	kill(p->peer, SIGKILL);
	waitpid(p->peer, NULL, 0);
}

/* ---- one repetition ---- */

static int
run_cfg(struct bench *b, enum cfg c, double *ret)
{
	char one[PATH_MAX], dir[PATH_MAX];
	struct scan_procs sp = { 0 };
	struct raw_procs rp = { 0 };
	int r = 0;

	snprintf(one, sizeof(one), "%s/one", b->watch);
	if (c == CFG_FIRST || c == CFG_RAW) {
		r = make_set(b, b->files, dir, sizeof(dir));
		if (r < 0)
			return r;
	}
	switch (c) {
	case CFG_NONE:
		*ret = time_opens_one(one, b->opens);
		break;
	case CFG_CACHED:
		r = scanner_start(b, &sp);
		if (r == 0)
			*ret = time_opens_one(one, b->opens);
		scanner_stop(&sp);
		break;
	case CFG_FIRST:
		r = scanner_start(b, &sp);
		if (r == 0)
			*ret = time_opens_set(dir, b->files);
		scanner_stop(&sp);
		break;
	case CFG_RAW:
		r = raw_start(b, &rp);
		if (r == 0)
			*ret = time_opens_set(dir, b->files);
		raw_stop(&rp);
		break;
	default:
		return -EINVAL;
	}
	if (r == 0 && *ret < 0)
		r = -EIO;
	return r;
}

static double
median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
summary(const struct bench *b)
{
	double med[CFG_COUNT], lo[CFG_COUNT], hi[CFG_COUNT], col[MAX_REPS];
	double cached_ratio, first_ratio;

	printf("\n%-8s %12s %12s %12s   (ns per open+close, %u reps)\n", "config",
	       "median", "min", "max", b->reps);
	for (int c = 0; c < CFG_COUNT; c++) {
		for (unsigned i = 0; i < b->reps; i++)
			col[i] = results[i][c];
		med[c] = median(col, b->reps);
		lo[c] = col[0];
		hi[c] = col[b->reps - 1];
		printf("%-8s %12.0f %12.0f %12.0f\n", cfg_name[c], med[c], lo[c], hi[c]);
	}
	/* Ratios per repetition (same conditions), then their median. */
	for (unsigned i = 0; i < b->reps; i++)
		col[i] = results[i][CFG_CACHED] / results[i][CFG_NONE];
	cached_ratio = median(col, b->reps);
	for (unsigned i = 0; i < b->reps; i++)
		col[i] = results[i][CFG_FIRST] / results[i][CFG_RAW];
	first_ratio = median(col, b->reps);
	printf("\ncached clean open vs no listener: %.2fx (goal <= 1.30x): %s\n",
	       cached_ratio, cached_ratio <= 1.30 ? "PASS" : "MISS");
	printf("first open, service verdict vs raw SEQPACKET forwarder: %.2fx "
	       "(goal <= 1.15x): %s\n",
	       first_ratio, first_ratio <= 1.15 ? "PASS" : "MISS");
}

/* The medians of the per-repetition ratios num/den, as summary() prints. */
static double
ratio_median(const struct bench *b, enum cfg num, enum cfg den, double *per_rep)
{
	double col[MAX_REPS];

	for (unsigned i = 0; i < b->reps; i++)
		col[i] = per_rep[i] = results[i][num] / results[i][den];
	return median(col, b->reps);
}

static void
json_array(FILE *f, const double *v, unsigned n, bool ratio)
{
	fprintf(f, "[");
	for (unsigned i = 0; i < n; i++) {
		fprintf(f, i ? ", " : "");
		fprintf(f, ratio ? "%.4f" : "%.1f", v[i]);
	}
	fprintf(f, "]");
}

/* --json: the configuration, every repetition's values and order, and the
 * two ratios (per repetition and their median) with goals and verdicts. */
static int
write_json(const struct bench *b)
{
	double col[MAX_REPS], cached[MAX_REPS], first[MAX_REPS];
	double cached_med = ratio_median(b, CFG_CACHED, CFG_NONE, cached);
	double first_med = ratio_median(b, CFG_FIRST, CFG_RAW, first);
	FILE *f = fopen(b->json, "we");

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"reps\": %u,\n  \"opens\": %llu,\n  \"files\": %llu,\n",
		b->reps, b->opens, b->files);
	fprintf(f, "  \"unit\": \"ns per open+close\",\n  \"order\": [");
	for (unsigned i = 0; i < b->reps; i++) {
		fprintf(f, "%s\"", i ? ", " : "");
		for (int k = 0; k < CFG_COUNT; k++)
			fprintf(f, "%s%s", k ? "," : "", cfg_name[(k + i) % CFG_COUNT]);
		fprintf(f, "\"");
	}
	fprintf(f, "],\n  \"per_rep\": {\n");
	for (int c = 0; c < CFG_COUNT; c++) {
		for (unsigned i = 0; i < b->reps; i++)
			col[i] = results[i][c];
		fprintf(f, "    \"%s\": ", cfg_name[c]);
		json_array(f, col, b->reps, false);
		fprintf(f, "%s\n", c + 1 < CFG_COUNT ? "," : "");
	}
	fprintf(f, "  },\n  \"ratio_per_rep\": {\n    \"cached_over_none\": ");
	json_array(f, cached, b->reps, true);
	fprintf(f, ",\n    \"first_over_raw\": ");
	json_array(f, first, b->reps, true);
	fprintf(f,
		"\n  },\n  \"ratio\": { \"cached_over_none\": %.4f, \"first_over_raw\": "
		"%.4f },\n",
		cached_med, first_med);
	fprintf(f,
		"  \"goal\": { \"cached_over_none_max\": 1.30, \"first_over_raw_max\": "
		"1.15 },\n"
		"  \"pass\": { \"cached_over_none\": %s, \"first_over_raw\": %s }\n}\n",
		cached_med <= 1.30 ? "true" : "false",
		first_med <= 1.15 ? "true" : "false");
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static int
setup_fs(struct bench *b)
{
	char cmd[1024];

	snprintf(b->root, sizeof(b->root), "/tmp/fltmgr-scanbench.XXXXXX");
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (!mkdtemp(b->root) || mount("scanbench", b->root, "tmpfs", 0, "mode=0755") < 0)
		return -errno;
	snprintf(b->watch, sizeof(b->watch), "%s/watch", b->root);
	snprintf(b->rundir, sizeof(b->rundir), "%s/run", b->root);
	snprintf(b->fdir, sizeof(b->fdir), "%s/filters", b->root);
	snprintf(b->conf, sizeof(b->conf), "%s/fltmgr.conf", b->root);
	snprintf(b->rules, sizeof(b->rules), "%s/rules.yar", b->root);
	snprintf(b->log, sizeof(b->log), "%s/log", b->root);
	if (mkdir(b->watch, 0755) < 0 || mkdir(b->fdir, 0755) < 0)
		return -errno;
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s/scanner.so' && chmod 0644 '%s/scanner.so'", b->scanner_so,
		 b->fdir, b->fdir);
	if (system(cmd) != 0)
		return -EIO;
	snprintf(cmd, sizeof(cmd),
		 "[fltmgrd]\nfilter_dir = %s\n[filter scanner]\naltitude = 325000\n"
		 "deadline_ms = 5000\nattach = %s\nparam.invalidate = false\n",
		 b->fdir, b->watch);
	if (write_file(b->conf, cmd) < 0 ||
	    write_file(b->rules,
		       "rule eicar_like { strings: $a = \"X5O!P%@AP[4\\\\PZX54\" "
		       "condition: $a }\n") < 0)
		return -EIO;
	snprintf(cmd, sizeof(cmd), "%s/one", b->watch);
	return write_file(cmd, "the one file opened again and again\n");
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: scanner_bench --fltmgrd PATH --scanner PATH --scanner-so PATH\n"
		"                     [--reps N] [--opens N] [--files N] [--json "
		"FILE]\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "fltmgrd", required_argument, NULL, 'd' },
		{ "scanner", required_argument, NULL, 's' },
		{ "scanner-so", required_argument, NULL, 'o' },
		{ "reps", required_argument, NULL, 'r' },
		{ "opens", required_argument, NULL, 'n' },
		{ "files", required_argument, NULL, 'f' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct bench b = { .reps = 5, .opens = 20000, .files = 2000 };
	unsigned long long v;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			b.fltmgrd = optarg;
			break;
		case 's':
			b.scanner = optarg;
			break;
		case 'o':
			b.scanner_so = optarg;
			break;
		case 'r':
			if (parse_count("reps", optarg, MAX_REPS, &v) < 0)
				return 2;
			b.reps = (unsigned)v;
			break;
		case 'n':
			if (parse_count("opens", optarg, 100000000, &b.opens) < 0)
				return 2;
			break;
		case 'f':
			if (parse_count("files", optarg, 1000000, &b.files) < 0)
				return 2;
			break;
		case 'j':
			b.json = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!b.fltmgrd || !b.scanner || !b.scanner_so) {
		usage(stderr);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "scanner_bench: must run as root (fanotify)\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	r = setup_fs(&b);
	if (r < 0) {
		fprintf(stderr, "scanner_bench: setup: %s\n", err_str(r));
		return 1;
	}
	printf("scanner_bench: %u reps, %llu opens of one file (none, cached), %llu "
	       "distinct files (first, raw)\n",
	       b.reps, b.opens, b.files);
	for (unsigned i = 0; i < b.reps; i++) {
		printf("rep %u:", i + 1);
		for (int k = 0; k < CFG_COUNT; k++) {
			enum cfg cf = (enum cfg)((k + i) % CFG_COUNT);

			r = run_cfg(&b, cf, &results[i][cf]);
			if (r < 0) {
				fprintf(stderr, "\nscanner_bench: %s: %s (log: %s)\n",
					cfg_name[cf], err_str(r), b.log);
				return 1;
			}
			printf(" %s %.0f", cfg_name[cf], results[i][cf]);
			fflush(stdout);
		}
		printf("\n");
	}
	summary(&b);
	r = b.json ? write_json(&b) : 0;
	if (r < 0)
		fprintf(stderr, "scanner_bench: write %s: %s\n", b.json, err_str(r));
	else if (b.json)
		printf("\nwrote %s\n", b.json);
	umount2(b.root, MNT_DETACH);
	rmdir(b.root);
	return r < 0 ? 1 : 0;
}
