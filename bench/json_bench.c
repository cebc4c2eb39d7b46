/* SPDX-License-Identifier: MIT */
/*
 * json_bench.c — what one JSON Lines record costs the minispy service to
 * format, three ways, on the same realistic set of records in one run:
 *
 *   (a) jsonc-tree   the former service code (tests/format_jsonc.c): a new json-c
 *                    object tree per record, gmtime_r + strftime for the
 *                    time, json_object_to_json_string_ext + fputs
 *   (b) jsonc-reuse  json-c used as cheaply as it goes: one object tree
 *                    kept for all records, its values set in place
 *                    (json_object_set_*), serialized with
 *                    json_object_to_json_string_length (its print buffer is
 *                    reused), PLAIN | NOSLASHESCAPE, fwrite; the computed
 *                    time of (c)
 *   (c) writer       the service now (format.c + json_writer.c): a
 *                    streaming encoder into one reused buffer, fwrite
 *
 * Each writes to a FILE on /dev/null with the service's 64 KiB buffer.
 * Before timing, every record's line from (b) and (c) is checked against
 * (a): (c) byte for byte, (b) as an equal json-c object (its member order
 * may differ). Also timed alone: the two ways of formatting the time.
 *
 * One process, one thread. Per repetition the three run in a rotating
 * order, each over the whole set PASSES times after one untimed pass;
 * thread CPU time (CLOCK_THREAD_CPUTIME_ID) per record is the headline,
 * since the machine is shared (wall time is printed too). Not root; no
 * files but /dev/null. See bench/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "format_jsonc.h"
#include "spy.h"

#define N_VARIANTS    3
#define OUTPUT_BUFFER 65536 /* as output.c */
#define FLAGS         (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const variant_name[N_VARIANTS] = { "jsonc-tree", "jsonc-reuse",
						      "writer" };

/* ---- the record set ---- */

struct set {
	struct minispy_record *rec;
	size_t n;
	char *names; /* the storage the records' strings point into */
	size_t names_used, names_cap;
	/* what it holds */
	size_t loss, rename, unverified, non_ascii, escapes, not_utf8;
};

static const char *
keep(struct set *s, const char *str)
{
	size_t len = strlen(str) + 1;
	char *p;

	if (s->names_used + len > s->names_cap) {
		fprintf(stderr, "json_bench: name storage full\n");
		exit(1);
	}
	p = s->names + s->names_used;
	memcpy(p, str, len);
	s->names_used += len;
	return p;
}

static unsigned
pick(unsigned *seed, unsigned n)
{
	return (unsigned)rand_r(seed) % n;
}

/* A file name as programs make them: a stem of letters, digits, '-' and
 * '_' and an extension; now and then an odd one (counted in s). */
static void
file_name(struct set *s, unsigned *seed, char *buf, size_t size)
{
	static const char *const ext[] = { ".c",  ".o",  ".log", ".tmp",  ".json", "",
					   ".so", ".py", ".pyc", ".html", ".lock" };
	static const char *const odd_valid[] = {
		"caf\xc3\xa9",                              /* café */
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",     /* 日本語 */
		"r\xc3\xa9sum\xc3\xa9 (1)",                 /* résumé (1) */
		"photo \xf0\x9f\x93\xb7",                   /* a 4-byte emoji */
		"\xd0\xbe\xd1\x82\xd1\x87\xd1\x91\xd1\x82", /* отчёт */
	};
	static const char *const odd_escape[] = {
		"new\nline", "quo\"ted\"", "back\\slash", "tab\there", "bell\x07",
	};
	static const char *const odd_invalid[] = {
		"caf\xe9",               /* Latin-1 */
		"\xff\xfe-bom",          /* bytes that are never UTF-8 */
		"cut\xe2\x82",           /* a sequence cut short */
		"over\xc0\xaflong",      /* an overlong '/' */
		"sur\xed\xa0\x80rogate", /* an encoded surrogate */
	};
	static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned r = pick(seed, 1000), len = 6 + pick(seed, 18), i;

	if (r < 20) { /* 2%: valid UTF-8 beyond ASCII */
		snprintf(buf, size, "%s%u.txt", odd_valid[pick(seed, 5)],
			 pick(seed, 100));
		s->non_ascii++;
		return;
	}
	if (r < 30) { /* 1%: characters JSON escapes */
		snprintf(buf, size, "%s%u", odd_escape[pick(seed, 5)], pick(seed, 100));
		s->escapes++;
		return;
	}
	if (r < 40) { /* 1%: not UTF-8 */
		snprintf(buf, size, "%s%u", odd_invalid[pick(seed, 5)], pick(seed, 100));
		s->not_utf8++;
		return;
	}
	for (i = 0; i < len && i + 1 < size; i++)
		buf[i] = abc[pick(seed, sizeof(abc) - 1)];
	snprintf(buf + i, size - i, "%s", ext[pick(seed, sizeof(ext) / sizeof(ext[0]))]);
}

/*
 * n records: 0.5% loss records (each cause), the rest events in the
 * churn's mix (create, open, write, close_write, rename, delete, evenly;
 * 1 in 10 a read or a close instead) on files under a handful of realistic
 * directories, by a handful of programs; 3% not verified (uid, exe and
 * comm null); 2% / 1% / 1% with a name beyond ASCII / with characters
 * JSON escapes / not UTF-8.
 */
static void
make_set(struct set *s, size_t n, unsigned seed)
{
	static const char *const dirs[] = {
		"/home/alice/src/fltmgr/build/src/engine/libfltmgr.so.p",
		"/var/lib/postgresql/15/main/base/16384",
		"/tmp",
		"/home/alice/.cache/mozilla/firefox/x2k9fa1c.default-release/cache2",
		"/var/log/nginx",
		"/srv/data/incoming/2026/11/24",
	};
	static const struct {
		const char *exe, *comm;
	} progs[] = {
		{ "/usr/bin/python3.11", "python3" },
		{ "/usr/lib/postgresql/15/bin/postgres", "postgres" },
		{ "/usr/bin/x86_64-linux-gnu-gcc-12", "cc1" },
		{ "/usr/lib/firefox-esr/firefox-esr", "Cache2 I/O" },
		{ "/usr/sbin/nginx", "nginx" },
		{ "/usr/bin/rsync", "rsync" },
	};
	static const uint16_t ops[] = {
		MINISPY_OP_CREATE,      MINISPY_OP_OPEN,   MINISPY_OP_WRITE,
		MINISPY_OP_CLOSE_WRITE, MINISPY_OP_RENAME, MINISPY_OP_DELETE,
		MINISPY_OP_READ,        MINISPY_OP_CLOSE,
	};
	int64_t t = 1795512067512230114; /* 2026-11-24T09:21:07Z */
	uint64_t seq = 1000000;

	memset(s, 0, sizeof(*s));
	s->n = n;
	s->rec = calloc(n, sizeof(*s->rec));
	s->names_cap = n * 512;
	s->names = malloc(s->names_cap);
	if (!s->rec || !s->names) {
		fprintf(stderr, "json_bench: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		struct minispy_record *r = &s->rec[i];
		char name[128], path[512];
		unsigned d = pick(&seed, 6), p = pick(&seed, 6);

		t += 3000 + pick(&seed, 40000); /* 3-43 us apart */
		if (pick(&seed, 200) == 0) {
			r->type = MINISPY_REC_LOSS;
			r->loss.time_ns = t;
			r->loss.cause = 1 + pick(&seed, 4);
			r->loss.count = 1 + pick(&seed, 5000);
			r->loss.first_seq = seq;
			r->loss.last_seq = seq + r->loss.count - 1;
			if (r->loss.cause == MINISPY_LOSS_KERNEL) {
				r->loss.seq = seq++;
				r->loss.count = r->loss.first_seq = r->loss.last_seq = 0;
			} else {
				seq += r->loss.count;
			}
			s->loss++;
			continue;
		}
		r->type = MINISPY_REC_EVENT;
		r->event.seq = seq++;
		r->event.event_seq = seq * 3 + pick(&seed, 3);
		r->event.time_ns = t;
		r->event.dev = 2049;
		r->event.ino = 131072 + pick(&seed, 1u << 20);
		r->event.pid = 1000 + (int32_t)pick(&seed, 400000);
		r->event.uid = p == 1 ? 114 : 1000;
		r->event.op =
			ops[pick(&seed, 20) < 2 ? 6 + pick(&seed, 2) : pick(&seed, 6)];
		r->event.flags =
			MINISPY_F_VERIFIED | (pick(&seed, 50) == 0 ? MINISPY_F_DIR : 0);
		file_name(s, &seed, name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s", dirs[d], name);
		r->event.path = keep(s, path);
		if (r->event.op == MINISPY_OP_RENAME) {
			file_name(s, &seed, name, sizeof(name));
			snprintf(path, sizeof(path), "%s/%s", dirs[d], name);
			r->event.new_path = keep(s, path);
			s->rename++;
		}
		if (pick(&seed, 100) < 3) { /* the process was gone: unverified */
			r->event.flags &= (uint16_t)~MINISPY_F_VERIFIED;
			r->event.uid = MINISPY_UID_UNKNOWN;
			s->unverified++;
		} else {
			r->event.exe = progs[p].exe;
			r->event.comm = progs[p].comm;
		}
	}
}

/* ---- (b): json-c with one tree, values set in place ---- */

struct reuse {
	struct json_object *event, *loss;
	/* the event's fixed members */
	struct json_object *seq, *time, *op, *path, *pid, *dir, *dev, *ino, *event_seq;
	/* the loss record's */
	struct json_object *l_count, *l_first, *l_last, *l_cause, *l_time;
};

static struct json_object *
member_of(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v || json_object_object_add(o, key, v) < 0) {
		fprintf(stderr, "json_bench: out of memory\n");
		exit(1);
	}
	return v;
}

static void
reuse_init(struct reuse *u)
{
	struct json_object *e = json_object_new_object(), *l = json_object_new_object();

	if (!e || !l)
		exit(1);
	u->event = e;
	u->seq = member_of(e, "seq", json_object_new_uint64(0));
	u->time = member_of(e, "time", json_object_new_string(""));
	u->op = member_of(e, "op", json_object_new_string(""));
	u->path = member_of(e, "path", json_object_new_string(""));
	u->pid = member_of(e, "pid", json_object_new_int(0));
	u->dir = member_of(e, "dir", json_object_new_boolean(0));
	u->dev = member_of(e, "dev", json_object_new_uint64(0));
	u->ino = member_of(e, "ino", json_object_new_uint64(0));
	u->event_seq = member_of(e, "event_seq", json_object_new_uint64(0));
	u->loss = l;
	member_of(l, "op", json_object_new_string("lost"));
	u->l_count = member_of(l, "count", json_object_new_uint64(0));
	u->l_first = member_of(l, "first_seq", json_object_new_uint64(0));
	u->l_last = member_of(l, "last_seq", json_object_new_uint64(0));
	u->l_cause = member_of(l, "cause", json_object_new_string(""));
	u->l_time = member_of(l, "time", json_object_new_string(""));
}

/* Sets string member key of o to s (len bytes), adding it if missing. */
static void
set_string(struct json_object *o, const char *key, const char *s, size_t len)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) && v &&
	    json_object_is_type(v, json_type_string))
		json_object_set_string_len(v, s, (int)len);
	else
		member_of(o, key, json_object_new_string_len(s, (int)len));
}

static void
drop(struct json_object *o, const char *key)
{
	if (json_object_object_get_ex(o, key, NULL))
		json_object_object_del(o, key);
}

/* An optional name member: as set_string(), null, or with KEY_bytes. */
static void
set_name(struct json_object *o, const char *key, const char *bkey, const char *s)
{
	size_t len;

	if (!s) {
		json_object_object_add(o, key, NULL);
		drop(o, bkey);
		return;
	}
	len = strlen(s);
	if (spy_jsonc_utf8_valid(s, len)) {
		set_string(o, key, s, len);
		drop(o, bkey);
	} else {
		char *clean = spy_jsonc_sanitize(s, len), *b64 = spy_jsonc_base64(s, len);

		if (!clean || !b64)
			exit(1);
		set_string(o, key, clean, strlen(clean));
		set_string(o, bkey, b64, strlen(b64));
		free(clean);
		free(b64);
	}
}

static struct json_object *
reuse_fill(struct reuse *u, const struct minispy_record *r)
{
	char t[SPY_RFC3339_SIZE];
	size_t tn;

	if (r->type == MINISPY_REC_LOSS) {
		const struct minispy_loss *l = &r->loss;

		json_object_set_uint64(u->l_count, l->count);
		json_object_set_uint64(u->l_first, l->first_seq);
		json_object_set_uint64(u->l_last, l->last_seq);
		json_object_set_string(u->l_cause, spy_loss_cause_name(l->cause));
		if (minispy_loss_is_notice(l->cause))
			member_of(u->loss, "seq", json_object_new_uint64(l->seq));
		else
			drop(u->loss, "seq");
		tn = spy_format_time_rfc3339(l->time_ns, t);
		json_object_set_string_len(u->l_time, t, (int)tn);
		return u->loss;
	}
	{
		const struct minispy_event *e = &r->event;
		struct json_object *o = u->event, *v;
		const char *op = minispy_op_name(e->op);

		json_object_set_uint64(u->seq, e->seq);
		tn = spy_format_time_rfc3339(e->time_ns, t);
		json_object_set_string_len(u->time, t, (int)tn);
		json_object_set_string_len(u->op, op, (int)strlen(op));
		set_name(o, "path", "path_bytes", e->path);
		if (e->new_path) {
			set_name(o, "new_path", "new_path_bytes", e->new_path);
		} else {
			drop(o, "new_path");
			drop(o, "new_path_bytes");
		}
		json_object_set_int(u->pid, e->pid);
		if ((e->flags & MINISPY_F_VERIFIED) && e->uid != MINISPY_UID_UNKNOWN) {
			if (json_object_object_get_ex(o, "uid", &v) && v)
				json_object_set_int64(v, e->uid);
			else
				member_of(o, "uid", json_object_new_int64(e->uid));
		} else {
			json_object_object_add(o, "uid", NULL);
		}
		set_name(o, "exe", "exe_bytes", e->exe);
		set_name(o, "comm", "comm_bytes", e->comm);
		json_object_set_boolean(u->dir, e->flags & MINISPY_F_DIR);
		json_object_set_uint64(u->dev, e->dev);
		json_object_set_uint64(u->ino, e->ino);
		json_object_set_uint64(u->event_seq, e->event_seq);
		if (e->flags & MINISPY_F_TRUNCATED) {
			if (!json_object_object_get_ex(o, "truncated", NULL))
				member_of(o, "truncated", json_object_new_boolean(1));
		} else {
			drop(o, "truncated");
		}
		return o;
	}
}

static void
reuse_write(struct reuse *u, FILE *f, const struct minispy_record *r)
{
	struct json_object *o = reuse_fill(u, r);
	size_t len;
	const char *s = json_object_to_json_string_length(o, FLAGS, &len);

	fwrite(s, 1, len, f);
	fputc('\n', f);
}

/* ---- checking and timing ---- */

/* (b) and (c) say what (a) says, for every record. */
static void
check_variants(const struct set *s, struct reuse *u, struct json_writer *w)
{
	for (size_t i = 0; i < s->n; i++) {
		struct json_object *ref = spy_jsonc_record(&s->rec[i]), *mine, *b;
		const char *ref_text;

		if (!ref)
			exit(1);
		ref_text = json_object_to_json_string_ext(ref, FLAGS);
		if (spy_format_json(w, &s->rec[i]) < 0 ||
		    w->len != strlen(ref_text) + 1 ||
		    memcmp(w->buf, ref_text, w->len - 1)) {
			fprintf(stderr,
				"json_bench: record %zu: writer and json-c "
				"differ:\n%s\n%s",
				i, ref_text, w->buf);
			exit(1);
		}
		b = reuse_fill(u, &s->rec[i]);
		mine = json_tokener_parse(json_object_to_json_string_ext(b, FLAGS));
		if (!mine || !json_object_equal(mine, ref)) {
			fprintf(stderr,
				"json_bench: record %zu: jsonc-reuse differs:\n%s\n%s\n",
				i, ref_text, json_object_to_json_string_ext(b, FLAGS));
			exit(1);
		}
		json_object_put(mine);
		json_object_put(ref);
	}
}

static int64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
run_pass(int variant, const struct set *s, FILE *f, struct reuse *u,
	 struct json_writer *w)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct minispy_record *r = &s->rec[i];
		int err = 0;

		switch (variant) {
		case 0:
			err = spy_jsonc_format_record(f, r);
			break;
		case 1:
			reuse_write(u, f, r);
			break;
		default:
			err = spy_format_record(f, w, r, true);
		}
		if (err < 0) {
			fprintf(stderr, "json_bench: out of memory\n");
			exit(1);
		}
	}
}

/* ns per record (thread CPU and wall) of passes passes over the set. */
static void
time_variant(int variant, const struct set *s, unsigned passes, FILE *f, struct reuse *u,
	     struct json_writer *w, double *ret_cpu, double *ret_wall)
{
	int64_t c0, t0;

	run_pass(variant, s, f, u, w); /* warm-up */
	fflush(f);
	c0 = cpu_ns();
	t0 = now_ns();
	for (unsigned p = 0; p < passes; p++)
		run_pass(variant, s, f, u, w);
	fflush(f);
	*ret_cpu = (double)(cpu_ns() - c0) / ((double)passes * (double)s->n);
	*ret_wall = (double)(now_ns() - t0) / ((double)passes * (double)s->n);
}

/* ns per call of the two time formattings (thread CPU). */
static void
time_times(const struct set *s, unsigned passes, double *ret_old, double *ret_new)
{
	volatile char sink = 0;
	char buf[64];
	int64_t c0;

	c0 = cpu_ns();
	for (unsigned p = 0; p < passes; p++)
		for (size_t i = 0; i < s->n; i++) {
			spy_jsonc_time_rfc3339(s->rec[i].event.time_ns + p, buf,
					       sizeof(buf));
			sink ^= buf[28];
		}
	*ret_old = (double)(cpu_ns() - c0) / ((double)passes * (double)s->n);
	c0 = cpu_ns();
	for (unsigned p = 0; p < passes; p++)
		for (size_t i = 0; i < s->n; i++) {
			spy_format_time_rfc3339(s->rec[i].event.time_ns + p, buf);
			sink ^= buf[28];
		}
	*ret_new = (double)(cpu_ns() - c0) / ((double)passes * (double)s->n);
	(void)sink;
}

static double
median(double *v, size_t n)
{
	double *c = malloc(n * sizeof(*c)), m;

	if (!c)
		exit(1);
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_double);
	m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

static double
min_of(const double *v, size_t n)
{
	double m = v[0];

	for (size_t i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double
max_of(const double *v, size_t n)
{
	double m = v[0];

	for (size_t i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: json_bench [--reps R] [--records N] [--passes P] [--seed S]\n"
		   "  --reps R      repetitions; medians are over these (7)\n"
		   "  --records N   records in the set (4096)\n"
		   "  --passes P    timed passes over the set per variant and rep (50)\n"
		   "  --seed S      seed of the record set (1)\n");
}

/* The goal: the writer at most half the cost of json-c at its cheapest,
 * else a hand-written encoder is not worth having. */
#define GOAL_WRITER_VS_REUSE 0.50
/* fatrace's whole CPU per event in bench/run-minispy (README). */
#define FATRACE_NS_PER_EVENT 3700.0

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "records", required_argument, NULL, 'n' },
		{ "passes", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long long reps = 7, records = 4096, passes = 50, seed = 1;
	struct json_writer w = JSON_WRITER_INIT;
	struct reuse u;
	struct set s;
	double *cpu[N_VARIANTS], *wall[N_VARIANTS], *ratio_a, *ratio_b, t_old, t_new;
	size_t bytes = 0;
	FILE *f;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int r = 0;

		switch (c) {
		case 'r':
			r = parse_count("reps", optarg, 1000, &reps);
			break;
		case 'n':
			r = parse_count("records", optarg, 1000000, &records);
			break;
		case 'p':
			r = parse_count("passes", optarg, 100000, &passes);
			break;
		case 's':
			r = parse_count("seed", optarg, 0xffffffffu, &seed);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (r < 0)
			return 2;
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	make_set(&s, records, (unsigned)seed);
	reuse_init(&u);
	f = fopen("/dev/null", "we");
	if (!f) {
		perror("json_bench: /dev/null");
		return 1;
	}
	setvbuf(f, NULL, _IOFBF, OUTPUT_BUFFER);
	check_variants(&s, &u, &w);
	for (size_t i = 0; i < s.n; i++) {
		spy_format_json(&w, &s.rec[i]);
		bytes += w.len;
	}
	printf("json_bench: %zu records (%zu loss records, %zu renames, %zu unverified; "
	       "names: %zu beyond ASCII, %zu with JSON escapes, %zu not UTF-8), "
	       "%.0f bytes per line on average\n",
	       s.n, s.loss, s.rename, s.unverified, s.non_ascii, s.escapes, s.not_utf8,
	       (double)bytes / (double)s.n);
	printf("  %llu reps x %llu passes per variant; every line of jsonc-reuse and "
	       "writer "
	       "checked against jsonc-tree first: same\n",
	       reps, passes);
	printf("  ns per record, thread CPU (wall in parentheses); order rotates per "
	       "rep\n\n");
	printf("rep order  %20s %20s %20s   writer/tree writer/reuse\n", variant_name[0],
	       variant_name[1], variant_name[2]);

	for (int v = 0; v < N_VARIANTS; v++) {
		cpu[v] = calloc(reps, sizeof(double));
		wall[v] = calloc(reps, sizeof(double));
		if (!cpu[v] || !wall[v])
			return 1;
	}
	ratio_a = calloc(reps, sizeof(double));
	ratio_b = calloc(reps, sizeof(double));
	if (!ratio_a || !ratio_b)
		return 1;
	for (unsigned long long rep = 0; rep < reps; rep++) {
		char order[N_VARIANTS + 1] = { 0 };

		for (int k = 0; k < N_VARIANTS; k++) {
			int v = (int)((rep + (unsigned long long)k) % N_VARIANTS);

			order[k] = (char)('a' + v);
			time_variant(v, &s, (unsigned)passes, f, &u, &w, &cpu[v][rep],
				     &wall[v][rep]);
		}
		ratio_a[rep] = cpu[2][rep] / cpu[0][rep];
		ratio_b[rep] = cpu[2][rep] / cpu[1][rep];
		printf("%-3llu %-6s", rep + 1, order);
		for (int v = 0; v < N_VARIANTS; v++)
			printf(" %10.0f (%7.0f)", cpu[v][rep], wall[v][rep]);
		printf("   %11.3f %12.3f\n", ratio_a[rep], ratio_b[rep]);
	}

	printf("\nsummary: ns per record, median [min - max] over %llu reps, thread "
	       "CPU\n",
	       reps);
	for (int v = 0; v < N_VARIANTS; v++)
		printf("  (%c) %-12s %8.0f [%.0f - %.0f]   wall %8.0f\n", 'a' + v,
		       variant_name[v], median(cpu[v], reps), min_of(cpu[v], reps),
		       max_of(cpu[v], reps), median(wall[v], reps));
	time_times(&s, (unsigned)passes, &t_old, &t_new);
	printf("  time alone: gmtime_r+strftime %.0f ns, computed %.0f ns per record "
	       "(one rep)\n",
	       t_old, t_new);
	{
		double ma = median(ratio_a, reps), mb = median(ratio_b, reps);
		double best_jsonc = median(cpu[1], reps), writer = median(cpu[2], reps);

		printf("\nratios (per rep, median [min - max]):\n");
		printf("  writer / jsonc-tree   %.3f [%.3f - %.3f]\n", ma,
		       min_of(ratio_a, reps), max_of(ratio_a, reps));
		printf("  writer / jsonc-reuse  %.3f [%.3f - %.3f]   goal <= %.2f   %s\n",
		       mb, min_of(ratio_b, reps), max_of(ratio_b, reps),
		       GOAL_WRITER_VS_REUSE,
		       mb <= GOAL_WRITER_VS_REUSE ? "PASS" : "MISS");
		printf("  against fatrace's whole %.1f us per event: json-c at its "
		       "cheapest "
		       "%.0f%%, the writer %.0f%%\n",
		       FATRACE_NS_PER_EVENT / 1000,
		       100 * best_jsonc / FATRACE_NS_PER_EVENT,
		       100 * writer / FATRACE_NS_PER_EVENT);
	}

	for (int v = 0; v < N_VARIANTS; v++) {
		free(cpu[v]);
		free(wall[v]);
	}
	free(ratio_a);
	free(ratio_b);
	fclose(f);
	jw_free(&w);
	json_object_put(u.event);
	json_object_put(u.loss);
	free(s.rec);
	free(s.names);
	return 0;
}
