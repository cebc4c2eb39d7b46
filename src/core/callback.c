/* SPDX-License-Identifier: MIT */
/*
 * callback.c — the pre callback running on this thread, if any, and the
 * cut of a send's timeout to its event's deadline (core.h). Thread
 * local: a pre callback runs on one engine reader from start to return.
 */
#include "common/timeutil.h"
#include "core/core.h"

static _Thread_local struct callback_scope current;

void
callback_scope_enter(const struct callback_scope *scope)
{
	current = *scope;
}

void
callback_scope_leave(void)
{
	current.deadline_ns = 0;
}

int64_t
callback_scope_cap(int64_t deadline)
{
	static struct flt_log_limit limit;
	int64_t left;

	if (!current.deadline_ns || deadline <= current.deadline_ns)
		return deadline;
	if (current.capped)
		atomic_fetch_add(current.capped, 1);
	left = current.deadline_ns - now_ns();
	flt_log_limited(current.mgr, &limit, FLT_LOG_WARNING,
			"filter %s: a send from a pre callback would wait %s; cut to "
			"the event's deadline (%lld ms left): a pre callback must not "
			"wait past it",
			current.filter_name ? current.filter_name : "?",
			deadline == DEADLINE_NEVER ? "forever (FLT_INFINITE)"
						   : "past the event's deadline",
			(long long)(left > 0 ? left / 1000000 : 0));
	return current.deadline_ns;
}
