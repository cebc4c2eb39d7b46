/* SPDX-License-Identifier: MIT */
/*
 * ctl_request.h — decoding and checking one control-socket request (the
 * JSON object of docs/control.md) into a plain struct. Pure: no I/O, no
 * daemon state, so it is fuzzed on its own.
 */
#ifndef FLTMGR_CTL_REQUEST_H
#define FLTMGR_CTL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <fltmgr/filter.h>

#define CTL_MAX_REQUEST 4096

enum ctl_command {
	CTL_STATUS = 0,
	CTL_FILTERS,
	CTL_INSTANCES,
	CTL_PORTS,
	CTL_STATS,
	CTL_LOAD,
	CTL_UNLOAD,
	CTL_ATTACH,
	CTL_DETACH,
	CTL_RELOAD,
	CTL_VOLUMES,
	CTL_COMMAND_COUNT_,
};

struct ctl_request {
	enum ctl_command command;
	/* Point into a copy owned by the request (ctl_request_free). */
	char *name;
	char *path;
	char *altitude;
	char *object;
	enum flt_instance_kind kind;
};

/*
 * Decodes buf[0..len). Returns 0, or a negative errno with *ret_why set to
 * a sentence for the client (static storage or the buffer why[why_len]).
 */
int ctl_request_parse(const char *buf, size_t len, struct ctl_request *ret, char *why,
		      size_t why_len);
void ctl_request_free(struct ctl_request *r);

const char *ctl_command_name(enum ctl_command c);
/* Commands that only read state (allowed to control_group members). */
bool ctl_command_read_only(enum ctl_command c);

#endif
