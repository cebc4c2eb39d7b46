/* SPDX-License-Identifier: MIT */
/*
 * engine_bench.c — file-system engine benchmark (root only).
 *
 * Measures what fltmgr's engine costs a process doing file operations,
 * next to the cheapest correct raw fanotify listeners, in one run.
 *
 * The whole program runs in its own private mount namespace, on a tmpfs it
 * mounts; marks are per filesystem, so nothing else on the machine is ever
 * watched or made to wait. Events caused by the engine's own process are
 * allowed at once and never reach a filter, so every measured operation is
 * made by a worker process forked at the start (before any thread or
 * manager exists). This process hosts the listeners: the raw ones as a
 * thread, fltmgr as a manager (its own threads).
 *
 * Each repetition sets up, measures and tears down, in an order that
 * rotates from one repetition to the next:
 *   (a) no listener
 *   (b) raw FAN_OPEN_PERM responder: blocking read, FAN_ALLOW, close
 *   (c) fltmgr, one pass-through pre-open filter on the whole tmpfs
 *   (d) fltmgr, three such filters at different altitudes
 *   (e) fltmgr, (c) with FLT_REGISTRATION_CACHE_VERDICTS
 * and for each the worker times N open(O_RDONLY) + close of one file.
 * Then notification throughput, raw reader and fltmgr in alternating
 * order: the worker creates, writes, closes, renames and unlinks files as
 * fast as it can, and the listener's rate is taken from its first to its
 * last event. Loss: FAN_Q_OVERFLOW records (raw), the manager's overflows
 * and dropped counters (fltmgr), and whatever is missing against the count
 * of operations the worker made. The summary gives medians over the
 * repetitions, min-max, and the ratios against the goals of the issue.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#include <fltmgr/filter.h>

#ifndef FAN_RENAME
#define FAN_RENAME 0x10000000
#endif
#ifndef FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
#define FAN_EVENT_INFO_TYPE_OLD_DFID_NAME 10
#define FAN_EVENT_INFO_TYPE_NEW_DFID_NAME 12
#endif

#define DEFAULT_REPS  7
#define DEFAULT_OPENS 20000
#define DEFAULT_CHURN 10000
#define MAX_REPS      1000
#define MAX_COUNT     100000000

#define OPEN_WARMUP_MAX 1000 /* untimed opens before each timed loop */
#define PERM_BUF        4096
#define NOTIF_BUF       (64 * 1024) /* what fltmgr reads at once, too */
#define CHILD_EXIT_MS   5000
/* After the churn: stop waiting once nothing arrived for this long. */
#define SETTLE_IDLE_MS 300
#define SETTLE_MAX_MS  60000
#define SETTLE_POLL_MS 10
/* A placement's mean is shown if it has this many calls and share. */
#define PLACEMENT_MIN_CALLS 100
#define PLACEMENT_MIN_PCT   5
#define PLACEMENT_WARN_PCT  20
/* (e): more callbacks than this in a rep means the cache did not work. */
#define CACHE_MAX_CALLBACKS 3
/* A reader within this fraction of the churn's rate kept pace with it. */
#define PRODUCER_BOUND 0.9

#define GOAL_FLT1   1.15 /* (c) / (b) <= */
#define GOAL_FLT3   1.30 /* (d) / (b) <= */
#define GOAL_CACHED 1.30 /* (e) / (a) <= */
#define GOAL_NOTIF  0.80 /* fltmgr / raw events per second >= */

/* What the churn does per iteration, and the events it must yield. */
#define OPS_PER_ITERATION 5
#define NOTIF_EVENTS      (FAN_CREATE | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_RENAME | FAN_DELETE)

enum cfg { CFG_NONE, CFG_RAW, CFG_FLT1, CFG_FLT3, CFG_CACHED, N_CFG };

static const char *const cfg_label[N_CFG] = {
	"(a) no listener",       "(b) raw responder",          "(c) fltmgr, 1 filter",
	"(d) fltmgr, 3 filters", "(e) fltmgr, cached verdict",
};

/*
 * Per-repetition values; the summary is the median of each. Times in ns
 * per call, shares as fractions, rates in events per second; NAN where a
 * value does not exist (a placement with too few calls).
 */
enum col {
	A_NS, /* mean ns per timed open+close, one per configuration */
	B_NS,
	C_NS,
	D_NS,
	E_NS,
	B_SAME, /* share of timed calls whose event the listener took on
		   the CPU the opener was on */
	C_SAME,
	D_SAME,
	B_SAME_NS, /* mean ns per call by placement */
	B_CROSS_NS,
	C_SAME_NS,
	C_CROSS_NS,
	D_SAME_NS,
	D_CROSS_NS,
	B_UNSEEN, /* timed calls no listener saw: must be 0 */
	C_UNSEEN,
	D_UNSEEN,
	E_SEEN,          /* timed calls that reached user space in (e): ~0 */
	E_CALLBACKS,     /* (e) filter's delivered count, warm-up included */
	E_CACHE_INSERTS, /* (e) manager's cache_inserts */
	RAW_RATE,        /* events per second, first to last event */
	FLT_RATE,
	RAW_CHURN_RATE, /* operations per second the worker made meanwhile */
	FLT_CHURN_RATE,
	RAW_EVENTS, /* events received: mask bits (raw), callbacks (fltmgr) */
	FLT_EVENTS,
	RAW_RECORDS, /* kernel records read (merged events count once) */
	FLT_RECORDS,
	RAW_MISSING, /* expected - received */
	FLT_MISSING,
	RAW_OVERFLOWS,    /* FAN_Q_OVERFLOW records */
	FLT_OVERFLOWS,    /* flt_engine_stats.overflows */
	FLT_DROPPED,      /* flt_engine_stats.dropped */
	FLT_OVERFLOW_CBS, /* FLT_OP_OVERFLOW post callbacks */
	RAW_UNRESOLVED,   /* names the raw reader could not resolve */
	N_COLS
};

static const char *const col_json[N_COLS] = {
	"a_ns_per_call",
	"b_ns_per_call",
	"c_ns_per_call",
	"d_ns_per_call",
	"e_ns_per_call",
	"b_same_cpu",
	"c_same_cpu",
	"d_same_cpu",
	"b_same_cpu_ns",
	"b_cross_cpu_ns",
	"c_same_cpu_ns",
	"c_cross_cpu_ns",
	"d_same_cpu_ns",
	"d_cross_cpu_ns",
	"b_unseen",
	"c_unseen",
	"d_unseen",
	"e_seen",
	"e_callbacks",
	"e_cache_inserts",
	"raw_events_per_s",
	"fltmgr_events_per_s",
	"raw_churn_ops_per_s",
	"fltmgr_churn_ops_per_s",
	"raw_events",
	"fltmgr_events",
	"raw_records",
	"fltmgr_records",
	"raw_missing",
	"fltmgr_missing",
	"raw_overflows",
	"fltmgr_overflows",
	"fltmgr_dropped",
	"fltmgr_overflow_callbacks",
	"raw_unresolved",
};

struct rep_result {
	double v[N_COLS];
	char order[N_CFG + 1]; /* e.g. "cdeab" */
	bool raw_first;        /* notifications: raw reader measured first */
};

struct config {
	unsigned reps;
	uint64_t opens;
	uint64_t churn;
	const char *json_path;
	bool pin;
	int cpu_listener;
	int cpu_worker;
};

/* Shared with the worker (MAP_SHARED, set up before the fork). */
struct shared {
	atomic_int opener_cpu; /* the worker's CPU before its open */
	atomic_int last_same;  /* -1 nobody saw the open; else 1 if the
				  listener took it on opener_cpu, 0 if not */
};

struct bench {
	struct config cfg;
	char mnt[64];       /* the private tmpfs */
	char target[96];    /* the file the worker opens */
	char churn_dir[96]; /* where the worker churns */
	char wake[128];     /* created to stop the raw notification reader */
	char run_dir[96];   /* fltmgr runtime directory */
	bool mounted;
	int mnt_fd; /* for open_by_handle_at (raw reader) */
	pid_t self;
	pid_t worker;
	int cmd_fd; /* to the worker */
	int res_fd; /* from the worker */
	struct shared *shm;
};

/* Worker protocol: one command, one result. */
enum worker_op {
	OP_OPEN = 1,
	OP_CHURN = 2,
};

struct wcmd {
	uint32_t op;
	uint32_t warm;
	uint64_t count;
};

struct wres {
	int32_t err;
	uint32_t pad;
	int64_t total_ns;
	int64_t same_ns, cross_ns;
	uint64_t same_n, cross_n, unseen_n;
};

/* Notification counters, raw or fltmgr (one at a time). */
struct notif_counters {
	atomic_uint_fast64_t events;       /* operations reported */
	atomic_uint_fast64_t records;      /* kernel records (raw) */
	atomic_uint_fast64_t overflows;    /* FAN_Q_OVERFLOW (raw) */
	atomic_uint_fast64_t overflow_cbs; /* FLT_OP_OVERFLOW (fltmgr) */
	atomic_uint_fast64_t unresolved;   /* raw: names not resolved */
	atomic_int_fast64_t first_ns, last_ns;
};

static struct shared *g_shm;
static struct notif_counters g_nt;

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/* Median, min and max of the values that are not NAN (NAN if none). */
static void
stats3(const double *v, size_t n, double *ret_med, double *ret_min, double *ret_max)
{
	double tmp[MAX_REPS];
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (!isnan(v[i]))
			tmp[k++] = v[i];
	if (k == 0) {
		*ret_med = *ret_min = *ret_max = NAN;
		return;
	}
	qsort(tmp, k, sizeof(*tmp), cmp_double);
	*ret_med = k % 2 ? tmp[k / 2] : (tmp[k / 2 - 1] + tmp[k / 2]) / 2;
	*ret_min = tmp[0];
	*ret_max = tmp[k - 1];
}

/* ------------------------------------------------------------------ */
/* The worker process: every measured file operation is made here      */

static int
worker_open(const char *path, const struct wcmd *c, struct wres *res)
{
	struct shared *shm = g_shm;
	int64_t t0, prev, t;
	uint64_t i;
	int fd;

	for (i = 0; i < c->warm; i++) {
		atomic_store_explicit(&shm->opener_cpu, sched_getcpu(),
				      memory_order_relaxed);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return -errno;
		close(fd);
	}
	t0 = prev = now_ns();
	for (i = 0; i < c->count; i++) {
		atomic_store_explicit(&shm->opener_cpu, sched_getcpu(),
				      memory_order_relaxed);
		atomic_store_explicit(&shm->last_same, -1, memory_order_relaxed);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return -errno;
		close(fd);
		t = now_ns();
		/* The listener wrote last_same before it answered. */
		switch (atomic_load_explicit(&shm->last_same, memory_order_relaxed)) {
		case 1:
			res->same_ns += t - prev;
			res->same_n++;
			break;
		case 0:
			res->cross_ns += t - prev;
			res->cross_n++;
			break;
		default:
			res->unseen_n++;
			break;
		}
		prev = t;
	}
	res->total_ns = prev - t0;
	return 0;
}

/* create + write + close + rename + unlink, count times, unique names. */
static int
worker_churn(int dir_fd, const struct wcmd *c, struct wres *res)
{
	char a[32], b[32];
	int64_t t0 = now_ns();
	uint64_t i;
	int fd;

	for (i = 0; i < c->count; i++) {
		snprintf(a, sizeof(a), "a%llu", (unsigned long long)i);
		snprintf(b, sizeof(b), "b%llu", (unsigned long long)i);
		fd = openat(dir_fd, a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		if (write(fd, "x", 1) != 1) {
			int r = -errno;

			close(fd);
			return r < 0 ? r : -EIO;
		}
		close(fd);
		if (renameat(dir_fd, a, dir_fd, b) < 0 || unlinkat(dir_fd, b, 0) < 0)
			return -errno;
	}
	res->total_ns = now_ns() - t0;
	return 0;
}

static int
worker_main(const struct bench *b, int cmd_fd, int res_fd)
{
	struct wcmd c;
	int dir_fd, r;

	/* Opened now, while nothing listens. */
	dir_fd = open(b->churn_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	for (;;) {
		struct wres res;

		r = read_full(cmd_fd, &c, sizeof(c));
		if (r == -EPIPE) {
			r = 0; /* the parent is done */
			break;
		}
		if (r < 0)
			break;
		memset(&res, 0, sizeof(res));
		if (c.op == OP_OPEN)
			res.err = worker_open(b->target, &c, &res);
		else if (c.op == OP_CHURN)
			res.err = worker_churn(dir_fd, &c, &res);
		else
			res.err = -EINVAL;
		r = write_full(res_fd, &res, sizeof(res));
		if (r < 0)
			break;
	}
	close(dir_fd);
	return r;
}

static int
worker_call(const struct bench *b, uint32_t op, uint64_t count, uint32_t warm,
	    struct wres *ret)
{
	struct wcmd c = { .op = op, .warm = warm, .count = count };
	int r;

	r = write_full(b->cmd_fd, &c, sizeof(c));
	if (r == 0)
		r = read_full(b->res_fd, ret, sizeof(*ret));
	if (r == 0 && ret->err < 0)
		r = ret->err;
	return r;
}

/* ------------------------------------------------------------------ */
/* Placement, recorded by whoever answers a permission event            */

/* Before the answer: the opener reads it once its open returns. */
static inline void
note_placement(void)
{
	int same = sched_getcpu() ==
		   atomic_load_explicit(&g_shm->opener_cpu, memory_order_relaxed);

	atomic_store_explicit(&g_shm->last_same, same, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* (b) the raw FAN_OPEN_PERM responder: the floor                       */

struct raw_listener {
	int fd; /* the group; the thread owns it once started */
	pid_t self;
	int mount_fd;
	pthread_t thread;
	int err;
};

/*
 * Reads batches (blocking), answers FAN_ALLOW and closes the event's
 * descriptor, event by event. An event from this process is the signal to
 * stop: it is answered like any other, then the group is closed.
 */
static void *
raw_perm_main(void *arg)
{
	struct raw_listener *rl = arg;
	_Alignas(struct fanotify_event_metadata) unsigned char buf[PERM_BUF];
	bool stop = false;

	while (!stop) {
		struct fanotify_event_metadata *md;
		ssize_t n = read(rl->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rl->err = n < 0 ? -errno : -EIO;
			break;
		}
		for (md = (struct fanotify_event_metadata *)buf; FAN_EVENT_OK(md, n);
		     md = FAN_EVENT_NEXT(md, n)) {
			struct fanotify_response resp = { .fd = md->fd,
							  .response = FAN_ALLOW };

			if (md->vers != FANOTIFY_METADATA_VERSION) {
				rl->err = -EPROTO;
				stop = true;
				break;
			}
			if (md->fd < 0)
				continue;
			if (md->pid == rl->self)
				stop = true;
			else
				note_placement();
			if (write(rl->fd, &resp, sizeof(resp)) != sizeof(resp))
				rl->err = -errno;
			close(md->fd);
		}
	}
	/* Closing the group allows whatever is still queued. */
	close(rl->fd);
	return NULL;
}

static int
raw_perm_start(const struct bench *b, struct raw_listener *rl)
{
	int r;

	rl->self = b->self;
	rl->err = 0;
	rl->fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE,
			       O_RDONLY | O_LARGEFILE);
	if (rl->fd < 0)
		return -errno;
	if (fanotify_mark(rl->fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_PERM,
			  AT_FDCWD, b->mnt) < 0) {
		r = -errno;
		close(rl->fd);
		return r;
	}
	r = -pthread_create(&rl->thread, NULL, raw_perm_main, rl);
	if (r < 0)
		close(rl->fd);
	return r;
}

/* An open by this process wakes the responder, which then stops. */
static int
raw_perm_stop(const struct bench *b, struct raw_listener *rl)
{
	int fd = open(b->target, O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	pthread_join(rl->thread, NULL);
	return rl->err;
}

/* ------------------------------------------------------------------ */
/* The raw notification reader                                          */

/* The directory handle to a path, the way fltmgr does it. */
static int
raw_resolve(int mount_fd, const struct fanotify_event_info_fid *fid, size_t rec_len,
	    char *out, size_t cap)
{
	const size_t fixed = sizeof(*fid) + sizeof(struct file_handle);
	struct file_handle *fh = (struct file_handle *)fid->handle;
	char link[32], dir[PATH_MAX];
	const char *name;
	ssize_t n;
	int fd, r = 0;

	if (rec_len < fixed || fh->handle_bytes > rec_len - fixed)
		return -EBADMSG;
	name = (const char *)fh->f_handle + fh->handle_bytes;
	if (!memchr(name, '\0', rec_len - fixed - fh->handle_bytes))
		return -EBADMSG;
	fd = open_by_handle_at(mount_fd, fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	dir[n] = '\0';
	if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

static void
count_event(uint64_t n)
{
	int64_t t = now_ns(), zero = 0;

	atomic_compare_exchange_strong(&g_nt.first_ns, &zero, t);
	atomic_store_explicit(&g_nt.last_ns, t, memory_order_relaxed);
	atomic_fetch_add_explicit(&g_nt.events, n, memory_order_relaxed);
}

/*
 * Reads batches (blocking). Per event: the path of every directory+name
 * record (one, two for a rename) via open_by_handle_at + readlink +
 * close, as fltmgr does; then it counts the event's operation bits. An
 * event from this process is the signal to stop.
 */
static void *
raw_notif_main(void *arg)
{
	struct raw_listener *rl = arg;
	unsigned char *buf = aligned_alloc(8, NOTIF_BUF);
	char path[PATH_MAX + NAME_MAX + 2];
	bool stop = false;

	if (!buf)
		rl->err = -ENOMEM;
	while (buf && !stop) {
		ssize_t n = read(rl->fd, buf, NOTIF_BUF);
		size_t off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rl->err = n < 0 ? -errno : -EIO;
			break;
		}
		/* FID records are 4-aligned: copy each header out. */
		while (off + sizeof(struct fanotify_event_metadata) <= (size_t)n) {
			const unsigned char *ev = buf + off;
			struct fanotify_event_metadata md;
			size_t pos;

			memcpy(&md, ev, sizeof(md));
			if (md.vers != FANOTIFY_METADATA_VERSION ||
			    md.event_len < sizeof(md) || md.event_len > (size_t)n - off ||
			    md.metadata_len < sizeof(md) ||
			    md.metadata_len > md.event_len) {
				rl->err = -EPROTO;
				stop = true;
				break;
			}
			off += md.event_len;
			if (md.mask & FAN_Q_OVERFLOW) {
				atomic_fetch_add(&g_nt.overflows, 1);
				continue;
			}
			if (md.fd >= 0)
				close(md.fd); /* not in a FID group; to be sure */
			if (md.pid == rl->self) {
				stop = true;
				continue;
			}
			atomic_fetch_add_explicit(&g_nt.records, 1, memory_order_relaxed);
			for (pos = md.metadata_len;
			     pos + sizeof(struct fanotify_event_info_header) <=
			     md.event_len;) {
				struct fanotify_event_info_header h;

				memcpy(&h, ev + pos, sizeof(h));
				if (h.len < sizeof(h) || h.len > md.event_len - pos)
					break;
				if ((h.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
				     h.info_type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME ||
				     h.info_type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) &&
				    raw_resolve(rl->mount_fd, (const void *)(ev + pos),
						h.len, path, sizeof(path)) < 0)
					atomic_fetch_add(&g_nt.unresolved, 1);
				pos += h.len;
			}
			count_event(
				(uint64_t)__builtin_popcountll(md.mask & NOTIF_EVENTS));
		}
	}
	free(buf);
	close(rl->fd);
	return NULL;
}

static int
raw_notif_start(const struct bench *b, struct raw_listener *rl)
{
	int r;

	rl->self = b->self;
	rl->mount_fd = b->mnt_fd;
	rl->err = 0;
	/* What fltmgr asks for (src/engine/marks.c, engine.c), without the
	 * pidfd: FID records with parent+name and target, FAN_RENAME. */
	rl->fd =
		fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_DFID_NAME_TARGET,
			      O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (rl->fd < 0)
		return -errno;
	if (fanotify_mark(rl->fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
			  NOTIF_EVENTS | FAN_ONDIR, AT_FDCWD, b->mnt) < 0) {
		r = -errno;
		close(rl->fd);
		return r;
	}
	r = -pthread_create(&rl->thread, NULL, raw_notif_main, rl);
	if (r < 0)
		close(rl->fd);
	return r;
}

/* A file created by this process wakes the reader, which then stops. */
static int
raw_notif_stop(const struct bench *b, struct raw_listener *rl)
{
	int fd = open(b->wake, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd >= 0) {
		close(fd);
		unlink(b->wake);
	}
	pthread_join(rl->thread, NULL);
	return rl->err;
}

/* ------------------------------------------------------------------ */
/* fltmgr filters                                                       */

static enum flt_preop_status
pre_pass(struct flt_callback_data *data, void *instance_context,
	 void **completion_context)
{
	(void)data;
	(void)instance_context;
	(void)completion_context;
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

/* The same, in the filter asked first: records the placement. */
static enum flt_preop_status
pre_pass_first(struct flt_callback_data *data, void *instance_context,
	       void **completion_context)
{
	(void)data;
	(void)instance_context;
	(void)completion_context;
	note_placement();
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static void
post_count(const struct flt_callback_data *data, void *instance_context,
	   void *completion_context)
{
	(void)data;
	(void)instance_context;
	(void)completion_context;
	count_event(1);
}

static void
post_overflow(const struct flt_callback_data *data, void *instance_context,
	      void *completion_context)
{
	(void)data;
	(void)instance_context;
	(void)completion_context;
	atomic_fetch_add(&g_nt.overflow_cbs, 1);
}

static const struct flt_operation_registration ops_first[] = {
	{ FLT_OP_OPEN, pre_pass_first, NULL },
};
static const struct flt_operation_registration ops_pass[] = {
	{ FLT_OP_OPEN, pre_pass, NULL },
};
static const struct flt_operation_registration ops_notif[] = {
	{ FLT_OP_CREATE, NULL, post_count },
	{ FLT_OP_WRITE, NULL, post_count },
	{ FLT_OP_CLOSE_WRITE, NULL, post_count },
	{ FLT_OP_RENAME, NULL, post_count },
	{ FLT_OP_DELETE, NULL, post_count },
	{ FLT_OP_OVERFLOW, NULL, post_overflow },
};

#define N_OPS(a) (sizeof(a) / sizeof((a)[0]))

static const struct flt_registration reg_one[] = {
	{ .name = "pass",
	  .altitude = "385100",
	  .operations = ops_first,
	  .n_operations = 1 },
};
static const struct flt_registration reg_three[] = {
	{ .name = "pass-high",
	  .altitude = "389000",
	  .operations = ops_first,
	  .n_operations = 1 },
	{ .name = "pass-mid",
	  .altitude = "385100",
	  .operations = ops_pass,
	  .n_operations = 1 },
	{ .name = "pass-low",
	  .altitude = "381000",
	  .operations = ops_pass,
	  .n_operations = 1 },
};
static const struct flt_registration reg_cached[] = {
	{ .name = "pass-cached",
	  .altitude = "385100",
	  .operations = ops_first,
	  .n_operations = 1,
	  .flags = FLT_REGISTRATION_CACHE_VERDICTS },
};
static const struct flt_registration reg_notif[] = {
	{ .name = "count",
	  .altitude = "385100",
	  .operations = ops_notif,
	  .n_operations = N_OPS(ops_notif) },
};

static void
log_errors(void *userdata, int level, const char *message)
{
	(void)userdata;
	if (level <= FLT_LOG_ERROR)
		fprintf(stderr, "engine_bench: fltmgr: %s\n", message);
}

/* A fresh manager with n filters, each attached to the whole tmpfs. */
static int
fltmgr_start(const struct bench *b, const struct flt_registration *regs, size_t n,
	     flt_manager **ret_manager, flt_filter **ret_filters)
{
	const struct flt_manager_options mopts = {
		.runtime_dir = b->run_dir,
		.log_level = FLT_LOG_ERROR,
		.log_func = log_errors,
	};
	flt_manager *m;
	const char *what = "flt_manager_new";
	size_t i;
	int r;

	r = flt_manager_new(&mopts, &m);
	if (r < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		what = "flt_register_filter";
		r = flt_register_filter(m, &regs[i], &ret_filters[i]);
		if (r < 0)
			break;
		what = "flt_attach";
		r = flt_attach(ret_filters[i], b->mnt, FLT_INSTANCE_FILESYSTEM);
		if (r < 0)
			break;
		what = "flt_start_filtering";
		r = flt_start_filtering(ret_filters[i]);
		if (r < 0)
			break;
	}
	if (r < 0) {
		flt_manager_free(m);
		goto fail;
	}
	*ret_manager = m;
	return 0;
fail:
	fprintf(stderr, "engine_bench: %s: %s\n", what, err_str(r));
	return r;
}

/* ------------------------------------------------------------------ */
/* Measurements                                                         */

static uint32_t
open_warmup(uint64_t n)
{
	return n / 10 < OPEN_WARMUP_MAX ? (uint32_t)(n / 10) : OPEN_WARMUP_MAX;
}

/* Mean of one placement class, if it has enough calls to stand for it. */
static double
class_mean(int64_t ns, uint64_t k, uint64_t n)
{
	if (k < PLACEMENT_MIN_CALLS || k * 100 < n * PLACEMENT_MIN_PCT)
		return NAN;
	return (double)ns / (double)k;
}

/* One open+close configuration: set up, N timed calls, tear down. */
static int
run_open(const struct bench *b, enum cfg c, struct rep_result *res)
{
	const uint64_t n = b->cfg.opens;
	struct raw_listener rl;
	flt_manager *m = NULL;
	flt_filter *f[3] = { NULL, NULL, NULL };
	struct flt_filter_stats fs = { 0 };
	struct flt_engine_stats es = { 0 };
	struct wres wr;
	bool raw = false;
	int r = 0, r2;

	switch (c) {
	case CFG_RAW:
		r = raw_perm_start(b, &rl);
		raw = r == 0;
		if (r < 0)
			fprintf(stderr, "engine_bench: raw responder: %s\n", err_str(r));
		break;
	case CFG_FLT1:
		r = fltmgr_start(b, reg_one, N_OPS(reg_one), &m, f);
		break;
	case CFG_FLT3:
		r = fltmgr_start(b, reg_three, N_OPS(reg_three), &m, f);
		break;
	case CFG_CACHED:
		r = fltmgr_start(b, reg_cached, N_OPS(reg_cached), &m, f);
		break;
	default:
		break;
	}
	if (r < 0)
		return r;
	r = worker_call(b, OP_OPEN, n, open_warmup(n), &wr);
	if (r < 0)
		fprintf(stderr, "engine_bench: %s: worker: %s\n", cfg_label[c],
			err_str(r));
	if (r == 0 && c == CFG_CACHED) {
		r = flt_filter_get_stats(f[0], &fs);
		if (r == 0)
			r = flt_manager_get_stats(m, &es);
	}
	if (raw) {
		r2 = raw_perm_stop(b, &rl);
		if (r2 < 0)
			fprintf(stderr, "engine_bench: raw responder: %s\n", err_str(r2));
		r = r < 0 ? r : r2;
	}
	flt_manager_free(m);
	if (r < 0)
		return r;

	res->v[A_NS + c] = (double)wr.total_ns / (double)n;
	if (c == CFG_RAW || c == CFG_FLT1 || c == CFG_FLT3) {
		unsigned k = (unsigned)(c - CFG_RAW);

		res->v[B_SAME + k] = (double)wr.same_n / (double)n;
		res->v[B_SAME_NS + 2 * k] = class_mean(wr.same_ns, wr.same_n, n);
		res->v[B_CROSS_NS + 2 * k] = class_mean(wr.cross_ns, wr.cross_n, n);
		res->v[B_UNSEEN + k] = (double)wr.unseen_n;
	} else if (c == CFG_CACHED) {
		res->v[E_SEEN] = (double)(wr.same_n + wr.cross_n);
		res->v[E_CALLBACKS] = (double)fs.delivered;
		res->v[E_CACHE_INSERTS] = (double)es.cache_inserts;
	}
	return 0;
}

/* Until `expected` events arrived, or none for SETTLE_IDLE_MS. */
static void
settle(uint64_t expected)
{
	int64_t start = now_ns(), last_change = start, t;
	uint64_t last = atomic_load(&g_nt.events), cur;

	while (last < expected) {
		sleep_ms(SETTLE_POLL_MS);
		t = now_ns();
		cur = atomic_load(&g_nt.events);
		if (cur != last) {
			last = cur;
			last_change = t;
		} else if (t - last_change >= (int64_t)SETTLE_IDLE_MS * 1000000) {
			break;
		}
		if (t - start >= (int64_t)SETTLE_MAX_MS * 1000000)
			break;
	}
}

static void
notif_reset(void)
{
	atomic_store(&g_nt.events, 0);
	atomic_store(&g_nt.records, 0);
	atomic_store(&g_nt.overflows, 0);
	atomic_store(&g_nt.overflow_cbs, 0);
	atomic_store(&g_nt.unresolved, 0);
	atomic_store(&g_nt.first_ns, 0);
	atomic_store(&g_nt.last_ns, 0);
}

static double
notif_rate(void)
{
	uint64_t n = atomic_load(&g_nt.events);
	int64_t span = atomic_load(&g_nt.last_ns) - atomic_load(&g_nt.first_ns);

	if (n < 2 || span <= 0)
		return NAN;
	return (double)n * 1e9 / (double)span;
}

/* Notification throughput, raw reader or fltmgr. */
static int
run_notif(const struct bench *b, bool raw, struct rep_result *res)
{
	const uint64_t expected = b->cfg.churn * OPS_PER_ITERATION;
	struct raw_listener rl;
	struct flt_engine_stats es = { 0 };
	flt_manager *m = NULL;
	flt_filter *f = NULL;
	struct wres wr;
	double churn_rate, received;
	int r, r2;

	notif_reset();
	if (raw) {
		r = raw_notif_start(b, &rl);
		if (r < 0)
			fprintf(stderr, "engine_bench: raw reader: %s\n", err_str(r));
	} else {
		r = fltmgr_start(b, reg_notif, 1, &m, &f);
	}
	if (r < 0)
		return r;
	r = worker_call(b, OP_CHURN, b->cfg.churn, 0, &wr);
	if (r < 0)
		fprintf(stderr, "engine_bench: churn: %s\n", err_str(r));
	else
		settle(expected);
	if (raw) {
		r2 = raw_notif_stop(b, &rl);
		if (r2 < 0)
			fprintf(stderr, "engine_bench: raw reader: %s\n", err_str(r2));
		r = r < 0 ? r : r2;
	} else {
		if (r == 0)
			r = flt_manager_get_stats(m, &es);
		flt_manager_free(m);
	}
	if (r < 0)
		return r;

	churn_rate = (double)expected * 1e9 / (double)wr.total_ns;
	received = (double)atomic_load(&g_nt.events);
	if (raw) {
		res->v[RAW_RATE] = notif_rate();
		res->v[RAW_CHURN_RATE] = churn_rate;
		res->v[RAW_EVENTS] = received;
		res->v[RAW_RECORDS] = (double)atomic_load(&g_nt.records);
		res->v[RAW_MISSING] = (double)expected - received;
		res->v[RAW_OVERFLOWS] = (double)atomic_load(&g_nt.overflows);
		res->v[RAW_UNRESOLVED] = (double)atomic_load(&g_nt.unresolved);
	} else {
		res->v[FLT_RATE] = notif_rate();
		res->v[FLT_CHURN_RATE] = churn_rate;
		res->v[FLT_EVENTS] = received;
		res->v[FLT_RECORDS] = (double)es.notification_events;
		res->v[FLT_MISSING] = (double)expected - received;
		res->v[FLT_OVERFLOWS] = (double)es.overflows;
		res->v[FLT_DROPPED] = (double)es.dropped;
		res->v[FLT_OVERFLOW_CBS] = (double)atomic_load(&g_nt.overflow_cbs);
	}
	return 0;
}

/* One repetition: the open configurations in rotated order, then the
 * two notification runs, alternating which goes first. */
static int
run_rep(const struct bench *b, unsigned rep, struct rep_result *res)
{
	unsigned k;
	int r;

	for (k = 0; k < N_COLS; k++)
		res->v[k] = NAN;
	for (k = 0; k < N_CFG; k++) {
		enum cfg c = (enum cfg)((rep + k) % N_CFG);

		res->order[k] = "abcde"[c];
		r = run_open(b, c, res);
		if (r < 0)
			return r;
	}
	res->order[N_CFG] = '\0';
	res->raw_first = rep % 2 == 0;
	r = run_notif(b, res->raw_first, res);
	if (r == 0)
		r = run_notif(b, !res->raw_first, res);
	return r;
}

/* ------------------------------------------------------------------ */
/* Reporting                                                            */

/* The ratios with goals: num / den of the medians. */
enum ratio { R_FLT1, R_FLT3, R_CACHED, R_NOTIF, N_RATIOS };

static const struct {
	const char *label;
	const char *json;
	enum col num, den;
	double goal;
	bool at_most; /* goal is a maximum (else a minimum) */
} ratio_def[N_RATIOS] = {
	{ "(c)/(b) 1 filter / raw", "c_over_b", C_NS, B_NS, GOAL_FLT1, true },
	{ "(d)/(b) 3 filters / raw", "d_over_b", D_NS, B_NS, GOAL_FLT3, true },
	{ "(e)/(a) cached / no listener", "e_over_a", E_NS, A_NS, GOAL_CACHED, true },
	{ "notifications fltmgr / raw", "notif_fltmgr_over_raw", FLT_RATE, RAW_RATE,
	  GOAL_NOTIF, false },
};

struct summary {
	double med[N_COLS], min[N_COLS], max[N_COLS];
	double ratio[N_RATIOS]; /* of the medians: the headline */
	bool pass[N_RATIOS];
	/* The same ratio within each rep (paired), then median, min, max. */
	double rr[N_RATIOS][MAX_REPS];
	double rr_med[N_RATIOS], rr_min[N_RATIOS], rr_max[N_RATIOS];
	double ratio_same[2], ratio_cross[2]; /* (c)/(b), (d)/(b) by placement */
	double raw_missing, flt_missing;      /* totals over the reps */
	double raw_overflows, flt_overflows, flt_dropped, flt_overflow_cbs;
	unsigned unreported_reps; /* reps with loss and no overflow/drop */
	bool pass_loss;
	double max_e_callbacks, max_e_seen, max_unseen;
	bool cache_ok;
};

static void
summarize(const struct rep_result *res, unsigned reps, struct summary *s)
{
	double v[MAX_REPS];
	unsigned c, i;

	memset(s, 0, sizeof(*s));
	for (c = 0; c < N_COLS; c++) {
		for (i = 0; i < reps; i++)
			v[i] = res[i].v[c];
		stats3(v, reps, &s->med[c], &s->min[c], &s->max[c]);
	}
	for (c = 0; c < N_RATIOS; c++) {
		enum col num = ratio_def[c].num, den = ratio_def[c].den;

		s->ratio[c] = s->med[num] / s->med[den];
		s->pass[c] = ratio_def[c].at_most ? s->ratio[c] <= ratio_def[c].goal
						  : s->ratio[c] >= ratio_def[c].goal;
		for (i = 0; i < reps; i++)
			s->rr[c][i] = res[i].v[num] / res[i].v[den];
		stats3(s->rr[c], reps, &s->rr_med[c], &s->rr_min[c], &s->rr_max[c]);
	}
	for (i = 0; i < 2; i++) {
		s->ratio_same[i] = s->med[C_SAME_NS + 2 * i] / s->med[B_SAME_NS];
		s->ratio_cross[i] = s->med[C_CROSS_NS + 2 * i] / s->med[B_CROSS_NS];
	}
	for (i = 0; i < reps; i++) {
		const double *x = res[i].v;

		s->raw_missing += x[RAW_MISSING];
		s->flt_missing += x[FLT_MISSING];
		s->raw_overflows += x[RAW_OVERFLOWS];
		s->flt_overflows += x[FLT_OVERFLOWS];
		s->flt_dropped += x[FLT_DROPPED];
		s->flt_overflow_cbs += x[FLT_OVERFLOW_CBS];
		if (x[RAW_MISSING] != 0 && x[RAW_OVERFLOWS] == 0)
			s->unreported_reps++;
		if (x[FLT_MISSING] != 0 && x[FLT_OVERFLOWS] == 0 && x[FLT_DROPPED] == 0)
			s->unreported_reps++;
		/* Every fltmgr overflow must reach the filter, too. */
		if (x[FLT_OVERFLOW_CBS] != x[FLT_OVERFLOWS])
			s->unreported_reps++;
	}
	s->pass_loss = s->unreported_reps == 0;
	s->max_e_callbacks = s->max[E_CALLBACKS];
	s->max_e_seen = s->max[E_SEEN];
	s->max_unseen = fmax(s->max[B_UNSEEN], fmax(s->max[C_UNSEEN], s->max[D_UNSEEN]));
	s->cache_ok = s->max_e_callbacks <= CACHE_MAX_CALLBACKS && s->max_e_seen == 0;
}

static const char *
verdict(bool pass)
{
	return pass ? "PASS" : "MISS";
}

static void
print_header(const struct bench *b)
{
	const struct config *cfg = &b->cfg;
	struct utsname u;

	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	printf("engine_bench: reps=%u opens=%llu churn=%llu cpus-online=%ld "
	       "kernel=%s\n",
	       cfg->reps, (unsigned long long)cfg->opens, (unsigned long long)cfg->churn,
	       sysconf(_SC_NPROCESSORS_ONLN), u.release);
	printf("tmpfs: %s (private mount namespace); opener: open(\"%s\", "
	       "O_RDONLY) + close\n",
	       b->mnt, b->target);
	if (cfg->pin)
		printf("pinning: ON (listeners: raw threads and fltmgr threads on "
		       "CPU %d; opener/churn process on CPU %d)\n",
		       cfg->cpu_listener, cfg->cpu_worker);
	else
		printf("pinning: off (the scheduler places listener and opener)\n");
	printf("\nopen+close, mean ns per call (%u untimed first); same-cpu: "
	       "share of calls whose\nevent was answered on the opener's CPU; "
	       "(e) cb: callbacks in (e), warm-up included\n",
	       open_warmup(cfg->opens));
	printf("%-4s %-6s %8s %8s %8s %8s %8s  %5s %5s %5s  %6s\n", "rep", "order",
	       "(a)none", "(b)raw", "(c)1flt", "(d)3flt", "(e)cache", "b", "c", "d",
	       "(e)cb");
	fflush(stdout);
}

static void
print_pct(double v)
{
	if (isnan(v))
		printf(" %5s", "-");
	else
		printf(" %4.0f%%", v * 100);
}

static void
print_open_row(const char *label, const char *order, const double *v)
{
	printf("%-4s %-6s", label, order);
	for (unsigned c = 0; c < N_CFG; c++)
		printf(" %8.0f", v[A_NS + c]);
	printf(" ");
	print_pct(v[B_SAME]);
	print_pct(v[C_SAME]);
	print_pct(v[D_SAME]);
	printf("  %6.0f\n", v[E_CALLBACKS]);
	fflush(stdout);
}

static void
print_notif_table(const struct bench *b, const struct rep_result *res,
		  const struct summary *s)
{
	printf("\nnotifications: %llu churn iterations (create, write, close, "
	       "rename, unlink) = %llu events expected\n"
	       "per side; events/s from the first to the last event; churn: "
	       "operations/s the worker made\n",
	       (unsigned long long)b->cfg.churn,
	       (unsigned long long)(b->cfg.churn * OPS_PER_ITERATION));
	printf("%-4s %-6s %10s %10s %10s %10s  %7s %4s  %7s %4s %4s\n", "rep", "first",
	       "raw ev/s", "flt ev/s", "raw churn", "flt churn", "raw mis", "ovf",
	       "flt mis", "ovf", "drop");
	for (unsigned i = 0; i < b->cfg.reps; i++) {
		const double *v = res[i].v;

		printf("%-4u %-6s %10.0f %10.0f %10.0f %10.0f  %7.0f %4.0f  %7.0f %4.0f "
		       "%4.0f\n",
		       i + 1, res[i].raw_first ? "raw" : "fltmgr", v[RAW_RATE],
		       v[FLT_RATE], v[RAW_CHURN_RATE], v[FLT_CHURN_RATE], v[RAW_MISSING],
		       v[RAW_OVERFLOWS], v[FLT_MISSING], v[FLT_OVERFLOWS],
		       v[FLT_DROPPED]);
	}
	printf("%-4s %-6s %10.0f %10.0f %10.0f %10.0f\n", "med", "", s->med[RAW_RATE],
	       s->med[FLT_RATE], s->med[RAW_CHURN_RATE], s->med[FLT_CHURN_RATE]);
}

static void
print_placement_row(const char *label, double same, double cross, bool ratio)
{
	char a[24] = "-", c[24] = "-";

	if (!isnan(same))
		snprintf(a, sizeof(a), ratio ? "%.2fx" : "%.0f", same);
	if (!isnan(cross))
		snprintf(c, sizeof(c), ratio ? "%.2fx" : "%.0f", cross);
	printf("  %-24s %10s %15s\n", label, a, c);
}

static void
print_summary(const struct bench *b, const struct rep_result *res,
	      const struct summary *s)
{
	double gap;

	printf("%-4s %-6s", "min", "");
	for (unsigned c = 0; c < N_CFG; c++)
		printf(" %8.0f", s->min[A_NS + c]);
	printf("\n%-4s %-6s", "max", "");
	for (unsigned c = 0; c < N_CFG; c++)
		printf(" %8.0f", s->max[A_NS + c]);
	printf("\n");
	print_open_row("med", "", s->med);
	print_notif_table(b, res, s);

	printf("\nopen+close, ns per call: median [min - max] over %u reps\n",
	       b->cfg.reps);
	for (unsigned c = 0; c < N_CFG; c++)
		printf("  %-28s %8.0f  [%.0f - %.0f]\n", cfg_label[c], s->med[A_NS + c],
		       s->min[A_NS + c], s->max[A_NS + c]);
	printf("notifications, events/s: median [min - max]\n");
	printf("  %-28s %8.0f  [%.0f - %.0f]\n", "raw reader", s->med[RAW_RATE],
	       s->min[RAW_RATE], s->max[RAW_RATE]);
	printf("  %-28s %8.0f  [%.0f - %.0f]\n", "fltmgr", s->med[FLT_RATE],
	       s->min[FLT_RATE], s->max[FLT_RATE]);
	if (s->med[RAW_RATE] >= PRODUCER_BOUND * s->med[RAW_CHURN_RATE])
		printf("  note: the raw reader kept pace with the worker (its rate is "
		       "the churn's), so\n  it could do more; the ratio below is "
		       "against what this churn offered.\n");

	printf("\nratios of the medians (and, for reading them, the ratio within "
	       "each rep:\nmedian [min - max]):\n");
	for (unsigned k = 0; k < N_RATIOS; k++)
		printf("  %-29s %5.2fx  goal %s %.2fx  %s   per rep %.2fx [%.2f - "
		       "%.2f]\n",
		       ratio_def[k].label, s->ratio[k],
		       ratio_def[k].at_most ? "<=" : ">=", ratio_def[k].goal,
		       verdict(s->pass[k]), s->rr_med[k], s->rr_min[k], s->rr_max[k]);
	printf("  unreported loss: %s (%u rep%s with events missing and no "
	       "overflow or drop counted)  %s\n",
	       s->unreported_reps ? "YES" : "none", s->unreported_reps,
	       s->unreported_reps == 1 ? "" : "s", verdict(s->pass_loss));

	printf("\nloss, totals over the reps:\n");
	printf("  raw reader: %.0f events missing, %.0f FAN_Q_OVERFLOW\n", s->raw_missing,
	       s->raw_overflows);
	printf("  fltmgr:     %.0f events missing, %.0f overflows, %.0f dropped, "
	       "%.0f FLT_OP_OVERFLOW callbacks\n",
	       s->flt_missing, s->flt_overflows, s->flt_dropped, s->flt_overflow_cbs);

	printf("\nchecks:\n");
	printf("  (e) verdict cache: callbacks per rep median %.0f, max %.0f; "
	       "timed calls that\n      reached user space: max %.0f; cache "
	       "inserts per rep: median %.0f  %s\n",
	       s->med[E_CALLBACKS], s->max_e_callbacks, s->max_e_seen,
	       s->med[E_CACHE_INSERTS], s->cache_ok ? "ok" : "CACHE NOT EFFECTIVE");
	printf("  (b)-(d): timed calls no listener saw: max %.0f  %s\n", s->max_unseen,
	       s->max_unseen == 0 ? "ok" : "WRONG");

	printf("\nopen+close by placement (mean ns per call; median over the reps "
	       "with >= %d%% of\nthe calls there; no goal, for reading the ratios "
	       "above):\n",
	       PLACEMENT_MIN_PCT);
	printf("  %-24s %10s %15s\n", "", "same CPU", "different CPUs");
	print_placement_row("(b) raw", s->med[B_SAME_NS], s->med[B_CROSS_NS], false);
	print_placement_row("(c) fltmgr, 1 filter", s->med[C_SAME_NS], s->med[C_CROSS_NS],
			    false);
	print_placement_row("(d) fltmgr, 3 filters", s->med[D_SAME_NS],
			    s->med[D_CROSS_NS], false);
	print_placement_row("(c)/(b)", s->ratio_same[0], s->ratio_cross[0], true);
	print_placement_row("(d)/(b)", s->ratio_same[1], s->ratio_cross[1], true);
	gap = fmax(fabs(s->med[B_SAME] - s->med[C_SAME]),
		   fabs(s->med[B_SAME] - s->med[D_SAME])) *
	      100;
	if (gap > PLACEMENT_WARN_PCT)
		printf("\nnote: the same-cpu shares of (b) and (c)/(d) differ by "
		       "%.0f points, so the\nratios against (b) compare CPU "
		       "placements as much as code; see the\nby-placement table, "
		       "or use --pin.\n",
		       gap);
	fflush(stdout);
}

static const char *
json_bool(bool v)
{
	return v ? "true" : "false";
}

static void
json_number(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.4f", v);
}

static void
json_cols(FILE *f, const char *key, const double *v, bool last)
{
	fprintf(f, "  \"%s\": {\n", key);
	for (unsigned c = 0; c < N_COLS; c++) {
		fprintf(f, "    \"%s\": ", col_json[c]);
		json_number(f, c < B_SAME ? round(v[c]) : v[c]);
		fprintf(f, "%s\n", c + 1 < N_COLS ? "," : "");
	}
	fprintf(f, "  }%s\n", last ? "" : ",");
}

static int
write_json(const char *path, const struct bench *b, const struct rep_result *res,
	   const struct summary *s)
{
	const struct config *cfg = &b->cfg;
	FILE *f;
	unsigned c, i;
	int r = 0;

	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"{\n  \"reps\": %u,\n  \"opens\": %llu,\n  \"open_warmup\": %u,\n"
		"  \"churn\": %llu,\n  \"events_expected\": %llu,\n  \"pinned\": %s,\n",
		cfg->reps, (unsigned long long)cfg->opens, open_warmup(cfg->opens),
		(unsigned long long)cfg->churn,
		(unsigned long long)(cfg->churn * OPS_PER_ITERATION),
		json_bool(cfg->pin));
	if (cfg->pin)
		fprintf(f, "  \"cpu_listener\": %d,\n  \"cpu_worker\": %d,\n",
			cfg->cpu_listener, cfg->cpu_worker);
	json_cols(f, "median", s->med, false);
	json_cols(f, "min", s->min, false);
	json_cols(f, "max", s->max, false);
	fprintf(f, "  \"ratio\": {\n");
	for (c = 0; c < N_RATIOS; c++) {
		fprintf(f, "    \"%s\": ", ratio_def[c].json);
		json_number(f, s->ratio[c]);
		fprintf(f, ",\n");
	}
	fprintf(f, "    \"c_over_b_same_cpu\": ");
	json_number(f, s->ratio_same[0]);
	fprintf(f, ",\n    \"c_over_b_cross_cpu\": ");
	json_number(f, s->ratio_cross[0]);
	fprintf(f, ",\n    \"d_over_b_same_cpu\": ");
	json_number(f, s->ratio_same[1]);
	fprintf(f, ",\n    \"d_over_b_cross_cpu\": ");
	json_number(f, s->ratio_cross[1]);
	fprintf(f, "\n  },\n  \"ratio_per_rep\": {\n");
	for (c = 0; c < N_RATIOS; c++) {
		fprintf(f, "    \"%s\": { \"median\": ", ratio_def[c].json);
		json_number(f, s->rr_med[c]);
		fprintf(f, ", \"min\": ");
		json_number(f, s->rr_min[c]);
		fprintf(f, ", \"max\": ");
		json_number(f, s->rr_max[c]);
		fprintf(f, ", \"values\": [");
		for (i = 0; i < cfg->reps; i++) {
			fprintf(f, "%s", i ? ", " : "");
			json_number(f, s->rr[c][i]);
		}
		fprintf(f, "] }%s\n", c + 1 < N_RATIOS ? "," : "");
	}
	fprintf(f, "  },\n  \"goal\": {\n");
	for (c = 0; c < N_RATIOS; c++)
		fprintf(f, "    \"%s_%s\": %.2f,\n", ratio_def[c].json,
			ratio_def[c].at_most ? "max" : "min", ratio_def[c].goal);
	fprintf(f, "    \"unreported_loss_max\": 0\n  },\n  \"pass\": {\n");
	for (c = 0; c < N_RATIOS; c++)
		fprintf(f, "    \"%s\": %s,\n", ratio_def[c].json, json_bool(s->pass[c]));
	fprintf(f, "    \"no_unreported_loss\": %s\n  },\n", json_bool(s->pass_loss));
	fprintf(f,
		"  \"loss\": {\n    \"raw_missing\": %.0f,\n    \"raw_overflows\": "
		"%.0f,\n"
		"    \"fltmgr_missing\": %.0f,\n    \"fltmgr_overflows\": %.0f,\n"
		"    \"fltmgr_dropped\": %.0f,\n    \"fltmgr_overflow_callbacks\": "
		"%.0f,\n"
		"    \"unreported_reps\": %u\n  },\n",
		s->raw_missing, s->raw_overflows, s->flt_missing, s->flt_overflows,
		s->flt_dropped, s->flt_overflow_cbs, s->unreported_reps);
	fprintf(f, "  \"cache_effective\": %s,\n", json_bool(s->cache_ok));
	fprintf(f, "  \"per_rep\": {\n    \"order\": [");
	for (i = 0; i < cfg->reps; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "", res[i].order);
	fprintf(f, "],\n    \"notif_first\": [");
	for (i = 0; i < cfg->reps; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "",
			res[i].raw_first ? "raw" : "fltmgr");
	fprintf(f, "],\n");
	for (c = 0; c < N_COLS; c++) {
		fprintf(f, "    \"%s\": [", col_json[c]);
		for (i = 0; i < cfg->reps; i++) {
			fprintf(f, "%s", i ? ", " : "");
			json_number(f, c < B_SAME ? round(res[i].v[c]) : res[i].v[c]);
		}
		fprintf(f, "]%s\n", c + 1 < N_COLS ? "," : "");
	}
	fprintf(f, "  }\n}\n");
	if (ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

/* ------------------------------------------------------------------ */
/* Setup and main                                                       */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: engine_bench [--reps R] [--opens N] [--churn M] [--json FILE]\n"
		"                    [--pin]\n"
		"  --reps R      repetitions; medians are over these (%d)\n"
		"  --opens N     timed open+close calls per configuration and rep (%d)\n"
		"  --churn M     churn iterations per notification run, 5 events "
		"each (%d)\n"
		"  --json FILE   also write medians, ratios, loss, per-rep values\n"
		"  --pin         listeners on one CPU, the opener on another\n"
		"Runs as root, in a private mount namespace on its own tmpfs.\n",
		DEFAULT_REPS, DEFAULT_OPENS, DEFAULT_CHURN);
}

static int
parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "opens", required_argument, NULL, 'n' },
		{ "churn", required_argument, NULL, 'c' },
		{ "json", required_argument, NULL, 'j' },
		{ "pin", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int c;

	cfg->reps = DEFAULT_REPS;
	cfg->opens = DEFAULT_OPENS;
	cfg->churn = DEFAULT_CHURN;
	cfg->json_path = NULL;
	cfg->pin = false;
	cfg->cpu_listener = cfg->cpu_worker = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_count("reps", optarg, MAX_REPS, &v) < 0)
				return -EINVAL;
			cfg->reps = (unsigned)v;
			break;
		case 'n':
			if (parse_count("opens", optarg, MAX_COUNT, &v) < 0)
				return -EINVAL;
			cfg->opens = v;
			break;
		case 'c':
			if (parse_count("churn", optarg, MAX_COUNT, &v) < 0)
				return -EINVAL;
			cfg->churn = v;
			break;
		case 'j':
			cfg->json_path = optarg;
			break;
		case 'p':
			cfg->pin = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "engine_bench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/*
 * A private mount namespace and a tmpfs in it: the file to open, the churn
 * directory, fltmgr's runtime directory. Nothing outside is watched.
 */
static int
fs_setup(struct bench *b)
{
	static const char content[4096] = { 'x' };
	int fd, r;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		r = -errno;
		fprintf(stderr, "engine_bench: private mount namespace: %s\n",
			err_str(r));
		return r;
	}
	snprintf(b->mnt, sizeof(b->mnt), "/tmp/fltmgr-engine-bench.XXXXXX");
	if (!mkdtemp(b->mnt)) {
		r = -errno;
		b->mnt[0] = '\0';
		fprintf(stderr, "engine_bench: mkdtemp: %s\n", err_str(r));
		return r;
	}
	if (mount("fltmgr-bench", b->mnt, "tmpfs", 0, "mode=0755,size=64m") < 0) {
		r = -errno;
		fprintf(stderr, "engine_bench: mount tmpfs on %s: %s\n", b->mnt,
			err_str(r));
		return r;
	}
	b->mounted = true;
	snprintf(b->target, sizeof(b->target), "%s/target", b->mnt);
	snprintf(b->churn_dir, sizeof(b->churn_dir), "%s/churn", b->mnt);
	snprintf(b->wake, sizeof(b->wake), "%s/.wake", b->churn_dir);
	snprintf(b->run_dir, sizeof(b->run_dir), "%s/run", b->mnt);
	if (mkdir(b->churn_dir, 0755) < 0 || mkdir(b->run_dir, 0755) < 0)
		goto fail;
	fd = open(b->target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	r = write_full(fd, content, sizeof(content));
	close(fd);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	b->mnt_fd = open(b->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->mnt_fd < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	fprintf(stderr, "engine_bench: populating %s: %s\n", b->mnt, err_str(r));
	return r;
}

static void
fs_teardown(struct bench *b)
{
	if (b->mnt_fd >= 0)
		close(b->mnt_fd);
	b->mnt_fd = -1;
	if (b->mounted && umount2(b->mnt, MNT_DETACH) < 0)
		fprintf(stderr, "engine_bench: umount %s: %s\n", b->mnt, strerror(errno));
	if (b->mnt[0] && rmdir(b->mnt) < 0)
		fprintf(stderr, "engine_bench: rmdir %s: %s\n", b->mnt, strerror(errno));
}

/*
 * Reaps the worker. It exits once its command pipe is closed; if it has not
 * after CHILD_EXIT_MS it is killed, and that is reported.
 */
static int
wait_child(pid_t pid)
{
	int64_t deadline = now_ns() + (int64_t)CHILD_EXIT_MS * 1000000;
	bool killed = false;
	int status;
	pid_t w;

	for (;;) {
		w = waitpid(pid, &status, killed ? 0 : WNOHANG);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == pid)
			break;
		if (now_ns() < deadline) {
			sleep_ms(10);
			continue;
		}
		fprintf(stderr,
			"engine_bench: worker did not exit within %d ms, "
			"killing it\n",
			CHILD_EXIT_MS);
		kill(pid, SIGKILL);
		killed = true;
	}
	if (killed)
		return -ETIMEDOUT;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		fprintf(stderr, "engine_bench: worker exited with status %d\n",
			WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		fprintf(stderr, "engine_bench: worker killed by signal %d\n",
			WTERMSIG(status));
	return -ECHILD;
}

/* Forks the worker while this process has no threads yet. */
static int
worker_spawn(struct bench *b)
{
	int cmd[2], res[2];
	pid_t pid;
	int r;

	if (pipe2(cmd, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(res, O_CLOEXEC) < 0) {
		r = -errno;
		close(cmd[0]);
		close(cmd[1]);
		return r;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(cmd[0]);
		close(cmd[1]);
		close(res[0]);
		close(res[1]);
		return r;
	}
	if (pid == 0) {
		close(cmd[1]);
		close(res[0]);
		close(b->mnt_fd);
		r = 0;
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != b->self)
			r = -ESRCH;
		if (r == 0 && b->cfg.pin)
			r = pin_to_cpu(b->cfg.cpu_worker);
		if (r == 0)
			r = worker_main(b, cmd[0], res[1]);
		if (r < 0)
			fprintf(stderr, "engine_bench: worker: %s\n", err_str(r));
		close(cmd[0]);
		close(res[1]);
		_exit(r < 0);
	}
	close(cmd[0]);
	close(res[1]);
	b->worker = pid;
	b->cmd_fd = cmd[1];
	b->res_fd = res[0];
	return 0;
}

static int
run(struct bench *b, struct rep_result *res)
{
	struct summary s;
	char label[16];
	unsigned i;
	int r = 0;

	print_header(b);
	for (i = 0; i < b->cfg.reps; i++) {
		r = run_rep(b, i, &res[i]);
		if (r < 0)
			return r;
		snprintf(label, sizeof(label), "%u", i + 1);
		print_open_row(label, res[i].order, res[i].v);
	}
	summarize(res, b->cfg.reps, &s);
	print_summary(b, res, &s);
	if (b->cfg.json_path) {
		r = write_json(b->cfg.json_path, b, res, &s);
		if (r < 0)
			fprintf(stderr, "engine_bench: write %s: %s\n", b->cfg.json_path,
				err_str(r));
		else
			printf("\nwrote %s\n", b->cfg.json_path);
	}
	return r;
}

int
main(int argc, char **argv)
{
	static struct rep_result res[MAX_REPS];
	static struct bench b = { .mnt_fd = -1, .cmd_fd = -1, .res_fd = -1 };
	int r, rc = 1;

	if (parse_args(argc, argv, &b.cfg) < 0)
		return 2;
	if (geteuid() != 0) {
		fprintf(stderr,
			"engine_bench: must run as root (fanotify permission "
			"events, FAN_MARK_FILESYSTEM and a private mount namespace "
			"need CAP_SYS_ADMIN)\n");
		return 1;
	}
	if (b.cfg.pin) {
		r = pick_cpus(&b.cfg.cpu_listener, &b.cfg.cpu_worker);
		if (r < 0) {
			fprintf(stderr, "engine_bench: --pin needs two usable CPUs: %s\n",
				err_str(r));
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	b.self = getpid();
	g_shm = mmap(NULL, sizeof(*g_shm), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_shm == MAP_FAILED) {
		perror("engine_bench: mmap");
		return 1;
	}
	atomic_init(&g_shm->opener_cpu, -1);
	atomic_init(&g_shm->last_same, -1);
	b.shm = g_shm;
	if (fs_setup(&b) < 0)
		goto out;
	r = worker_spawn(&b);
	if (r < 0) {
		fprintf(stderr, "engine_bench: fork: %s\n", err_str(r));
		goto out;
	}
	if (b.cfg.pin) {
		r = pin_to_cpu(b.cfg.cpu_listener);
		if (r < 0) {
			fprintf(stderr, "engine_bench: pin to CPU %d: %s\n",
				b.cfg.cpu_listener, err_str(r));
			goto out;
		}
	}
	if (run(&b, res) == 0)
		rc = 0;
out:
	/* Closing the command pipe lets the worker exit. */
	if (b.cmd_fd >= 0)
		close(b.cmd_fd);
	if (b.res_fd >= 0)
		close(b.res_fd);
	if (b.worker > 0 && wait_child(b.worker) < 0)
		rc = 1;
	fs_teardown(&b);
	munmap(g_shm, sizeof(*g_shm));
	return rc;
}
