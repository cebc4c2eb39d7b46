/* SPDX-License-Identifier: MIT */
/*
 * port_bench.c — communication-port benchmark.
 *
 * Measures fltmgr in its deployment shape: this process is the filter
 * (manager, filter, server port in a private mkdtemp runtime dir) and a
 * child forked before any thread or the manager exists is the service,
 * linking libfltuser and looping on filter_get_message() /
 * filter_reply_message(). The same child, same thread, is also the peer of
 * the raw baseline on a SOCK_SEQPACKET socketpair, handed from one
 * transport to the other by a SWITCH message: wherever the scheduler runs
 * it, it runs there for both sides.
 *
 * Each repetition runs, in this order so that noise hits both sides:
 *   1. raw round trip:    N x (64-byte ping, 16-byte pong), per-call latency
 *   2. fltmgr round trip: N x flt_send_message() with a reply buffer
 *   3. raw throughput:    M x 64-byte records, then one ping that the peer
 *                         answers with the count it received
 *   4. fltmgr throughput: M x flt_send_message(reply = NULL), then one
 *                         message with a reply carrying the count
 * and the summary reports medians over repetitions and fltmgr/raw ratios
 * against the goals (round trip <= 1.25x, notifications >= 0.5x).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#include <fltmgr/filter.h>
#include <fltmgr/user.h>

#define MSG_SIZE        64
#define REPLY_SIZE      16
#define SEND_TIMEOUT_MS 5000
#define PORT_NAME       "port-bench"
#define RTT_WARMUP_MAX  1000
#define TPUT_WARMUP_MAX 5000
#define CHILD_EXIT_MS   5000
/* A placement's p50 is shown if it has this many samples and share. */
#define PLACEMENT_MIN_SAMPLES 100
#define PLACEMENT_MIN_PCT     5
/* Same-CPU shares further apart than this make the ratio suspect. */
#define PLACEMENT_WARN_PCT 20

#define GOAL_RTT_RATIO  1.25
#define GOAL_TPUT_RATIO 0.5

#define DEFAULT_REPS      7
#define DEFAULT_RTT_COUNT 30000
#define DEFAULT_MSG_COUNT 300000
#define MAX_REPS          1000
#define MAX_COUNT         100000000

/*
 * First byte of every message, raw or fltmgr. The peer counts DATA, and
 * answers PING and SWITCH with a struct pong; SWITCH also moves it from
 * the raw socket to the fltmgr port or back.
 */
enum msg_type {
	MSG_PING = 'P',
	MSG_DATA = 'D',
	MSG_SWITCH = 'S',
};

/* The reply, to PING and SWITCH, raw or fltmgr. */
struct pong {
	uint64_t count; /* DATA messages since the previous reply */
	int32_t cpu;    /* CPU the peer answered on */
	int32_t pad;
};
_Static_assert(sizeof(struct pong) == REPLY_SIZE, "reply size");

struct config {
	unsigned reps;
	size_t rtt_count;
	size_t msg_count;
	const char *json_path;
	bool pin;
	int cpu_filter;
	int cpu_service;
};

/*
 * One round-trip run: latencies of the round trips in which the peer
 * answered on the CPU the sender was on are at lat[0, same_cpu), the
 * others at lat[same_cpu, n).
 */
struct rtt_run {
	int64_t *lat;
	size_t same_cpu;
};

/*
 * What one repetition yields; the summary is the median of each. The five
 * round-trip values of a side are consecutive, in this order (rtt_stats()).
 * Latencies in ns, shares as fractions, rates in messages per second;
 * NAN for a per-placement p50 with too few samples in that placement.
 */
enum col {
	RAW_P50,
	RAW_P99,
	RAW_SAME,
	RAW_SAME_P50,
	RAW_CROSS_P50,
	FLT_P50,
	FLT_P99,
	FLT_SAME,
	FLT_SAME_P50,
	FLT_CROSS_P50,
	RAW_RATE,
	FLT_RATE,
	N_COLS
};

struct rep_result {
	double v[N_COLS];
};

struct summary {
	double med[N_COLS];
	double ratio_p50, ratio_p99, ratio_tput;
	double ratio_same, ratio_cross; /* NAN when not measured */
	bool pass_p50, pass_p99, pass_tput;
};

static flt_filter *g_filter;
static flt_port g_client;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/* Sends one record; a SOCK_SEQPACKET send is all or nothing. */
static int
rec_send(int sock, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(sock, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Receives one record; returns its length, or -ECONNRESET at the end. */
static int
rec_recv(int sock, void *buf, size_t cap)
{
	ssize_t n;

	do
		n = recv(sock, buf, cap, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	return (int)n;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double
percentile(const int64_t *sorted, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;

	if (rank == 0)
		rank = 1;
	return (double)sorted[rank - 1];
}

/* Median of the values that are not NAN; NAN if there are none. */
static double
median(const double *v, size_t n)
{
	double tmp[MAX_REPS];
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (!isnan(v[i]))
			tmp[k++] = v[i];
	if (k == 0)
		return NAN;
	qsort(tmp, k, sizeof(*tmp), cmp_double);
	if (k % 2)
		return tmp[k / 2];
	return (tmp[k / 2 - 1] + tmp[k / 2]) / 2;
}

/* ------------------------------------------------------------------ */
/* The peer process                                                    */

static void
make_pong(struct pong *p, uint64_t *count)
{
	memset(p, 0, sizeof(*p));
	p->count = *count;
	p->cpu = sched_getcpu();
	*count = 0;
}

/* Serves the raw socket until SWITCH (returns 1) or end of stream (0). */
static int
peer_raw_phase(int sock)
{
	unsigned char buf[MSG_SIZE * 2];
	struct pong pong;
	uint64_t count = 0;
	int r;

	for (;;) {
		r = rec_recv(sock, buf, sizeof(buf));
		if (r == -ECONNRESET)
			return 0;
		if (r < 0)
			return r;
		if (buf[0] == MSG_DATA) {
			count++;
			continue;
		}
		make_pong(&pong, &count);
		r = rec_send(sock, &pong, sizeof(pong));
		if (r < 0)
			return r;
		if (buf[0] == MSG_SWITCH)
			return 1;
	}
}

/*
 * Serves the fltmgr port the way a service does: take messages, reply to
 * those that want a reply. Returns 1 after SWITCH, 0 when the filter side
 * disconnected.
 */
static int
peer_service_phase(filter_port *port)
{
	struct filter_message_header hdr;
	unsigned char buf[MSG_SIZE * 2];
	struct pong pong;
	uint64_t count = 0;
	int r;

	for (;;) {
		r = filter_get_message(port, &hdr, buf, sizeof(buf), -1);
		if (r == -ENOTCONN)
			return 0;
		if (r < 0)
			return r;
		if (hdr.fd >= 0)
			close(hdr.fd);
		if (hdr.reply_length == 0) {
			count++;
			continue;
		}
		make_pong(&pong, &count);
		r = filter_reply_message(port, hdr.message_id, 0, &pong, sizeof(pong));
		/* The filter tearing down right after taking the last reply
		 * may show up here rather than in filter_get_message(). */
		if (r == -ENOTCONN)
			return 0;
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0 && buf[0] == MSG_SWITCH)
			return 1;
	}
}

static int
peer_main(const char *path, int raw_sock, int go_fd, int ready_fd)
{
	filter_port *port;
	char go;
	int r;

	/* The parent writes one byte once the port exists, or gives up. */
	if (read_full(go_fd, &go, 1) < 0)
		return 0;
	r = filter_connect_communication_port(path, 0, NULL, 0, &port);
	if (write_full(ready_fd, &r, sizeof(r)) < 0 && r >= 0)
		r = -EPIPE;
	if (r < 0)
		return r;
	/* Phases alternate at the parent's SWITCH, starting with raw. */
	for (;;) {
		r = peer_raw_phase(raw_sock);
		if (r <= 0)
			break;
		r = peer_service_phase(port);
		if (r <= 0)
			break;
	}
	filter_close_port(port);
	return r;
}

/* ------------------------------------------------------------------ */
/* Filter side                                                         */

static int
on_connect(flt_port client_port, void *server_cookie, const void *context,
	   size_t context_len, const struct flt_peer *peer, void **ret_connection_cookie)
{
	(void)server_cookie;
	(void)context;
	(void)context_len;
	(void)peer;
	g_client = client_port;
	*ret_connection_cookie = NULL;
	return 0;
}

static void
on_disconnect(void *connection_cookie)
{
	(void)connection_cookie;
	flt_close_client_port(g_filter, &g_client);
}

static void
log_quiet(void *userdata, int level, const char *message)
{
	(void)userdata;
	if (level <= FLT_LOG_WARNING)
		fprintf(stderr, "port_bench: fltmgr: %s\n", message);
}

/* ------------------------------------------------------------------ */
/* Measurements                                                        */

static size_t
rtt_warmup(size_t n)
{
	return n / 10 < RTT_WARMUP_MAX ? n / 10 : RTT_WARMUP_MAX;
}

static size_t
tput_warmup(size_t m)
{
	return m / 20 < TPUT_WARMUP_MAX ? m / 20 : TPUT_WARMUP_MAX;
}

/*
 * Sends one 64-byte message of `type` to the peer. With ret_pong, waits
 * for the peer's reply; without, it is a one-way message.
 */
typedef int (*xfer_fn)(int sock, int type, struct pong *ret_pong);

static int
raw_xfer(int sock, int type, struct pong *ret_pong)
{
	unsigned char msg[MSG_SIZE];
	struct pong pong[2]; /* room to notice an oversized reply */
	int r;

	memset(msg, 0, sizeof(msg));
	msg[0] = (unsigned char)type;
	r = rec_send(sock, msg, sizeof(msg));
	if (r < 0 || !ret_pong)
		return r;
	r = rec_recv(sock, pong, sizeof(pong));
	if (r < 0)
		return r;
	if (r != sizeof(pong[0]))
		return -EPROTO;
	*ret_pong = pong[0];
	return 0;
}

static int
flt_xfer(int sock, int type, struct pong *ret_pong)
{
	unsigned char msg[MSG_SIZE];
	struct pong pong[2]; /* room to notice an oversized reply */
	size_t len = sizeof(pong);
	int r;

	(void)sock;
	memset(msg, 0, sizeof(msg));
	msg[0] = (unsigned char)type;
	if (!ret_pong)
		return flt_send_message(g_filter, &g_client, msg, sizeof(msg), NULL, NULL,
					SEND_TIMEOUT_MS);
	r = flt_send_message(g_filter, &g_client, msg, sizeof(msg), pong, &len,
			     SEND_TIMEOUT_MS);
	if (r < 0)
		return r;
	if (len != sizeof(pong[0]))
		return -EPROTO;
	*ret_pong = pong[0];
	return 0;
}

/* Hands the peer over to the other transport. */
static int
peer_switch(xfer_fn xfer, int sock)
{
	struct pong pong;

	return xfer(sock, MSG_SWITCH, &pong);
}

static int
roundtrip(xfer_fn xfer, int sock, size_t n, struct rtt_run *run)
{
	size_t i, warm = rtt_warmup(n), same = 0, cross = n;
	struct pong pong;
	int64_t t0, t1;
	int r;

	for (i = 0; i < warm + n; i++) {
		t0 = now_ns();
		r = xfer(sock, MSG_PING, &pong);
		t1 = now_ns();
		if (r < 0)
			return r;
		if (i < warm)
			continue;
		if (pong.cpu == sched_getcpu())
			run->lat[same++] = t1 - t0;
		else
			run->lat[--cross] = t1 - t0;
	}
	run->same_cpu = same;
	return 0;
}

/* m one-way messages, then a ping whose reply must count all of them. */
static int
burst(xfer_fn xfer, int sock, size_t m)
{
	struct pong pong;
	size_t i;
	int r;

	for (i = 0; i < m; i++) {
		r = xfer(sock, MSG_DATA, NULL);
		if (r < 0)
			return r;
	}
	r = xfer(sock, MSG_PING, &pong);
	if (r < 0)
		return r;
	return pong.count == m ? 0 : -EPROTO;
}

static int
throughput(xfer_fn xfer, int sock, size_t m, double *ret_rate)
{
	int64_t t0, t1;
	int r;

	r = burst(xfer, sock, tput_warmup(m));
	if (r < 0)
		return r;
	t0 = now_ns();
	r = burst(xfer, sock, m);
	t1 = now_ns();
	if (r < 0)
		return r;
	*ret_rate = (double)m * 1e9 / (double)(t1 - t0);
	return 0;
}

/* p50 of k latencies if they are enough to stand for a placement. */
static double
class_p50(int64_t *lat, size_t k, size_t n)
{
	if (k < PLACEMENT_MIN_SAMPLES || k * 100 < n * PLACEMENT_MIN_PCT)
		return NAN;
	qsort(lat, k, sizeof(*lat), cmp_i64);
	return percentile(lat, k, 50);
}

/* Fills v[0..4]: p50, p99, same-CPU share, same-CPU p50, cross-CPU p50. */
static void
rtt_stats(struct rtt_run *run, size_t n, double *v)
{
	size_t same = run->same_cpu;

	v[3] = class_p50(run->lat, same, n);
	v[4] = class_p50(run->lat + same, n - same, n);
	qsort(run->lat, n, sizeof(*run->lat), cmp_i64);
	v[0] = percentile(run->lat, n, 50);
	v[1] = percentile(run->lat, n, 99);
	v[2] = (double)same / (double)n;
}

/*
 * One repetition. The peer starts and ends it on the raw socket; every
 * step hands it over to the transport the next step measures.
 */
static int
run_rep(const struct config *cfg, int raw_sock, struct rtt_run *run,
	struct rep_result *res)
{
	const char *what;
	int r;

	what = "raw round trip";
	r = roundtrip(raw_xfer, raw_sock, cfg->rtt_count, run);
	if (r < 0)
		goto fail;
	rtt_stats(run, cfg->rtt_count, &res->v[RAW_P50]);

	what = "fltmgr round trip";
	r = peer_switch(raw_xfer, raw_sock);
	if (r == 0)
		r = roundtrip(flt_xfer, -1, cfg->rtt_count, run);
	if (r < 0)
		goto fail;
	rtt_stats(run, cfg->rtt_count, &res->v[FLT_P50]);

	what = "raw throughput";
	r = peer_switch(flt_xfer, -1);
	if (r == 0)
		r = throughput(raw_xfer, raw_sock, cfg->msg_count, &res->v[RAW_RATE]);
	if (r < 0)
		goto fail;

	what = "fltmgr throughput";
	r = peer_switch(raw_xfer, raw_sock);
	if (r == 0)
		r = throughput(flt_xfer, -1, cfg->msg_count, &res->v[FLT_RATE]);
	if (r == 0)
		r = peer_switch(flt_xfer, -1);
	if (r < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "port_bench: %s: %s\n", what, err_str(r));
	return r;
}

/* ------------------------------------------------------------------ */
/* Reporting                                                           */

static const char *const col_json[N_COLS] = {
	"raw_rtt_p50_ns",
	"raw_rtt_p99_ns",
	"raw_rtt_same_cpu",
	"raw_rtt_same_cpu_p50_ns",
	"raw_rtt_cross_cpu_p50_ns",
	"fltmgr_rtt_p50_ns",
	"fltmgr_rtt_p99_ns",
	"fltmgr_rtt_same_cpu",
	"fltmgr_rtt_same_cpu_p50_ns",
	"fltmgr_rtt_cross_cpu_p50_ns",
	"raw_msgs_per_s",
	"fltmgr_msgs_per_s",
};

static void
summarize(const struct rep_result *res, unsigned reps, struct summary *s)
{
	double v[MAX_REPS];
	unsigned c, i;

	for (c = 0; c < N_COLS; c++) {
		for (i = 0; i < reps; i++)
			v[i] = res[i].v[c];
		s->med[c] = median(v, reps);
	}
	s->ratio_p50 = s->med[FLT_P50] / s->med[RAW_P50];
	s->ratio_p99 = s->med[FLT_P99] / s->med[RAW_P99];
	s->ratio_tput = s->med[FLT_RATE] / s->med[RAW_RATE];
	s->ratio_same = s->med[FLT_SAME_P50] / s->med[RAW_SAME_P50];
	s->ratio_cross = s->med[FLT_CROSS_P50] / s->med[RAW_CROSS_P50];
	s->pass_p50 = s->ratio_p50 <= GOAL_RTT_RATIO;
	s->pass_p99 = s->ratio_p99 <= GOAL_RTT_RATIO;
	s->pass_tput = s->ratio_tput >= GOAL_TPUT_RATIO;
}

static void
print_header(const struct config *cfg)
{
	printf("port_bench: reps=%u rtt-count=%zu msg-count=%zu msg=%d B "
	       "reply=%d B cpus-online=%ld\n",
	       cfg->reps, cfg->rtt_count, cfg->msg_count, MSG_SIZE, REPLY_SIZE,
	       sysconf(_SC_NPROCESSORS_ONLN));
	if (cfg->pin)
		printf("pinning: ON (filter process on CPU %d, service/raw "
		       "peer process on CPU %d)\n",
		       cfg->cpu_filter, cfg->cpu_service);
	else
		printf("pinning: off (the scheduler places both processes)\n");
	printf("\n%-6s  %-26s  %-26s  %s\n", "", "raw round trip (us)",
	       "fltmgr round trip (us)", "one-way (msgs/s)");
	printf("%-6s  %7s %8s %9s  %7s %8s %9s  %10s %10s\n", "rep", "p50", "p99",
	       "same-cpu", "p50", "p99", "same-cpu", "raw", "fltmgr");
	fflush(stdout);
}

static void
print_row(const char *label, const double *v)
{
	printf("%-6s  %7.2f %8.2f %8.0f%%  %7.2f %8.2f %8.0f%%  %10.0f %10.0f"
	       "\n",
	       label, v[RAW_P50] / 1e3, v[RAW_P99] / 1e3, v[RAW_SAME] * 100,
	       v[FLT_P50] / 1e3, v[FLT_P99] / 1e3, v[FLT_SAME] * 100, v[RAW_RATE],
	       v[FLT_RATE]);
	fflush(stdout);
}

static const char *
verdict(bool pass)
{
	return pass ? "PASS" : "MISS";
}

/* One line of the by-placement table; "-" where a side has no value. */
static void
print_placement(const char *label, double raw, double flt, double ratio)
{
	char a[16] = "-", b[16] = "-", c[16] = "-";

	if (!isnan(raw))
		snprintf(a, sizeof(a), "%.2f", raw / 1e3);
	if (!isnan(flt))
		snprintf(b, sizeof(b), "%.2f", flt / 1e3);
	if (!isnan(ratio))
		snprintf(c, sizeof(c), "%.2fx", ratio);
	printf("  %-16s %9s %11s %8s\n", label, a, b, c);
}

static void
print_summary(const struct summary *s)
{
	double gap = fabs(s->med[RAW_SAME] - s->med[FLT_SAME]) * 100;

	print_row("median", s->med);
	printf("\nratios of the medians, fltmgr / raw:\n");
	printf("  round trip p50  %6.2fx  goal <= %.2fx  %s\n", s->ratio_p50,
	       GOAL_RTT_RATIO, verdict(s->pass_p50));
	printf("  round trip p99  %6.2fx  goal <= %.2fx  %s\n", s->ratio_p99,
	       GOAL_RTT_RATIO, verdict(s->pass_p99));
	printf("  notifications   %6.2fx  goal >= %.2fx  %s\n", s->ratio_tput,
	       GOAL_TPUT_RATIO, verdict(s->pass_tput));
	printf("\nround trip p50 by placement (us, median over the reps "
	       "with >= %d%% of\nthe samples there; no goal, for reading "
	       "the ratio above):\n",
	       PLACEMENT_MIN_PCT);
	printf("  %-16s %9s %11s %8s\n", "", "raw", "fltmgr", "ratio");
	print_placement("same CPU", s->med[RAW_SAME_P50], s->med[FLT_SAME_P50],
			s->ratio_same);
	print_placement("different CPUs", s->med[RAW_CROSS_P50], s->med[FLT_CROSS_P50],
			s->ratio_cross);
	if (gap > PLACEMENT_WARN_PCT)
		printf("\nnote: the same-cpu shares of raw and fltmgr differ "
		       "by %.0f points, so the\nround-trip ratios above "
		       "compare CPU placements as much as code; see the\n"
		       "by-placement table, or use --pin.\n",
		       gap);
	fflush(stdout);
}

static const char *
json_bool(bool b)
{
	return b ? "true" : "false";
}

/* null for NAN; shares and ratios with four decimals, the rest one. */
static void
json_number(FILE *f, double v, bool fine)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, fine ? "%.4f" : "%.1f", v);
}

static bool
col_is_share(unsigned c)
{
	return c == RAW_SAME || c == FLT_SAME;
}

static int
write_json(const char *path, const struct config *cfg, const struct rep_result *res,
	   const struct summary *s)
{
	const struct {
		const char *name;
		double v;
	} ratios[] = {
		{ "rtt_p50", s->ratio_p50 },
		{ "rtt_p99", s->ratio_p99 },
		{ "throughput", s->ratio_tput },
		{ "rtt_same_cpu_p50", s->ratio_same },
		{ "rtt_cross_cpu_p50", s->ratio_cross },
	};
	const size_t n_ratios = sizeof(ratios) / sizeof(ratios[0]);
	unsigned c, i;
	FILE *f;
	int r = 0;

	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"{\n  \"reps\": %u,\n  \"rtt_count\": %zu,\n"
		"  \"msg_count\": %zu,\n  \"msg_size\": %d,\n"
		"  \"reply_size\": %d,\n  \"pinned\": %s,\n",
		cfg->reps, cfg->rtt_count, cfg->msg_count, MSG_SIZE, REPLY_SIZE,
		json_bool(cfg->pin));
	if (cfg->pin)
		fprintf(f, "  \"cpu_filter\": %d,\n  \"cpu_service\": %d,\n",
			cfg->cpu_filter, cfg->cpu_service);
	fprintf(f, "  \"median\": {\n");
	for (c = 0; c < N_COLS; c++) {
		fprintf(f, "    \"%s\": ", col_json[c]);
		json_number(f, s->med[c], col_is_share(c));
		fprintf(f, "%s\n", c + 1 < N_COLS ? "," : "");
	}
	fprintf(f, "  },\n  \"ratio\": {\n");
	for (i = 0; i < n_ratios; i++) {
		fprintf(f, "    \"%s\": ", ratios[i].name);
		json_number(f, ratios[i].v, true);
		fprintf(f, "%s\n", i + 1 < n_ratios ? "," : "");
	}
	fprintf(f,
		"  },\n  \"goal\": {\n    \"rtt_max_ratio\": %.2f,\n"
		"    \"throughput_min_ratio\": %.2f\n  },\n",
		GOAL_RTT_RATIO, GOAL_TPUT_RATIO);
	fprintf(f,
		"  \"pass\": {\n    \"rtt_p50\": %s,\n"
		"    \"rtt_p99\": %s,\n    \"throughput\": %s\n  },\n",
		json_bool(s->pass_p50), json_bool(s->pass_p99), json_bool(s->pass_tput));
	fprintf(f, "  \"per_rep\": {\n");
	for (c = 0; c < N_COLS; c++) {
		fprintf(f, "    \"%s\": [", col_json[c]);
		for (i = 0; i < cfg->reps; i++) {
			fprintf(f, "%s", i ? ", " : "");
			json_number(f, res[i].v[c], col_is_share(c));
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
/* Setup and main                                                      */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: port_bench [--reps R] [--rtt-count N] [--msg-count M]\n"
		"                  [--json FILE] [--pin]\n"
		"  --reps R       repetitions; medians are over these (%d)\n"
		"  --rtt-count N  round trips per rep, each side (%d)\n"
		"  --msg-count M  one-way messages per rep, each side (%d)\n"
		"  --json FILE    also write medians, ratios, per-rep values\n"
		"  --pin          pin filter and service to two CPUs\n",
		DEFAULT_REPS, DEFAULT_RTT_COUNT, DEFAULT_MSG_COUNT);
}

static int
parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "rtt-count", required_argument, NULL, 'n' },
		{ "msg-count", required_argument, NULL, 'm' },
		{ "json", required_argument, NULL, 'j' },
		{ "pin", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int c;

	cfg->reps = DEFAULT_REPS;
	cfg->rtt_count = DEFAULT_RTT_COUNT;
	cfg->msg_count = DEFAULT_MSG_COUNT;
	cfg->json_path = NULL;
	cfg->pin = false;
	cfg->cpu_filter = cfg->cpu_service = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_count("reps", optarg, MAX_REPS, &v) < 0)
				return -EINVAL;
			cfg->reps = (unsigned)v;
			break;
		case 'n':
			if (parse_count("rtt-count", optarg, MAX_COUNT, &v) < 0)
				return -EINVAL;
			cfg->rtt_count = (size_t)v;
			break;
		case 'm':
			if (parse_count("msg-count", optarg, MAX_COUNT, &v) < 0)
				return -EINVAL;
			cfg->msg_count = (size_t)v;
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
		fprintf(stderr, "port_bench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "port_bench: remove %s: %s\n", path, strerror(errno));
	return 0;
}

/*
 * The runtime dir is ours alone. The manager leaves the port's lock file
 * (.<name>.lock) behind, so empty it before removing it.
 */
static void
remove_tree(const char *dir)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * Reaps the peer. It exits by itself once both its connections are gone;
 * if it has not after CHILD_EXIT_MS it is killed, and that is reported.
 */
static int
wait_child(pid_t pid, const char *what)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
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
			nanosleep(&tick, NULL);
			continue;
		}
		fprintf(stderr,
			"port_bench: %s did not exit within %d ms, "
			"killing it\n",
			what, CHILD_EXIT_MS);
		kill(pid, SIGKILL);
		killed = true;
	}
	if (killed)
		return -ETIMEDOUT;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		fprintf(stderr, "port_bench: %s exited with status %d\n", what,
			WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		fprintf(stderr, "port_bench: %s killed by signal %d\n", what,
			WTERMSIG(status));
	return -ECHILD;
}

/*
 * Manager, filter and server port; then hands the go byte to the peer and
 * waits until it has connected (the connect callback has run by then).
 */
static int
filter_setup(const char *dir, int go_fd, int ready_fd, flt_manager **ret_manager)
{
	const struct flt_manager_options mopts = {
		.runtime_dir = dir,
		.log_level = FLT_LOG_WARNING,
		.log_func = log_quiet,
	};
	const struct flt_registration reg = {
		.name = "port-bench",
		.altitude = "385100",
	};
	const struct flt_port_attributes attr = {
		.name = PORT_NAME,
		.mode = 0600,
	};
	flt_manager *manager;
	flt_port server = FLT_PORT_NULL;
	int r, status;

	r = flt_manager_new(&mopts, &manager);
	if (r < 0) {
		fprintf(stderr, "port_bench: flt_manager_new: %s\n", err_str(r));
		return r;
	}
	r = flt_register_filter(manager, &reg, &g_filter);
	if (r < 0) {
		fprintf(stderr, "port_bench: flt_register_filter: %s\n", err_str(r));
		goto fail;
	}
	r = flt_create_communication_port(g_filter, &server, &attr, NULL, on_connect,
					  on_disconnect, NULL, 1);
	if (r < 0) {
		fprintf(stderr, "port_bench: flt_create_communication_port: %s\n",
			err_str(r));
		goto fail;
	}
	r = write_full(go_fd, "g", 1);
	if (r < 0)
		goto fail;
	r = read_full(ready_fd, &status, sizeof(status));
	if (r == 0 && status < 0)
		r = status;
	if (r < 0) {
		fprintf(stderr, "port_bench: service connect: %s\n", err_str(r));
		goto fail;
	}
	/* No more connections needed; the socket file goes away. */
	flt_close_communication_port(g_filter, &server);
	*ret_manager = manager;
	return 0;
fail:
	flt_manager_free(manager);
	g_filter = NULL;
	return r;
}

static int
run(const struct config *cfg, int raw_sock, struct rep_result *res)
{
	struct rtt_run rtt;
	struct summary s;
	char label[16];
	unsigned i;
	int r = 0;

	rtt.lat = calloc(cfg->rtt_count, sizeof(*rtt.lat));
	if (!rtt.lat)
		return -ENOMEM;
	print_header(cfg);
	for (i = 0; i < cfg->reps; i++) {
		r = run_rep(cfg, raw_sock, &rtt, &res[i]);
		if (r < 0)
			break;
		snprintf(label, sizeof(label), "%u", i + 1);
		print_row(label, res[i].v);
	}
	free(rtt.lat);
	if (r < 0)
		return r;
	summarize(res, cfg->reps, &s);
	print_summary(&s);
	if (cfg->json_path) {
		r = write_json(cfg->json_path, cfg, res, &s);
		if (r < 0)
			fprintf(stderr, "port_bench: write %s: %s\n", cfg->json_path,
				err_str(r));
		else
			printf("\nwrote %s\n", cfg->json_path);
	}
	return r;
}

int
main(int argc, char **argv)
{
	static struct rep_result res[MAX_REPS];
	char dir[] = "/tmp/fltmgr-bench.XXXXXX";
	char path[sizeof(dir) + sizeof(PORT_NAME) + 1];
	struct config cfg;
	flt_manager *manager = NULL;
	int sp[2] = { -1, -1 }, go[2] = { -1, -1 }, ready[2] = { -1, -1 };
	pid_t parent = getpid(), peer = -1;
	int r, rc = 1;

	if (parse_args(argc, argv, &cfg) < 0)
		return 2;
	if (cfg.pin) {
		r = pick_cpus(&cfg.cpu_filter, &cfg.cpu_service);
		if (r < 0) {
			fprintf(stderr,
				"port_bench: --pin needs two usable "
				"CPUs: %s\n",
				err_str(r));
			return 1;
		}
	}
	if (!mkdtemp(dir)) {
		perror("port_bench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, PORT_NAME);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
	    pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
		perror("port_bench: socketpair/pipe");
		goto out;
	}

	/* Forked while this process has no threads and no manager yet. */
	fflush(NULL);
	peer = fork();
	if (peer < 0) {
		perror("port_bench: fork");
		goto out;
	}
	if (peer == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		close(sp[0]);
		close(go[1]);
		close(ready[0]);
		r = cfg.pin ? pin_to_cpu(cfg.cpu_service) : 0;
		if (r == 0)
			r = peer_main(path, sp[1], go[0], ready[1]);
		if (r < 0)
			fprintf(stderr, "port_bench: peer process: %s\n", err_str(r));
		_exit(r < 0);
	}
	close(sp[1]);
	close(go[0]);
	close(ready[1]);
	sp[1] = go[0] = ready[1] = -1;

	if (cfg.pin) {
		r = pin_to_cpu(cfg.cpu_filter);
		if (r < 0) {
			fprintf(stderr, "port_bench: pin to CPU %d: %s\n", cfg.cpu_filter,
				err_str(r));
			goto out;
		}
	}
	if (filter_setup(dir, go[1], ready[0], &manager) < 0)
		goto out;
	if (run(&cfg, sp[0], res) == 0)
		rc = 0;
out:
	/*
	 * Unregistering disconnects the service side, closing the socketpair
	 * ends the raw side, closing "go" releases a peer still waiting for
	 * it: whatever it was doing, the peer exits.
	 */
	flt_manager_free(manager);
	g_filter = NULL;
	for (r = 0; r < 2; r++) {
		if (sp[r] >= 0)
			close(sp[r]);
		if (go[r] >= 0)
			close(go[r]);
		if (ready[r] >= 0)
			close(ready[r]);
	}
	if (peer > 0 && wait_child(peer, "peer process") < 0)
		rc = 1;
	remove_tree(dir);
	return rc;
}
