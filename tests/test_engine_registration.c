/* SPDX-License-Identifier: MIT */
/*
 * test_engine_registration.c — what a filter's registration flags change:
 * FLT_REGISTRATION_PATH_ON_REQUEST (the path resolved only when asked,
 * the same as the eager one) and FLT_REGISTRATION_NO_PROCESS_DETAILS (a
 * permission group without pidfds unless another filter needs them).
 *
 * The engine on real fanotify (root only), in a private mount namespace,
 * on a fresh tmpfs per test, driven by child processes (the test process
 * is the engine's own: its accesses never reach a filter); the recording
 * filter, the children and each test's setup: engine_fixture.h.
 */
#include "engine_fixture.h"

/* ---- the path on request (FLT_REGISTRATION_PATH_ON_REQUEST) ---- */

struct path_seen {
	int calls;
	bool before_null;     /* data->path before flt_event_path() */
	bool before_unknown;  /* FLT_EVENT_PATH_UNKNOWN before it */
	bool same_pointer;    /* a second call gives the same string */
	uint32_t flags_after; /* data->flags after it */
	char path[PATH_MAX];  /* what flt_event_path() gave ("" for NULL) */
	char field[PATH_MAX]; /* data->path after it */
};

static struct path_seen seen_lazy, seen_eager;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void
path_note(struct path_seen *s, struct flt_callback_data *d, bool ask)
{
	bool before_null = d->path == NULL;
	bool before_unknown = (d->flags & FLT_EVENT_PATH_UNKNOWN) != 0;
	const char *p = ask ? flt_event_path(d) : d->path;

	pthread_mutex_lock(&seen_lock);
	s->calls++;
	s->before_null = before_null;
	s->before_unknown = before_unknown;
	s->same_pointer = flt_event_path(d) == p && d->path == p;
	s->flags_after = d->flags;
	snprintf(s->path, sizeof(s->path), "%s", p ? p : "");
	snprintf(s->field, sizeof(s->field), "%s", d->path ? d->path : "");
	pthread_mutex_unlock(&seen_lock);
}

static enum flt_preop_status
pre_lazy(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)ic;
	(void)cc;
	path_note(&seen_lazy, d, true);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static enum flt_preop_status
pre_eager(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)ic;
	(void)cc;
	path_note(&seen_eager, d, false);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static flt_filter *
path_filter(const char *name, const char *alt, flt_pre_operation pre, unsigned flags,
	    enum flt_instance_kind kind)
{
	flt_filter *f = open_filter_reg(name, alt, pre, flags, kind);

	start_or_skip(f);
	return f;
}

static void
seen_reset(void)
{
	pthread_mutex_lock(&seen_lock);
	memset(&seen_lazy, 0, sizeof(seen_lazy));
	memset(&seen_eager, 0, sizeof(seen_eager));
	pthread_mutex_unlock(&seen_lock);
}

/* A filter that takes its path on request gets none before it asks, and
 * then the string an eager filter below it gets for the same event. */
static void
path_on_request_matches_the_eager_path(void **state)
{
	(void)state;
	NEED_ROOT();
	assert_int_equal(run_op(0, "write", at("f"), "x"), 0);
	path_filter("lazy", "300000", pre_lazy, FLT_REGISTRATION_PATH_ON_REQUEST,
		    FLT_INSTANCE_FILESYSTEM);
	path_filter("eager", "200000", pre_eager, 0, FLT_INSTANCE_FILESYSTEM);
	seen_reset();
	assert_int_equal(run_op(0, "open", at("f"), NULL), 0);
	pthread_mutex_lock(&seen_lock);
	assert_int_equal(seen_lazy.calls, 1);
	assert_int_equal(seen_eager.calls, 1);
	/* Not resolved before the lazy filter asked: no readlink spent. */
	assert_true(seen_lazy.before_null);
	assert_false(seen_lazy.before_unknown);
	assert_string_equal(seen_lazy.path, at("f"));
	assert_string_equal(seen_lazy.field, at("f"));
	assert_true(seen_lazy.same_pointer);
	assert_false(seen_lazy.flags_after & FLT_EVENT_PATH_UNKNOWN);
	/* The eager filter below: filled in before its callback, the same. */
	assert_false(seen_eager.before_null);
	assert_string_equal(seen_eager.path, seen_lazy.path);
	assert_true(seen_eager.same_pointer);
	pthread_mutex_unlock(&seen_lock);
}

/* Without the flag nothing changes: the path is there before the
 * callback, and flt_event_path() gives that very string. A lazy filter
 * below an eager one finds it already resolved. */
static void
path_without_the_flag_is_filled_before_the_callback(void **state)
{
	(void)state;
	NEED_ROOT();
	assert_int_equal(run_op(0, "write", at("g"), "x"), 0);
	path_filter("eager", "300000", pre_eager, 0, FLT_INSTANCE_FILESYSTEM);
	path_filter("lazy", "200000", pre_lazy, FLT_REGISTRATION_PATH_ON_REQUEST,
		    FLT_INSTANCE_FILESYSTEM);
	seen_reset();
	assert_int_equal(run_op(0, "open", at("g"), NULL), 0);
	pthread_mutex_lock(&seen_lock);
	assert_int_equal(seen_eager.calls, 1);
	assert_false(seen_eager.before_null);
	assert_string_equal(seen_eager.path, at("g"));
	assert_true(seen_eager.same_pointer);
	assert_int_equal(seen_lazy.calls, 1);
	assert_false(seen_lazy.before_null);
	assert_string_equal(seen_lazy.path, at("g"));
	pthread_mutex_unlock(&seen_lock);
}

/* A SUBTREE instance matches by path: the engine resolves it to place
 * the event, and the lazy filter finds it there (the same string). */
static void
path_on_request_in_a_subtree_instance(void **state)
{
	(void)state;
	NEED_ROOT();
	assert_int_equal(run_op(0, "write", at("h"), "x"), 0);
	path_filter("lazy", "300000", pre_lazy, FLT_REGISTRATION_PATH_ON_REQUEST,
		    FLT_INSTANCE_SUBTREE);
	seen_reset();
	assert_int_equal(run_op(0, "open", at("h"), NULL), 0);
	pthread_mutex_lock(&seen_lock);
	assert_int_equal(seen_lazy.calls, 1);
	assert_false(seen_lazy.before_null);
	assert_string_equal(seen_lazy.path, at("h"));
	assert_true(seen_lazy.same_pointer);
	pthread_mutex_unlock(&seen_lock);
}

/* ---- FLT_REGISTRATION_NO_PROCESS_DETAILS: a permission group without pidfds ---- */

/* Every filter with pre callbacks said it needs no process details: the
 * group has no pidfds, flt_get_process() gives the pid only (as on a
 * kernel without them), and a filter that may need them cannot start
 * later (the group cannot gain pidfds); a notification-only one can. */
static void
no_process_details_leaves_pidfds_out(void **state)
{
	flt_filter *f, *late;
	int i;

	(void)state;
	NEED_ROOT();
	atomic_store(&deny_in_middle, 0);
	assert_int_equal(run_op(0, "write", at("f"), "x"), 0);
	f = pre_filter_reg("nopid", "300000", pre_1, FLT_REGISTRATION_NO_PROCESS_DETAILS);
	start_or_skip(f);
	NEED_PIDFD();
	assert_false(engine_of(g_m)->perm_pidfd);
	recs_clear();
	assert_int_equal(run_op(0, "open", at("f"), NULL), 0);
	i = wait_rec(1, FLT_OP_OPEN, at("f"), NULL, 0, EVENT_WAIT_MS);
	assert_true(i >= 0);
	assert_true(recs[i].pre);
	assert_true(recs[i].pid > 0);
	assert_false(recs[i].verified);
	assert_int_equal(recs[i].uid, (uid_t)-1);
	assert_string_equal(recs[i].exe, "");
	late = pre_filter_reg("late", "200000", pre_2, 0);
	assert_int_equal(flt_start_filtering(late), -EOPNOTSUPP);
	/* A late filter that also says so starts. */
	flt_unregister_filter(late);
	late = pre_filter_reg("late2", "200000", pre_2,
			      FLT_REGISTRATION_NO_PROCESS_DETAILS);
	assert_int_equal(flt_start_filtering(late), 0);
	recs_clear();
	assert_int_equal(run_op(0, "open", at("f"), NULL), 0);
	assert_true(wait_rec(2, FLT_OP_OPEN, at("f"), NULL, 0, EVENT_WAIT_MS) >= 0);
}

/* One filter registered before the start without the flag keeps pidfds
 * for everyone: its process details are verified as always. */
static void
process_details_kept_when_one_filter_may_need_them(void **state)
{
	flt_filter *a, *b;
	struct child c;
	int i;

	(void)state;
	NEED_ROOT();
	atomic_store(&deny_in_middle, 0);
	assert_int_equal(run_op(0, "write", at("f"), "x"), 0);
	a = pre_filter_reg("nopid", "300000", pre_1, FLT_REGISTRATION_NO_PROCESS_DETAILS);
	b = pre_filter_reg("withpid", "200000", pre_3, 0);
	start_or_skip(a);
	start_or_skip(b);
	NEED_PIDFD();
	assert_true(engine_of(g_m)->perm_pidfd);
	recs_clear();
	c = child_start(0, false, "open", at("f"), NULL);
	assert_int_equal(child_finish(&c), 0);
	i = wait_rec(3, FLT_OP_OPEN, at("f"), NULL, c.pid, EVENT_WAIT_MS);
	assert_true(i >= 0);
	assert_true(recs[i].verified);
	assert_int_equal(recs[i].uid, 0);
	assert_string_equal(recs[i].exe, fsop_path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(path_on_request_matches_the_eager_path),
		T(path_without_the_flag_is_filled_before_the_callback),
		T(path_on_request_in_a_subtree_instance),
		T(no_process_details_leaves_pidfds_out),
		T(process_details_kept_when_one_filter_may_need_them),
#undef T
	};
	int r;

	r = engine_fixture_init("test_engine_registration");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
