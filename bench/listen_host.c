/* SPDX-License-Identifier: MIT */
/*
 * listen_host.c — one permission listener on a filesystem, for
 * bench/workload_bench.py (root only).
 *
 * The workload benchmark runs real programs (grep -r over a tree, a shell
 * exec loop) under each listener in turn. This program hosts the listeners
 * that are not whole products: the raw fanotify responder (the floor) and
 * fltmgr with pass-through filters, as engine_bench defines them, but
 * covering exec as well as open:
 *
 *   raw     fanotify_init(FAN_CLASS_CONTENT | FAN_UNLIMITED_QUEUE),
 *           FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM on the filesystem of PATH,
 *           one thread: read(), then write(FAN_ALLOW) + close(fd) per event
 *   flt1    a fltmgr manager, one filter with pre callbacks on FLT_OP_OPEN
 *           and FLT_OP_EXEC returning FLT_PREOP_SUCCESS_NO_CALLBACK,
 *           attached FLT_INSTANCE_FILESYSTEM to PATH
 *   flt3    three such filters (altitudes 389000, 385100, 381000)
 *   cached  flt1 with FLT_REGISTRATION_CACHE_VERDICTS
 *   lean    flt1 with FLT_REGISTRATION_PATH_ON_REQUEST |
 *           FLT_REGISTRATION_NO_PROCESS_DETAILS: no path resolved and no
 *           pidfd per event (a filter that needs neither)
 *
 * It prints "ready" on stdout once marked, then waits for end of file on
 * stdin, tears the listener down, prints one line of JSON with its
 * counters (events seen, callbacks, cache inserts) and exits 0. Exit
 * status 1 on failure (the reason on stderr), 2 on bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <fltmgr/filter.h>

#include "benchutil.h"

static atomic_ulong g_events; /* raw: events answered; fltmgr: callbacks */

/* ---- raw responder ---- */

static void *
raw_responder(void *arg)
{
	int fan = *(int *)arg;
	char buf[4096] __attribute__((aligned(8)));

	for (;;) {
		ssize_t n = read(fan, buf, sizeof(buf));
		struct fanotify_event_metadata *e = (void *)buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "listen_host: read: %s\n",
				n < 0 ? strerror(errno) : "end of file");
			exit(1);
		}
		for (; FAN_EVENT_OK(e, n); e = FAN_EVENT_NEXT(e, n)) {
			struct fanotify_response r = { .fd = e->fd,
						       .response = FAN_ALLOW };

			if (e->fd < 0)
				continue;
			if (write(fan, &r, sizeof(r)) != sizeof(r)) {
				fprintf(stderr, "listen_host: write: %s\n",
					strerror(errno));
				exit(1);
			}
			close(e->fd);
			atomic_fetch_add(&g_events, 1);
		}
	}
	return NULL;
}

static int
raw_start(const char *path, int *ret_fan, pthread_t *ret_thread)
{
	int fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE,
				O_RDONLY | O_LARGEFILE | O_CLOEXEC);

	if (fan < 0)
		return -errno;
	if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
			  FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM, AT_FDCWD, path) < 0) {
		int r = -errno;

		close(fan);
		return r;
	}
	*ret_fan = fan;
	return -pthread_create(ret_thread, NULL, raw_responder, ret_fan);
}

/* ---- fltmgr pass-through filters ---- */

static enum flt_preop_status
pre_pass(struct flt_callback_data *data, void *instance_context,
	 void **completion_context)
{
	(void)data;
	(void)instance_context;
	(void)completion_context;
	atomic_fetch_add(&g_events, 1);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static const struct flt_operation_registration ops_pass[] = {
	{ FLT_OP_OPEN, pre_pass, NULL },
	{ FLT_OP_EXEC, pre_pass, NULL },
};

#define N_OPS (sizeof(ops_pass) / sizeof(ops_pass[0]))

static const struct flt_registration reg_one[] = {
	{ .name = "pass",
	  .altitude = "385100",
	  .operations = ops_pass,
	  .n_operations = N_OPS },
};
static const struct flt_registration reg_three[] = {
	{ .name = "pass-high",
	  .altitude = "389000",
	  .operations = ops_pass,
	  .n_operations = N_OPS },
	{ .name = "pass-mid",
	  .altitude = "385100",
	  .operations = ops_pass,
	  .n_operations = N_OPS },
	{ .name = "pass-low",
	  .altitude = "381000",
	  .operations = ops_pass,
	  .n_operations = N_OPS },
};
static const struct flt_registration reg_lean[] = {
	{ .name = "pass-lean",
	  .altitude = "385100",
	  .operations = ops_pass,
	  .n_operations = N_OPS,
	  .flags = FLT_REGISTRATION_PATH_ON_REQUEST |
		   FLT_REGISTRATION_NO_PROCESS_DETAILS },
};
static const struct flt_registration reg_cached[] = {
	{ .name = "pass-cached",
	  .altitude = "385100",
	  .operations = ops_pass,
	  .n_operations = N_OPS,
	  .flags = FLT_REGISTRATION_CACHE_VERDICTS },
};

static void
log_errors(void *userdata, int level, const char *message)
{
	(void)userdata;
	if (level <= FLT_LOG_ERROR)
		fprintf(stderr, "listen_host: fltmgr: %s\n", message);
}

static int
fltmgr_start(const char *path, const char *run_dir, const struct flt_registration *regs,
	     size_t n, flt_manager **ret_manager)
{
	const struct flt_manager_options mopts = {
		.runtime_dir = run_dir,
		.log_level = FLT_LOG_ERROR,
		.log_func = log_errors,
	};
	flt_manager *m;
	int r = flt_manager_new(&mopts, &m);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		flt_filter *f;

		r = flt_register_filter(m, &regs[i], &f);
		if (r >= 0)
			r = flt_attach(f, path, FLT_INSTANCE_FILESYSTEM);
		if (r >= 0)
			r = flt_start_filtering(f);
	}
	if (r < 0) {
		if (m)
			flt_manager_free(m);
		return r;
	}
	*ret_manager = m;
	return 0;
}

/* ---- main ---- */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: listen_host raw|flt1|flt3|cached|lean PATH [RUNTIME_DIR]\n"
		"  marks the filesystem of PATH; prints \"ready\", runs until end of\n"
		"  file on stdin, then prints its counters as JSON. fltmgr modes need\n"
		"  RUNTIME_DIR (an empty directory for the manager).\n");
}

int
main(int argc, char **argv)
{
	const struct flt_registration *regs = NULL;
	struct flt_engine_stats es = { 0 };
	flt_manager *m = NULL;
	pthread_t thread;
	size_t n_regs = 0;
	char c;
	int fan = -1, r;

	if (argc < 3 || argc > 4) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "flt1"))
		regs = reg_one, n_regs = 1;
	else if (!strcmp(argv[1], "flt3"))
		regs = reg_three, n_regs = 3;
	else if (!strcmp(argv[1], "cached"))
		regs = reg_cached, n_regs = 1;
	else if (!strcmp(argv[1], "lean"))
		regs = reg_lean, n_regs = 1;
	else if (strcmp(argv[1], "raw")) {
		usage(stderr);
		return 2;
	}
	if (regs && argc != 4) {
		usage(stderr);
		return 2;
	}
	r = regs ? fltmgr_start(argv[2], argv[3], regs, n_regs, &m)
		 : raw_start(argv[2], &fan, &thread);
	if (r < 0) {
		fprintf(stderr, "listen_host: %s on %s: %s\n", argv[1], argv[2],
			err_str(r));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, &c, 1);

		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	if (m) {
		r = flt_manager_get_stats(m, &es);
		flt_manager_free(m);
		if (r < 0) {
			fprintf(stderr, "listen_host: stats: %s\n", err_str(r));
			return 1;
		}
	}
	/* The raw responder thread is still blocked in read(): exiting closes
	 * the group, and the kernel allows whatever is still pending. */
	printf("{\"mode\": \"%s\", \"events\": %lu, \"permission_events\": %llu, "
	       "\"cache_inserts\": %llu}\n",
	       argv[1], atomic_load(&g_events), (unsigned long long)es.permission_events,
	       (unsigned long long)es.cache_inserts);
	fflush(stdout);
	_exit(0);
}
