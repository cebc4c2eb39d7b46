/* SPDX-License-Identifier: MIT */
/*
 * worker.c — the scanning threads. Each takes one request at a time from
 * the port (filter_get_message), scans the descriptor that came with it,
 * replies, and closes the descriptor. The filter keeps up to threads x
 * outstanding requests queued on the connection, so a thread that
 * finishes a scan finds the next request already waiting.
 *
 * The file is read with pread() from the passed descriptor — never opened
 * by path, and reading it makes no fanotify event — into a per-thread
 * buffer (one pread() of size + 1 bytes when the file has not grown), and
 * scanned under the per-file time limit by the thread's own YR_SCANNERs
 * (one per YR_RULES of the set: the sources, and each compiled file),
 * made once per rule set rather than once per scan (yr_rules_scan_mem()
 * would build and free one each time), with the external variables of
 * this file defined first (externals.c). Reading rather than mapping
 * means a file truncated during the scan cannot raise SIGBUS, so YARA's
 * per-scan signal handlers are turned off.
 *
 * Each match is counted for its rule and recorded with the action
 * policy.c decided for it; the first denying match ends the scan (unless
 * --report-only), so a denial costs no more than before. The reply goes
 * first, the log after (report.c), with the opener's exe read before the
 * reply, while the opener still waits. A file over --max-size gets the
 * --oversize verdict unread, a scan over --scan-timeout the
 * --timeout-verdict; either, unless it is the filter's default, is sent
 * with SCANNER_REPLY_NO_CACHE, and both are logged. Any other failure
 * answers SCANNER_ERROR: the filter then gives its default verdict.
 *
 * An exec's file is read under a read lease (F_SETLEASE F_RDLCK on the
 * descriptor the filter sent, which is the filter side's own open file):
 * taking it fails if anyone has the file open for writing, and then the
 * answer is SCANNER_WRITERS (the filter denies the exec: a writer could
 * change what runs after any scan, until the kernel denies writes to it
 * just after the last verdict); held, it makes every later open for
 * writing wait, with write access already taken, so an exec that gets as
 * far as denying writes meanwhile fails with ETXTBSY, until the last copy
 * of the file is closed: the filter side's after it has answered the
 * kernel, ours --exec-hold ms after the reply (hold.c, which says why).
 * The lease is never released explicitly.
 *
 * Idle workers wait in a blocking filter_get_message(): one recvmsg()
 * each, and the kernel wakes exactly one of them per request (a poll()
 * would wake them all, and all but one would find nothing to read).
 * svc_workers_stop() ends those waits by shutting down the reading side
 * of the port's message socket: the filter then sends no new request to
 * this service (it moves them to another or answers them), while scans
 * in progress still reply on their own channel.
 *
 * A worker owns each descriptor it receives until it closes it, its
 * buffer, its YR_SCANNER and the reference to the rule set that scanner
 * was made for; after a reload it moves to the new set at its next scan
 * (until then an idle worker keeps the old set alive). It leaves when the
 * service stops it or when the connection ends, which it reports on the
 * session's eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yara.h>

#include "svc.h"
#define PROF_TAG "service"
#include "prof.h"

struct worker {
	struct service *s;
	uint8_t msg[SCANNER_REQ_MAX];
	uint8_t *buf;
	size_t cap;
	struct svc_rules *rules; /* the set `scanners` were made for */
	YR_SCANNER **scanners;   /* one per YR_RULES of the set */
	unsigned n_scanners;
	struct svc_file_facts facts;
};

/* What one request came to: the reply, and what to log after it. */
struct outcome {
	enum scanner_verdict v;
	unsigned flags;    /* SCANNER_REPLY_* */
	const char *limit; /* "timeout", "oversize", or NULL */
	uint64_t size;
	int64_t ms;
	struct svc_decision d;
};

/* The callback's view of one YR_RULES of the set being scanned. */
struct scan_ctx {
	struct svc_rules *r;
	const YR_RULE *table;
	unsigned first;
	bool report_only;
	struct svc_decision *d;
};

static int
on_scan(YR_SCAN_CONTEXT *ctx, int message, void *data, void *user)
{
	struct scan_ctx *c = user;
	const YR_RULE *rule = data;
	struct svc_rule_info *info;
	enum svc_action a;

	(void)ctx;
	if (message != CALLBACK_MSG_RULE_MATCHING)
		return CALLBACK_CONTINUE;
	info = svc_rules_info(c->r, c->first + (unsigned)(rule - c->table));
	atomic_fetch_add_explicit(&info->matches, 1, memory_order_relaxed);
	a = (enum svc_action)info->action;
	if (a == SVC_ACT_IGNORE)
		return CALLBACK_CONTINUE;
	if (c->d->n < SVC_MATCHES_MAX)
		c->d->m[c->d->n++] = (struct svc_match){ .rule = rule, .action = a };
	else
		c->d->more++;
	if (a == SVC_ACT_DENY && !c->report_only) {
		c->d->denied = true;
		return CALLBACK_ABORT; /* one denial decides */
	}
	return CALLBACK_CONTINUE;
}

/* Makes w->buf at least want bytes (at most max + 1). */
static int
buf_reserve(struct worker *w, size_t want, uint64_t max)
{
	size_t cap = w->cap ? w->cap : 1 << 16;
	uint8_t *b;

	while (cap < want)
		cap *= 2;
	if (cap > max + 1)
		cap = (size_t)max + 1;
	if (cap <= w->cap)
		return 0;
	b = realloc(w->buf, cap);
	if (!b)
		return -ENOMEM;
	w->buf = b;
	w->cap = cap;
	return 0;
}

/* Reads the whole file (at most max + 1 bytes) into w->buf. `size` is
 * what fstat said: asking for one byte more lets a file that has not
 * grown be read in one pread(). A short read ends the file only once
 * `size` bytes are in (some filesystems return short reads before the
 * end); otherwise reading goes on until pread() returns 0. */
static int
read_all(struct worker *w, int fd, uint64_t size, uint64_t max, size_t *ret_len)
{
	size_t len = 0;
	int r = buf_reserve(w, size < max ? (size_t)size + 1 : (size_t)max + 1, max);

	if (r < 0)
		return r;
	for (;;) {
		size_t want;
		ssize_t n;

		if (len == w->cap) {
			r = buf_reserve(w, w->cap * 2, max);
			if (r < 0)
				return r;
			if (len == w->cap)
				break; /* over max */
		}
		want = w->cap - len;
		n = pread(fd, w->buf + len, want, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		len += (size_t)n;
		if (n == 0 || ((size_t)n < want && len >= size))
			break;
	}
	*ret_len = len;
	return 0;
}

static void
scanners_free(struct worker *w)
{
	for (unsigned i = 0; i < w->n_scanners; i++)
		if (w->scanners[i])
			yr_scanner_destroy(w->scanners[i]);
	free(w->scanners);
	w->scanners = NULL;
	w->n_scanners = 0;
}

/* Keeps w->scanners made for the current rule set. */
static int
scanner_sync(struct worker *w)
{
	struct svc_rules *rules = svc_rules_get(w->s);
	unsigned n = svc_rules_nsets(rules);
	YR_SCANNER **v;

	if (rules == w->rules && w->scanners) {
		svc_rules_unref(rules);
		return 0;
	}
	v = calloc(n, sizeof(*v));
	if (!v) {
		svc_rules_unref(rules);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		YR_SCANNER *sc;

		if (yr_scanner_create(svc_rules_set(rules, i)->yr, &sc) !=
		    ERROR_SUCCESS) {
			for (unsigned k = 0; k < i; k++)
				yr_scanner_destroy(v[k]);
			free(v);
			svc_rules_unref(rules);
			return -ENOMEM;
		}
		/* No try/catch: YARA would install and remove SIGSEGV/SIGBUS
		 * handlers around every scan (two sigaction() and two
		 * sigprocmask() calls, most of a small file's scan time) to
		 * survive a mapped file shrinking under it. The data scanned
		 * here is our own buffer. Not fast mode: it stops counting a
		 * string at its first match, so a condition on a count
		 * (#a > 3) could differ from what `yara` finds. */
		yr_scanner_set_flags(sc, SCAN_FLAGS_NO_TRYCATCH);
		yr_scanner_set_timeout(sc, w->s->o->scan_timeout);
		v[i] = sc;
	}
	scanners_free(w);
	if (w->rules)
		svc_rules_unref(w->rules);
	w->scanners = v;
	w->n_scanners = n;
	w->rules = rules;
	return 0;
}

static void
note_concurrency(struct service *s, int delta)
{
	uint64_t now =
		atomic_fetch_add(&s->ctr.scanning, (uint64_t)delta) + (uint64_t)delta;
	uint64_t max = atomic_load(&s->ctr.max_concurrent);

	while (delta > 0 && now > max &&
	       !atomic_compare_exchange_weak(&s->ctr.max_concurrent, &max, now))
		;
}

/* For an exec: takes a read lease on fd (see the top of the file).
 * Returns 1 if it holds one, -1 if someone has the file open for writing,
 * 0 if a lease cannot be taken for another reason (no CAP_LEASE and not
 * the owner, a file system without leases, leases disabled): counted and
 * reported once, the exec is then scanned without that protection. */
static int
exec_lease(struct service *s, int fd)
{
	static atomic_bool told;
	int e;

	if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0)
		return 1;
	e = errno;
	if (e == EAGAIN) {
		atomic_fetch_add(&s->ctr.exec_writers, 1);
		return -1;
	}
	atomic_fetch_add(&s->ctr.lease_errors, 1);
	if (!atomic_exchange(&told, true))
		fprintf(stderr,
			"scanner: cannot take a read lease on an executed file (%s): "
			"execs are scanned without protection against writers that "
			"hold the file open (docs/scanner.md section 4)\n",
			strerror(e));
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A verdict of policy (--oversize, --timeout-verdict): never cached; the
 * filter's default verdict (SCANNER_ERROR) is never cached anyway. */
static void
limit_verdict(struct outcome *out, const char *what, int verdict, uint64_t size,
	      int64_t ms)
{
	out->v = (enum scanner_verdict)verdict;
	out->flags = verdict == SCANNER_ERROR ? 0 : SCANNER_REPLY_NO_CACHE;
	out->limit = what;
	out->size = size;
	out->ms = ms;
}

static void
scan_file(struct worker *w, int fd, const struct scanner_request *q, struct outcome *out)
{
	struct service *s = w->s;
	struct stat sb;
	size_t len = 0;
	int64_t t0;
	int r = ERROR_SUCCESS;

	if (fd < 0 || fstat(fd, &sb) < 0) {
		atomic_fetch_add(&s->ctr.errors, 1);
		out->v = SCANNER_ERROR;
		return;
	}
	if (!S_ISREG(sb.st_mode)) {
		atomic_fetch_add(&s->ctr.not_regular, 1);
		out->v = SCANNER_CLEAN;
		return;
	}
	if ((uint64_t)sb.st_size > s->o->max_size) {
		atomic_fetch_add(&s->ctr.oversize, 1);
		limit_verdict(out, "oversize", s->o->oversize_verdict,
			      (uint64_t)sb.st_size, 0);
		return;
	}
	note_concurrency(s, 1);
	r = read_all(w, fd, (uint64_t)sb.st_size, s->o->max_size, &len);
	PROF_MARK(q->ino, PROF_SVC_READ);
	if (r == 0 && len > s->o->max_size) { /* it grew */
		note_concurrency(s, -1);
		atomic_fetch_add(&s->ctr.oversize, 1);
		limit_verdict(out, "oversize", s->o->oversize_verdict, len, 0);
		return;
	}
	if (r < 0 || scanner_sync(w) < 0) {
		note_concurrency(s, -1);
		atomic_fetch_add(&s->ctr.errors, 1);
		out->v = SCANNER_ERROR;
		return;
	}
	svc_externals_facts(&w->facts, q, sb.st_uid, w->buf, len);
	t0 = now_ms();
	for (unsigned i = 0; i < w->n_scanners && !out->d.denied; i++) {
		struct svc_yset *set = svc_rules_set(w->rules, i);
		struct scan_ctx c = {
			.r = w->rules,
			.table = ((YR_RULES *)set->yr)->rules_table,
			.first = set->first,
			.report_only = s->o->report_only,
			.d = &out->d,
		};

		svc_externals_define_scan(w->scanners[i], &w->facts);
		yr_scanner_set_callback(w->scanners[i], on_scan, &c);
		r = yr_scanner_scan_mem(w->scanners[i], w->buf, len);
		if (r != ERROR_SUCCESS)
			break;
	}
	PROF_MARK(q->ino, PROF_SVC_SCANNED);
	note_concurrency(s, -1);
	atomic_fetch_add(&s->ctr.scanned, 1);
	if (out->d.n)
		svc_report_exe(q, out->d.exe, sizeof(out->d.exe));
	if (out->d.denied) { /* a denial found before any failure stands */
		atomic_fetch_add(&s->ctr.infected, 1);
		out->v = SCANNER_INFECTED;
		return;
	}
	if (r == ERROR_SCAN_TIMEOUT) {
		atomic_fetch_add(&s->ctr.timeouts, 1);
		limit_verdict(out, "timeout", s->o->timeout_verdict, len, now_ms() - t0);
		return;
	}
	if (r != ERROR_SUCCESS) {
		atomic_fetch_add(&s->ctr.errors, 1);
		out->v = SCANNER_ERROR;
		return;
	}
	out->v = SCANNER_CLEAN;
	atomic_fetch_add(&s->ctr.clean, 1);
	for (unsigned i = 0; i < out->d.n; i++)
		if (out->d.m[i].action == SVC_ACT_DENY) {
			atomic_fetch_add(&s->ctr.would_deny, 1);
			break;
		}
	if (out->d.n)
		atomic_fetch_add(&s->ctr.reported, 1);
}

/* *ret_leased: fd now carries our read lease (an exec nobody writes). */
static void
scan(struct worker *w, int fd, const struct scanner_request *q, bool *ret_leased,
     struct outcome *out)
{
	/* The lease first: held before the first byte is read. */
	bool writers = false;

	*ret_leased = false;
	if (q->op == 1 && fd >= 0) {
		int r = exec_lease(w->s, fd);

		writers = r < 0;
		*ret_leased = r > 0;
	}
	scan_file(w, fd, q, out);
	if (writers && out->v != SCANNER_INFECTED) {
		out->v = SCANNER_WRITERS;
		out->flags = 0;
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct service *s = w->s;

	while (!atomic_load(&s->stop_workers)) {
		struct filter_message_header h;
		struct scanner_request q = { 0 };
		uint8_t reply[SCANNER_REPLY_SIZE];
		struct outcome out = { .v = SCANNER_ERROR };
		bool leased = false, decoded = true;
		int r = filter_get_message(s->port, &h, w->msg, sizeof(w->msg), -1);
#ifdef SCANNER_PROFILE
		int64_t got_ns = prof_now();
#endif

		if (r == -EMSGSIZE) { /* the library answered it */
			atomic_fetch_add(&s->ctr.bad, 1);
			if (h.fd >= 0)
				close(h.fd);
			continue;
		}
		if (r < 0 && atomic_load(&s->stop_workers))
			break; /* svc_workers_stop() ended the wait */
		if (r < 0) {
			uint64_t one = 1;

			/* The connection is gone: tell the session. */
			if (write(s->lost_fd, &one, sizeof(one)) < 0) {
				/* an eventfd write cannot fail short of
				 * overflow; the session also polls POLLHUP */
			}
			break;
		}
		if (scanner_request_decode(w->msg, (size_t)r, &q) < 0) {
			atomic_fetch_add(&s->ctr.bad, 1);
			decoded = false;
		} else {
			PROF_MARK_AT(q.ino, PROF_SVC_GOT, got_ns);
			scan(w, h.fd, &q, &leased, &out);
		}
		/* A leased exec's file stays open a while (hold.c), so that
		 * no writer gets in before the exec denies writes to it. */
		if (h.fd >= 0 && !leased)
			close(h.fd);
		if (h.reply_length) {
			scanner_reply_encode_flags(out.v, out.flags, reply);
			/* Without waiting for the filter's ack: nothing here
			 * depends on it (a reply the filter gave up on is
			 * counted there, late_replies), and the wait cost a
			 * wake-up per scan before the next request is read. */
			(void)filter_reply_message_ex(s->port, h.message_id, 0, reply,
						      sizeof(reply), FILTER_REPLY_NO_ACK);
			PROF_MARK(q.ino, PROF_SVC_REPLY_SENT);
		}
		if (leased)
			svc_hold(s, h.fd, &q);
		else if (decoded && q.op == 0)
			svc_hold_extend(s, &q);
		/* Answered first, then logged (the opener waits for the
		 * reply, not for the log). */
		if (out.d.n)
			svc_report_decision(s, &q, &out.d);
		if (out.limit)
			svc_report_limit(s, &q, out.limit, out.size, out.ms, out.v);
	}
	scanners_free(w);
	if (w->rules)
		svc_rules_unref(w->rules);
	free(w->buf);
	free(w);
	return NULL;
}

int
svc_workers_start(struct service *s)
{
	atomic_store(&s->stop_workers, false);
	s->threads = calloc(s->o->threads, sizeof(*s->threads));
	if (!s->threads)
		return -ENOMEM;
	for (unsigned i = 0; i < s->o->threads; i++) {
		struct worker *w = calloc(1, sizeof(*w));
		int r;

		if (!w)
			return -ENOMEM;
		w->s = s;
		r = pthread_create(&s->threads[i], NULL, worker_main, w);
		if (r) {
			free(w);
			return -r;
		}
		s->n_threads++;
	}
	return 0;
}

void
svc_workers_stop(struct service *s)
{
	atomic_store(&s->stop_workers, true);
	/* Wakes every worker blocked in filter_get_message() (it returns
	 * -ENOTCONN); replies still go out on the reply channel. */
	if (s->port && s->n_threads)
		(void)shutdown(filter_port_fd(s->port), SHUT_RD);
	for (unsigned i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	free(s->threads);
	s->threads = NULL;
	s->n_threads = 0;
}
