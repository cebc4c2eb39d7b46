/* SPDX-License-Identifier: MIT */
/*
 * stats.c — the service's counters where an operator reads them: the
 * line on stderr (SIGUSR1, exit), one line per rule that matched, and
 * the stats file beside the port (PORT.stats, JSON) that the service
 * rewrites within a second of a decision (session.c) and that
 * `scanner --stats`, another process, prints. The file is written to a
 * temporary name and renamed, so a reader sees a whole one. Owns nothing
 * between calls; the counters are the workers' atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yara.h>

#include "svc.h"

#define SERVICE_COUNTERS(X) \
	X(scanned)          \
	X(clean)            \
	X(infected)         \
	X(errors)           \
	X(oversize)         \
	X(timeouts)         \
	X(bad)              \
	X(not_regular)      \
	X(max_concurrent)   \
	X(reloads)          \
	X(exec_writers)     \
	X(lease_errors)     \
	X(hold_failures)    \
	X(hold_evictions)   \
	X(reported)         \
	X(would_deny)       \
	X(log_errors)

void
svc_print_stats(struct service *s)
{
	char buf[2048];
	size_t n = 0;

#define PRINT_ONE(c)                                                          \
	n += (size_t)snprintf(buf + n, n < sizeof(buf) ? sizeof(buf) - n : 0, \
			      "%s%s=%llu", n ? " " : "",                      \
			      !strcmp(#c, "bad") ? "bad_messages" : #c,       \
			      (unsigned long long)atomic_load(&s->ctr.c));
	SERVICE_COUNTERS(PRINT_ONE)
#undef PRINT_ONE
	if (s->rules) {
		struct svc_rules *r = svc_rules_get(s);

		n += (size_t)snprintf(buf + n, n < sizeof(buf) ? sizeof(buf) - n : 0,
				      " rules=%u rule_files_failed=%u",
				      svc_rules_count(r), svc_rules_failed(r));
		svc_rules_unref(r);
	}
	fprintf(stderr, "scanner: stats: %s\n", buf);
	if (s->rules) {
		struct svc_rules *r = svc_rules_get(s);

		for (unsigned i = 0; i < svc_rules_count(r); i++) {
			const YR_RULE *rule = svc_rules_rule(r, i);
			uint64_t m = atomic_load(&svc_rules_info(r, i)->matches);

			if (m)
				fprintf(stderr,
					"scanner: rule %s:%s action=%s matches=%llu\n",
					rule->ns ? rule->ns->name : "default",
					rule->identifier,
					svc_action_name(
						(enum svc_action)svc_rules_info(r, i)
							->action),
					(unsigned long long)m);
		}
		svc_rules_unref(r);
	}
	svc_write_stats(s);
}

void
svc_write_stats(struct service *s)
{
	struct json_object *o = json_object_new_object(), *svc = json_object_new_object(),
			   *rules = json_object_new_array();
	struct svc_rules *r;
	char tmp[PATH_MAX + 16];
	const char *text;
	int fd;

	if (!s->stats_path[0] || !s->rules)
		goto out;
	atomic_store(&s->stats_dirty, false);
#define JSON_ONE(n)                                                           \
	json_object_object_add(svc, !strcmp(#n, "bad") ? "bad_messages" : #n, \
			       json_object_new_int64((int64_t)atomic_load(&s->ctr.n)));
	SERVICE_COUNTERS(JSON_ONE)
#undef JSON_ONE
	r = svc_rules_get(s);
	json_object_object_add(svc, "rules", json_object_new_int64(svc_rules_count(r)));
	json_object_object_add(svc, "rule_files_failed",
			       json_object_new_int64(svc_rules_failed(r)));
	for (unsigned i = 0; i < svc_rules_count(r); i++) {
		const YR_RULE *rule = svc_rules_rule(r, i);
		uint64_t n = atomic_load(&svc_rules_info(r, i)->matches);
		struct json_object *e;

		if (!n)
			continue;
		e = json_object_new_object();
		json_object_object_add(
			e, "namespace",
			json_object_new_string(rule->ns ? rule->ns->name : "default"));
		json_object_object_add(e, "rule",
				       json_object_new_string(rule->identifier));
		json_object_object_add(
			e, "action",
			json_object_new_string(svc_action_name(
				(enum svc_action)svc_rules_info(r, i)->action)));
		json_object_object_add(e, "matches", json_object_new_int64((int64_t)n));
		json_object_array_add(rules, e);
	}
	svc_rules_unref(r);
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "service", svc);
	json_object_object_add(o, "rules", rules);
	rules = svc = NULL;
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->stats_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd >= 0) {
		size_t len = strlen(text);
		bool ok = write(fd, text, len) == (ssize_t)len;

		ok = close(fd) == 0 && ok;
		if (!ok || rename(tmp, s->stats_path) < 0)
			(void)unlink(tmp);
	}
out:
	json_object_put(svc);
	json_object_put(rules);
	json_object_put(o);
}

int
svc_print_stats_file(const char *path, bool json)
{
	struct json_object *o = json_object_from_file(path), *svc, *rules;

	if (!o) {
		fprintf(stderr,
			"scanner: no service counters in %s (no service running on "
			"this port, or it has not written them yet)\n",
			path);
		return -ENOENT;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return 0;
	}
	if (json_object_object_get_ex(o, "service", &svc)) {
		json_object_object_foreach(svc, k, v)
		{
			printf("service.%s %s\n", k, json_object_get_string(v));
		}
	}
	if (json_object_object_get_ex(o, "rules", &rules)) {
		for (size_t i = 0; i < json_object_array_length(rules); i++) {
			struct json_object *e = json_object_array_get_idx(rules, i), *ns,
					   *rule, *act, *n;

			if (json_object_object_get_ex(e, "namespace", &ns) &&
			    json_object_object_get_ex(e, "rule", &rule) &&
			    json_object_object_get_ex(e, "action", &act) &&
			    json_object_object_get_ex(e, "matches", &n))
				printf("rule %s:%s %s %s\n", json_object_get_string(ns),
				       json_object_get_string(rule),
				       json_object_get_string(act),
				       json_object_get_string(n));
		}
	}
	json_object_put(o);
	return 0;
}
