/* SPDX-License-Identifier: MIT */
/*
 * ctl_render.h — fltmc's human output: one function per command turning
 * the daemon's successful reply into tables, sections or a confirmation.
 */
#ifndef FLTMGR_CTL_RENDER_H
#define FLTMGR_CTL_RENDER_H

#include <stdio.h>

#include <json-c/json.h>

/* What the user asked for, for the confirmation lines. */
struct ctl_invocation {
	const char *command;
	const char *name;     /* load, unload, attach, detach */
	const char *path;     /* attach, detach: as sent (absolute) */
	const char *kind;     /* attach */
	const char *altitude; /* load, or NULL */
};

/* Each prints the reply of a successful command to out. Members that are
 * missing or of an unexpected type print as "-"; extra members are
 * ignored. 0, or -ENOMEM (out may then hold part of the output). */
int ctl_render_filters(FILE *out, json_object *reply);
int ctl_render_instances(FILE *out, json_object *reply);
/* One row per mount: its point (prefixed "[pid N]" for another mount
 * namespace's), file system, mount id, source, and the filters with an
 * instance on it ("(auto)": attached by the filter's auto_attach). */
int ctl_render_volumes(FILE *out, json_object *reply);
int ctl_render_ports(FILE *out, json_object *reply);
int ctl_render_stats(FILE *out, json_object *reply);
int ctl_render_status(FILE *out, json_object *reply);
/* The one-line confirmation of load, unload, attach, detach and reload. */
int ctl_render_done(FILE *out, json_object *reply, const struct ctl_invocation *inv);

#endif
