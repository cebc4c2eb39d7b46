/* SPDX-License-Identifier: MIT */
/*
 * commands.h — what each control-socket command does, and the JSON reply
 * it produces (the shapes are in docs/control.md).
 */
#ifndef FLTMGR_COMMANDS_H
#define FLTMGR_COMMANDS_H

#include <json-c/json.h>

#include "daemon/ctl_request.h"
#include "daemon/daemon.h"

/* Runs rq; returns the reply object (never NULL unless out of memory). */
struct json_object *command_run(struct daemon *d, const struct ctl_request *rq);

/* {"ok": false, "errno": "EINVAL", "error": "..."} */
struct json_object *command_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
