/* SPDX-License-Identifier: MIT */
/*
 * report.c — where decisions go. Each match that reports or denies, and
 * each verdict of policy (a scan over its time limit, a file over the
 * size limit), is logged:
 *  - to the journal with structured fields (SCANNER_RULE,
 *    SCANNER_NAMESPACE, SCANNER_VERDICT, SCANNER_PATH, SCANNER_PID,
 *    SCANNER_EXE, ...) when stderr is the journal (JOURNAL_STREAM, as
 *    systemd sets it) or --log journal;
 *  - otherwise to stderr, one line of key=value pairs (values quoted and
 *    escaped when needed; scanner(8), "LOG LINES");
 *  - and with --json to stdout as JSON Lines, the stream for pipelines.
 * Lines are written whole under out_lock and flushed at once, so that a
 * reader never sees half of one. (The counters are stats.c's.)
 *
 * The process is named by pid and by the target of /proc/PID/exe, read
 * by the worker before it replies (svc_report_exe): the opener is blocked
 * waiting for that verdict, so the pid cannot have been reused.
 */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>
#include <yara.h>

#include "svc.h"

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF)? */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += len;
	}
	return true;
}

/* A JSON string for bytes that may not be UTF-8: bytes >= 0x80 of an
 * ill-formed name become '?' (the name is for people; the log says so). */
static struct json_object *
json_bytes(const char *s, size_t n, bool *lossy)
{
	struct json_object *o;
	char *copy;

	if (utf8_valid((const unsigned char *)s, n))
		return json_object_new_string_len(s, (int)n);
	*lossy = true;
	copy = malloc(n + 1);
	if (!copy)
		return NULL;
	for (size_t i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	copy[n] = '\0';
	o = json_object_new_string_len(copy, (int)n);
	free(copy);
	return o;
}

void
svc_report_exe(const struct scanner_request *q, char *buf, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%u/exe", q->pid);
	n = readlink(link, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
}

static bool journal_stream;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

/* Is stderr the journal? (systemd sets JOURNAL_STREAM=dev:ino) */
static void
find_journal_stream(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;

	journal_stream = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
			 fstat(STDERR_FILENO, &sb) == 0 &&
			 (unsigned long long)sb.st_dev == dev &&
			 (unsigned long long)sb.st_ino == ino;
}

static enum svc_log_target
log_target(struct service *s)
{
	enum svc_log_target t = s->o->log_target;

	if (t == SVC_LOG_AUTO) {
		pthread_once(&journal_once, find_journal_stream);
		t = journal_stream ? SVC_LOG_JOURNAL : SVC_LOG_STDERR;
	}
	/* libsystemd drops an entry silently when journald's socket is
	 * missing: then stderr has it, and it is counted. */
	if (t == SVC_LOG_JOURNAL && access("/run/systemd/journal/socket", W_OK) < 0) {
		atomic_fetch_add(&s->ctr.log_errors, 1);
		t = SVC_LOG_STDERR;
	}
	return t;
}

/* A growing line. */
struct line {
	char buf[8192];
	size_t len;
};

static void
put(struct line *l, const char *s, size_t n)
{
	if (l->len + n >= sizeof(l->buf))
		n = sizeof(l->buf) - 1 - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

/* key=value, the value quoted (C escapes) unless it is plain. */
static void
put_kv(struct line *l, const char *key, const char *v, size_t n)
{
	bool plain = n > 0;

	for (size_t i = 0; i < n && plain; i++) {
		unsigned char c = (unsigned char)v[i];

		plain = c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '=';
	}
	if (l->len)
		put(l, " ", 1);
	put(l, key, strlen(key));
	put(l, "=", 1);
	if (plain) {
		put(l, v, n);
		return;
	}
	put(l, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(l, esc, 2);
		} else if (c < ' ' || c >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			put(l, esc, 4);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
	put(l, "\"", 1);
}

static void
put_kvs(struct line *l, const char *key, const char *v)
{
	put_kv(l, key, v, strlen(v));
}

/* The rule's metadata as "k=v k2=v2" and its tags as "a,b". */
static void
rule_meta(const YR_RULE *rule, struct line *meta, struct line *tags)
{
	const YR_META *m;
	const char *tag;

	yr_rule_metas_foreach(rule, m)
	{
		char num[32];

		if (m->type == META_TYPE_INTEGER) {
			snprintf(num, sizeof(num), "%lld", (long long)m->integer);
			put_kvs(meta, m->identifier, num);
		} else if (m->type == META_TYPE_BOOLEAN) {
			put_kvs(meta, m->identifier, m->integer ? "true" : "false");
		} else {
			put_kvs(meta, m->identifier, m->string);
		}
	}
	yr_rule_tags_foreach(rule, tag)
	{
		if (tags->len)
			put(tags, ",", 1);
		put(tags, tag, strlen(tag));
	}
}

static const char *
match_verdict(const struct svc_decision *d, const struct svc_match *m)
{
	if (m->action == SVC_ACT_DENY)
		return d->denied ? "deny" : "would-deny";
	return "report";
}

static void
now_iso(char *when, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(when, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, size - n, ".%09ldZ", ts.tv_nsec);
}

static void
json_match(struct service *s, const struct scanner_request *q, const char *when,
	   const struct svc_decision *d, const struct svc_match *m)
{
	const YR_RULE *rule = m->rule;
	struct json_object *o = json_object_new_object(), *meta, *tags;
	const YR_META *mt;
	const char *tag;
	bool lossy = false;

	(void)s;
	json_object_object_add(o, "time", json_object_new_string(when));
	json_object_object_add(o, "event", json_object_new_string("detected"));
	json_object_object_add(o, "verdict", json_object_new_string(match_verdict(d, m)));
	json_object_object_add(o, "op", json_object_new_string(q->op ? "exec" : "open"));
	json_object_object_add(o, "path", json_bytes(q->path, q->path_len, &lossy));
	json_object_object_add(o, "rule", json_object_new_string(rule->identifier));
	json_object_object_add(o, "namespace",
			       json_bytes(rule->ns ? rule->ns->name : "default",
					  strlen(rule->ns ? rule->ns->name : "default"),
					  &lossy));
	json_object_object_add(o, "pid", json_object_new_int64(q->pid));
	json_object_object_add(
		o, "exe", d->exe[0] ? json_bytes(d->exe, strlen(d->exe), &lossy) : NULL);
	tags = json_object_new_array();
	yr_rule_tags_foreach(rule, tag)
	{
		json_object_array_add(tags, json_object_new_string(tag));
	}
	json_object_object_add(o, "tags", tags);
	meta = json_object_new_object();
	yr_rule_metas_foreach(rule, mt)
	{
		struct json_object *v;

		if (mt->type == META_TYPE_INTEGER)
			v = json_object_new_int64(mt->integer);
		else if (mt->type == META_TYPE_BOOLEAN)
			v = json_object_new_boolean(mt->integer != 0);
		else
			v = json_bytes(mt->string, strlen(mt->string), &lossy);
		json_object_object_add(meta, mt->identifier, v);
	}
	json_object_object_add(o, "meta", meta);
	if (lossy)
		json_object_object_add(o, "lossy", json_object_new_boolean(1));
	fprintf(stdout, "%s\n",
		json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

void
svc_report_decision(struct service *s, const struct scanner_request *q,
		    const struct svc_decision *d)
{
	enum svc_log_target t = log_target(s);
	char when[64], pid[16];

	now_iso(when, sizeof(when));
	snprintf(pid, sizeof(pid), "%u", q->pid);
	atomic_store(&s->stats_dirty, true);
	pthread_mutex_lock(&s->out_lock);
	for (unsigned i = 0; i < d->n; i++) {
		const struct svc_match *m = &d->m[i];
		const YR_RULE *rule = m->rule;
		const char *ns = rule->ns ? rule->ns->name : "default";
		const char *verdict = match_verdict(d, m);
		struct line l = { .len = 0 }, meta = { .len = 0 }, tags = { .len = 0 };

		rule_meta(rule, &meta, &tags);
		put_kvs(&l, "verdict", verdict);
		put_kvs(&l, "rule", rule->identifier);
		put_kvs(&l, "namespace", ns);
		put_kv(&l, "path", q->path, q->path_len);
		put_kvs(&l, "op", q->op ? "exec" : "open");
		put_kvs(&l, "pid", pid);
		put_kvs(&l, "exe", d->exe[0] ? d->exe : "?");
		if (tags.len)
			put_kvs(&l, "tags", tags.buf);
		if (meta.len)
			put_kvs(&l, "meta", meta.buf);
		if (i + 1 == d->n && d->more) {
			char more[16];

			snprintf(more, sizeof(more), "%u", d->more);
			put_kvs(&l, "more_matches", more);
		}
		if (t == SVC_LOG_JOURNAL) {
			int r = sd_journal_send(
				"MESSAGE=scanner: detection %s", l.buf, "PRIORITY=%d",
				m->action == SVC_ACT_DENY ? LOG_WARNING : LOG_NOTICE,
				"SCANNER_EVENT=detection", "SCANNER_VERDICT=%s", verdict,
				"SCANNER_RULE=%s", rule->identifier,
				"SCANNER_NAMESPACE=%s", ns, "SCANNER_PATH=%.*s",
				(int)q->path_len, q->path, "SCANNER_OP=%s",
				q->op ? "exec" : "open", "SCANNER_PID=%u", q->pid,
				"SCANNER_EXE=%s", d->exe, "SCANNER_TAGS=%s", tags.buf,
				"SCANNER_META=%s", meta.buf, NULL);

			if (r < 0) {
				/* not lost: the journal refused it (journald
				 * gone?), stderr has it */
				atomic_fetch_add(&s->ctr.log_errors, 1);
				t = SVC_LOG_STDERR;
			}
		}
		if (t == SVC_LOG_STDERR)
			fprintf(stderr, "scanner: detection %s\n", l.buf);
		if (s->o->json)
			json_match(s, q, when, d, m);
	}
	fflush(stdout);
	fflush(stderr);
	pthread_mutex_unlock(&s->out_lock);
}

static const char *
verdict_word(int v)
{
	switch (v) {
	case SCANNER_CLEAN:
		return "allow";
	case SCANNER_INFECTED:
		return "deny";
	case SCANNER_ERROR:
		return "default";
	case SCANNER_WRITERS:
		return "deny-writers";
	}
	return "?";
}

void
svc_report_limit(struct service *s, const struct scanner_request *q, const char *what,
		 uint64_t size, int64_t ms, int verdict)
{
	enum svc_log_target t = log_target(s);
	struct line l = { .len = 0 };
	char num[32], pid[16], when[64];

	snprintf(pid, sizeof(pid), "%u", q->pid);
	put_kvs(&l, "limit", what);
	put_kvs(&l, "verdict", verdict_word(verdict));
	put_kv(&l, "path", q->path, q->path_len);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
	put_kvs(&l, "size", num);
	snprintf(num, sizeof(num), "%lld", (long long)ms);
	put_kvs(&l, "ms", num);
	put_kvs(&l, "op", q->op ? "exec" : "open");
	put_kvs(&l, "pid", pid);
	put_kvs(&l, "cached", "no");
	now_iso(when, sizeof(when));
	pthread_mutex_lock(&s->out_lock);
	if (t == SVC_LOG_JOURNAL) {
		if (sd_journal_send("MESSAGE=scanner: unscanned %s", l.buf, "PRIORITY=%d",
				    LOG_WARNING, "SCANNER_EVENT=%s", what,
				    "SCANNER_VERDICT=%s", verdict_word(verdict),
				    "SCANNER_PATH=%.*s", (int)q->path_len, q->path,
				    "SCANNER_SIZE=%llu", (unsigned long long)size,
				    "SCANNER_MS=%lld", (long long)ms, "SCANNER_PID=%u",
				    q->pid, NULL) < 0) {
			atomic_fetch_add(&s->ctr.log_errors, 1);
			t = SVC_LOG_STDERR; /* as above */
		}
	}
	if (t == SVC_LOG_STDERR)
		fprintf(stderr, "scanner: unscanned %s\n", l.buf);
	if (s->o->json) {
		struct json_object *o = json_object_new_object();
		bool lossy = false;

		json_object_object_add(o, "time", json_object_new_string(when));
		json_object_object_add(o, "event", json_object_new_string(what));
		json_object_object_add(o, "verdict",
				       json_object_new_string(verdict_word(verdict)));
		json_object_object_add(o, "path",
				       json_bytes(q->path, q->path_len, &lossy));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
		json_object_object_add(o, "ms", json_object_new_int64(ms));
		json_object_object_add(o, "pid", json_object_new_int64(q->pid));
		fprintf(stdout, "%s\n",
			json_object_to_json_string_ext(
				o,
				JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		fflush(stdout);
	}
	fflush(stderr);
	pthread_mutex_unlock(&s->out_lock);
}
