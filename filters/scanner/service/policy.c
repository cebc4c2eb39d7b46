/* SPDX-License-Identifier: MIT */
/*
 * policy.c — what a match of each rule does, decided once per rule set
 * from the rule's metadata and the command line (scanner(8), "POLICY"),
 * first rule that applies wins:
 *
 *   1. meta `action` = "deny" | "report" | "ignore" (also "block",
 *      "alert"/"log", "allow"), the rule author's explicit word;
 *   2. a tag of the rule, or its namespace, named by --deny-tag, then by
 *      --report-tag;
 *   3. with --deny-score N: meta `score` (integer, 0-100 in
 *      signature-base) or `severity` (integer, or low/medium/high/
 *      critical = 25/50/75/100) at least N denies, below N reports;
 *   4. --default-action (deny unless told otherwise: a match denies, as
 *      it always has).
 *
 * --report-only is applied at scan time (worker.c): the actions stay as
 * decided here, for the log to say what would have been denied. Owns the
 * action field of the set's per-rule table; the match counters beside it
 * are the workers'.
 */
#include <string.h>
#include <strings.h>
#include <yara.h>

#include "svc.h"

const char *
svc_action_name(enum svc_action a)
{
	switch (a) {
	case SVC_ACT_DENY:
		return "deny";
	case SVC_ACT_REPORT:
		return "report";
	case SVC_ACT_IGNORE:
		return "ignore";
	}
	return "?";
}

static int
action_word(const char *w)
{
	if (!strcasecmp(w, "deny") || !strcasecmp(w, "block"))
		return SVC_ACT_DENY;
	if (!strcasecmp(w, "report") || !strcasecmp(w, "alert") || !strcasecmp(w, "log"))
		return SVC_ACT_REPORT;
	if (!strcasecmp(w, "ignore") || !strcasecmp(w, "allow"))
		return SVC_ACT_IGNORE;
	return -1;
}

static long long
severity_word(const char *w)
{
	static const struct {
		const char *name;
		long long v;
	} words[] = { { "info", 0 },    { "informational", 0 }, { "low", 25 },
		      { "medium", 50 }, { "high", 75 },         { "critical", 100 } };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcasecmp(w, words[i].name))
			return words[i].v;
	return -1;
}

static bool
listed(const char *const *list, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

/* Is one of the rule's tags, or its namespace, in list? */
static bool
tagged(const YR_RULE *rule, const char *const *list, unsigned n)
{
	const char *tag;

	if (n == 0)
		return false;
	if (rule->ns && listed(list, n, rule->ns->name))
		return true;
	yr_rule_tags_foreach(rule, tag)
	{
		if (listed(list, n, tag))
			return true;
	}
	return false;
}

static enum svc_action
decide(const struct svc_options *o, const YR_RULE *rule)
{
	const YR_META *meta;
	long long score = -1;

	yr_rule_metas_foreach(rule, meta)
	{
		if (!strcmp(meta->identifier, "action") &&
		    meta->type == META_TYPE_STRING) {
			int a = action_word(meta->string);

			if (a >= 0)
				return (enum svc_action)a;
		}
		if (!strcmp(meta->identifier, "score") ||
		    !strcmp(meta->identifier, "severity")) {
			if (meta->type == META_TYPE_INTEGER && meta->integer > score)
				score = meta->integer;
			else if (meta->type == META_TYPE_STRING &&
				 severity_word(meta->string) > score)
				score = severity_word(meta->string);
		}
	}
	if (tagged(rule, o->deny_tags, o->n_deny_tags))
		return SVC_ACT_DENY;
	if (tagged(rule, o->report_tags, o->n_report_tags))
		return SVC_ACT_REPORT;
	if (o->deny_score >= 0 && score >= 0)
		return score >= o->deny_score ? SVC_ACT_DENY : SVC_ACT_REPORT;
	return o->default_action;
}

void
svc_policy_apply(const struct svc_options *o, struct svc_rules *r)
{
	for (unsigned i = 0; i < svc_rules_count(r); i++)
		svc_rules_info(r, i)->action = (uint8_t)decide(o, svc_rules_rule(r, i));
}
