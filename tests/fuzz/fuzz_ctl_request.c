/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ctl_request.c — libFuzzer target: any bytes as one control-socket
 * request. ctl_request_parse() either accepts a request whose fields obey
 * the schema (the members its command needs, absolute paths, printable
 * strings) or refuses with a non-empty reason; it never crashes or leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ctl_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_string(const char *s)
{
	if (!s)
		return;
	if (!*s)
		abort();
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request rq;
	char why[256] = "";
	int r = ctl_request_parse((const char *)data, size, &rq, why, sizeof(why));

	if (r == 0) {
		if ((unsigned)rq.command >= CTL_COMMAND_COUNT_)
			abort();
		if ((rq.command == CTL_LOAD || rq.command == CTL_UNLOAD ||
		     rq.command == CTL_ATTACH || rq.command == CTL_DETACH) &&
		    !rq.name)
			abort();
		if ((rq.command == CTL_ATTACH || rq.command == CTL_DETACH) &&
		    (!rq.path || rq.path[0] != '/'))
			abort();
		if (ctl_command_read_only(rq.command) && (rq.name || rq.path))
			abort();
		check_string(rq.name);
		check_string(rq.path);
		check_string(rq.altitude);
		check_string(rq.object);
		ctl_request_free(&rq);
	} else if (r == -EINVAL || r == -EMSGSIZE) {
		if (!why[0] || rq.name || rq.path)
			abort();
	} else if (r != -ENOMEM) {
		abort();
	}
	return 0;
}
