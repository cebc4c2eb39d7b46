/* SPDX-License-Identifier: MIT */
/*
 * prom.h — the stats reply (docs/control.md) in the Prometheus text
 * exposition format (version 0.0.4): `fltmc stats --format=prometheus`
 * and fltmgrd's metrics_file for node_exporter's textfile collector.
 * One renderer for both, from the same JSON the daemon answers.
 */
#ifndef FLTMGR_PROM_H
#define FLTMGR_PROM_H

#include <json-c/json.h>
#include <stdio.h>

/* Writes every number of a stats reply as a metric: counters named
 * fltmgr_SECTION_NAME_total, gauges (the reply's "gauges" lists them)
 * fltmgr_SECTION_NAME, with HELP and TYPE lines; filters and ports are
 * labelled (filter, port), a filter's own counters are
 * fltmgr_filter_counter_total{filter,counter}. Returns 0 or -EIO. */
int prom_render(FILE *out, json_object *stats);

#endif
