/* SPDX-License-Identifier: MIT */
/*
 * report.c — detections on stdout, one line each (text, or JSON Lines
 * with --json), and the counters line on stderr (SIGUSR1, exit). Lines
 * are written whole under out_lock and flushed at once, so that a reader
 * never sees half of one.
 *
 * The process is named by pid and by the target of /proc/PID/exe, read
 * when the detection is made: the opener is blocked waiting for this very
 * verdict, so the pid cannot have been reused.
 */
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
svc_report_detection(struct service *s, const struct scanner_request *q, const char *rule,
		     const char *ns)
{
	char exe[PATH_MAX], link[64], when[64];
	struct timespec ts;
	struct tm tm;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%u/exe", q->pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (ssize_t)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - (size_t)n, ".%09ldZ", ts.tv_nsec);

	pthread_mutex_lock(&s->out_lock);
	if (s->o->json) {
		struct json_object *o = json_object_new_object();
		bool lossy = false;

		json_object_object_add(o, "time", json_object_new_string(when));
		json_object_object_add(o, "event", json_object_new_string("detected"));
		json_object_object_add(o, "op",
				       json_object_new_string(q->op ? "exec" : "open"));
		json_object_object_add(o, "path",
				       json_bytes(q->path, q->path_len, &lossy));
		json_object_object_add(o, "rule", json_object_new_string(rule));
		json_object_object_add(o, "namespace", json_object_new_string(ns));
		json_object_object_add(o, "pid", json_object_new_int64(q->pid));
		json_object_object_add(
			o, "exe", exe[0] ? json_bytes(exe, strlen(exe), &lossy) : NULL);
		if (lossy)
			json_object_object_add(o, "lossy", json_object_new_boolean(1));
		fprintf(stdout, "%s\n",
			json_object_to_json_string_ext(
				o,
				JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		fprintf(stdout, "%s detected %s:%s in %.*s (%s by pid %u, exe %s)\n",
			when, ns, rule, (int)q->path_len, q->path,
			q->op ? "exec" : "open", q->pid, exe[0] ? exe : "?");
	}
	fflush(stdout);
	pthread_mutex_unlock(&s->out_lock);
}

void
svc_print_stats(struct service *s)
{
	fprintf(stderr,
		"scanner: stats: scanned=%llu clean=%llu infected=%llu errors=%llu "
		"oversize=%llu timeouts=%llu bad_messages=%llu not_regular=%llu "
		"max_concurrent=%llu reloads=%llu exec_writers=%llu lease_errors=%llu "
		"hold_failures=%llu hold_evictions=%llu\n",
		(unsigned long long)atomic_load(&s->ctr.scanned),
		(unsigned long long)atomic_load(&s->ctr.clean),
		(unsigned long long)atomic_load(&s->ctr.infected),
		(unsigned long long)atomic_load(&s->ctr.errors),
		(unsigned long long)atomic_load(&s->ctr.oversize),
		(unsigned long long)atomic_load(&s->ctr.timeouts),
		(unsigned long long)atomic_load(&s->ctr.bad),
		(unsigned long long)atomic_load(&s->ctr.not_regular),
		(unsigned long long)atomic_load(&s->ctr.max_concurrent),
		(unsigned long long)atomic_load(&s->ctr.reloads),
		(unsigned long long)atomic_load(&s->ctr.exec_writers),
		(unsigned long long)atomic_load(&s->ctr.lease_errors),
		(unsigned long long)atomic_load(&s->ctr.hold_failures),
		(unsigned long long)atomic_load(&s->ctr.hold_evictions));
}
