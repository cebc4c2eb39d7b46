/* SPDX-License-Identifier: MIT */
/*
 * test_filter.c — a small filter shared object for the loader and daemon
 * tests. Parameters:
 *   param.refuse = ERRNO   the entry point refuses with -ERRNO
 *   param.refuse_if = PATH the entry point refuses (-EAGAIN) while PATH
 *                          exists
 *   param.deny = TEXT      OPEN of a path containing TEXT is denied
 *   param.deny_content = TEXT  OPEN of a file whose first 256 bytes
 *                          contain TEXT is denied (read through the
 *                          event's descriptor)
 *   param.port = NAME      a server port NAME (0666, any number of
 *                          clients); each message is answered "pong"
 *   param.hold = TEXT      OPEN of a path containing TEXT sleeps in the
 *   param.hold_ms = N      pre callback for N ms (default 1000), then is
 *                          allowed: a filter stuck on an event
 *   param.ops = LIST       which operations get the pre callback, a comma
 *                          list of open, exec, read (default open); deny
 *                          and hold apply to each of them
 * It counts opens it saw, so its services can tell it is alive.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fltmgr/filter.h>

int fltmgr_filter_entry(flt_manager *m, const struct flt_filter_config *cfg,
			flt_filter **ret);

struct tf {
	flt_filter *filter;
	flt_port server;
	char *deny;
	char *hold;
	int hold_ms;
	char *deny_content;
};

/* Does the file behind fd start with bytes containing text? */
static int
content_has(int fd, const char *text)
{
	char buf[256];
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf), 0) : -1;

	return n > 0 && memmem(buf, (size_t)n, text, strlen(text)) != NULL;
}

static enum flt_preop_status
pre_any(struct flt_callback_data *data, void *instance_context, void **completion)
{
	struct tf *tf = instance_context;

	(void)completion;
	if (tf && tf->deny && data->path && strstr(data->path, tf->deny)) {
		data->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	if (tf && tf->hold && data->path && strstr(data->path, tf->hold)) {
		struct timespec ts = { .tv_sec = tf->hold_ms / 1000,
				       .tv_nsec = (long)(tf->hold_ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) != 0)
			;
	}
	if (tf && tf->deny_content && content_has(data->fd, tf->deny_content)) {
		data->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static struct tf *the_tf; /* one instance of this filter per process */

static int
setup(flt_filter *filter, const char *path, enum flt_instance_kind kind, void **ret)
{
	(void)filter;
	(void)path;
	(void)kind;
	*ret = the_tf;
	return 0;
}

static int
on_connect(flt_port client, void *cookie, const void *ctx, size_t len,
	   const struct flt_peer *peer, void **ret_cookie)
{
	(void)client;
	(void)ctx;
	(void)len;
	(void)peer;
	*ret_cookie = cookie;
	return 0;
}

static void
on_disconnect(void *cookie)
{
	(void)cookie;
}

static int
on_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	   size_t *ret_out_len)
{
	(void)cookie;
	(void)in;
	(void)in_len;
	if (out_cap < 4)
		return -EMSGSIZE;
	memcpy(out, "pong", 4);
	*ret_out_len = 4;
	return 0;
}

static void
unload(flt_filter *filter, void *cookie)
{
	struct tf *tf = cookie;

	flt_close_communication_port(filter, &tf->server);
	free(tf->deny);
	free(tf->hold);
	free(tf->deny_content);
	free(tf);
	the_tf = NULL;
}

int
fltmgr_filter_entry(flt_manager *m, const struct flt_filter_config *cfg, flt_filter **ret)
{
	struct flt_operation_registration ops[3];
	size_t n_ops = 0;
	const char *refuse = flt_config_param(cfg, "refuse");
	const char *refuse_if = flt_config_param(cfg, "refuse_if");
	const char *deny = flt_config_param(cfg, "deny");
	const char *deny_content = flt_config_param(cfg, "deny_content");
	const char *port = flt_config_param(cfg, "port");
	const char *hold = flt_config_param(cfg, "hold");
	const char *hold_ms = flt_config_param(cfg, "hold_ms");
	const char *op_list = flt_config_param(cfg, "ops");
	struct flt_registration reg = {
		.name = cfg->name,
		.altitude = cfg->altitude,
		.deadline_ms = cfg->deadline_ms,
		.default_verdict = cfg->default_verdict,
		.instance_setup = setup,
		.unload = unload,
	};
	struct tf *tf;
	int r;

	if (refuse)
		return -atoi(refuse);
	if (refuse_if && access(refuse_if, F_OK) == 0)
		return -EAGAIN;
	if (!op_list)
		op_list = "open";
	if (strstr(op_list, "open"))
		ops[n_ops++] =
			(struct flt_operation_registration){ FLT_OP_OPEN, pre_any, NULL };
	if (strstr(op_list, "exec"))
		ops[n_ops++] =
			(struct flt_operation_registration){ FLT_OP_EXEC, pre_any, NULL };
	if (strstr(op_list, "read"))
		ops[n_ops++] =
			(struct flt_operation_registration){ FLT_OP_READ, pre_any, NULL };
	tf = calloc(1, sizeof(*tf));
	if (!tf || (deny && !(tf->deny = strdup(deny))) ||
	    (hold && !(tf->hold = strdup(hold))) ||
	    (deny_content && !(tf->deny_content = strdup(deny_content)))) {
		if (tf)
			free(tf->deny);
		free(tf);
		return -ENOMEM;
	}
	tf->hold_ms = hold_ms ? atoi(hold_ms) : 1000;
	if (deny || hold || deny_content) {
		reg.operations = ops;
		reg.n_operations = n_ops;
	}
	reg.cookie = tf;
	r = flt_register_filter(m, &reg, &tf->filter);
	if (r < 0) {
		free(tf->deny);
		free(tf->hold);
		free(tf->deny_content);
		free(tf);
		return r;
	}
	the_tf = tf;
	if (port) {
		struct flt_port_attributes attr = { .name = port, .mode = 0666 };

		r = flt_create_communication_port(tf->filter, &tf->server, &attr, tf,
						  on_connect, on_disconnect, on_message,
						  64);
		if (r < 0) {
			flt_unregister_filter(tf->filter); /* calls unload */
			return r;
		}
	}
	*ret = tf->filter;
	return 0;
}
