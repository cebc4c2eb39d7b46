/* SPDX-License-Identifier: MIT */
/*
 * main.c — the minispy service: the user-mode half of the minispy
 * activity monitor (the filter is filters/minispy/, hosted by fltmgrd).
 * It connects to the filter's communication port through libfltuser and
 * prints every record it receives, as text or JSON Lines; see minispy(8)
 * and docs/minispy.md. This file only ties the command line to the
 * session; exit statuses are enum spy_exit.
 */
#include <stdlib.h>
#include <unistd.h>

#include "spy.h"

int
main(int argc, char **argv)
{
	struct spy_options o;
	int r = spy_parse_options(argc, argv, &o);

	if (r == -1)
		return SPY_EXIT_OK; /* --help, --version */
	if (r < 0)
		return -r;
	{
		char host[256] = "";

		(void)gethostname(host, sizeof(host) - 1);
		spy_set_host(host);
	}
	return spy_run(&o);
}
