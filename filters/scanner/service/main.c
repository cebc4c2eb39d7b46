/* SPDX-License-Identifier: MIT */
/*
 * main.c — the scanner service: the user-mode half of the on-access
 * scanner (the filter is filters/scanner/, hosted by fltmgrd). It scans
 * the files the filter asks about with YARA rules and answers clean or
 * infected; see scanner(8) and docs/scanner.md. This file only ties the
 * command line to the session; exit statuses are enum svc_exit.
 */
#include "svc.h"

int
main(int argc, char **argv)
{
	struct svc_options o;
	int r = svc_parse_options(argc, argv, &o);

	if (r == -1)
		return SVC_EXIT_OK; /* --help, --version */
	if (r < 0)
		return -r;
	return svc_run(&o);
}
