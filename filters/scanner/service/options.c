/* SPDX-License-Identifier: MIT */
/*
 * options.c — the command line of the scanner service (see scanner(8)),
 * and where the port's socket file is. No side effects beyond printing
 * usage and errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "svc.h"

#ifndef FLTMGR_VERSION
#define FLTMGR_VERSION "unknown"
#endif

#define DEFAULT_PORT        "scanner"
#define DEFAULT_RUNTIME_DIR "/run/fltmgr"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: scanner --rules FILE|DIR [OPTIONS]\n"
		"Scans the files the scanner filter of fltmgrd asks about with YARA "
		"rules.\n"
		"  -r, --rules FILE|DIR    YARA rules: a file, or every *.yar and *.yara "
		"in DIR\n"
		"  -t, --threads N         scanning threads (default 2)\n"
		"  -m, --outstanding M     requests kept outstanding per thread "
		"(default 4)\n"
		"  -s, --max-size BYTES    larger files are not scanned (default 32M; "
		"K, M, G)\n"
		"      --oversize VERDICT  default (the filter's default verdict), clean "
		"or\n"
		"                          infected for larger files (default: default)\n"
		"      --exec-hold MS      keep an executed file leased this long after "
		"its\n"
		"                          verdict (default 250; 0: off; "
		"docs/scanner.md)\n"
		"      --scan-timeout SEC  per-file scan time limit (default 4)\n"
		"  -j, --json              detections as JSON Lines\n"
		"      --runtime-dir DIR   where the port is (default "
		"$FLTMGR_RUNTIME_DIR "
		"or " DEFAULT_RUNTIME_DIR ")\n"
		"  -p, --port NAME         the port's name, or a socket path (default "
		"" DEFAULT_PORT ")\n"
		"      --no-reconnect      exit (status 1) when the daemon goes away\n"
		"      --stats             print the filter's counters and exit\n"
		"  -q, --quiet             no connection state lines on stderr\n"
		"  -h, --help              this text\n"
		"  -V, --version           the version\n"
		"Signals: SIGHUP reloads the rules, SIGUSR1 prints counters, SIGINT and "
		"SIGTERM stop.\n");
}

static bool
parse_uint(const char *s, unsigned long long max, unsigned long long *ret)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M')
		mul = 1ull << 20;
	else if (*end == 'G')
		mul = 1ull << 30;
	if (mul > 1)
		end++;
	if (*end || v > max / mul)
		return false;
	*ret = v * mul;
	return true;
}

int
svc_parse_options(int argc, char **argv, struct svc_options *o)
{
	enum {
		OPT_RUNDIR = 256,
		OPT_NORECONNECT,
		OPT_STATS,
		OPT_OVERSIZE,
		OPT_TIMEOUT,
		OPT_EXEC_HOLD,
	};
	static const struct option longopts[] = {
		{ "rules", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "outstanding", required_argument, NULL, 'm' },
		{ "max-size", required_argument, NULL, 's' },
		{ "oversize", required_argument, NULL, OPT_OVERSIZE },
		{ "scan-timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "exec-hold", required_argument, NULL, OPT_EXEC_HOLD },
		{ "json", no_argument, NULL, 'j' },
		{ "runtime-dir", required_argument, NULL, OPT_RUNDIR },
		{ "port", required_argument, NULL, 'p' },
		{ "no-reconnect", no_argument, NULL, OPT_NORECONNECT },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	unsigned long long v;
	int c;

	*o = (struct svc_options){
		.port = DEFAULT_PORT,
		.threads = 2,
		.outstanding = 4,
		.max_size = 32ull << 20,
		.oversize_verdict = SCANNER_ERROR,
		.exec_hold_ms = 250,
		.scan_timeout = 4,
		.reconnect = true,
	};
	while ((c = getopt_long(argc, argv, "r:t:m:s:jp:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o->rules = optarg;
			break;
		case 't':
			if (!parse_uint(optarg, 32, &v) || v == 0) {
				fprintf(stderr,
					"scanner: --threads must be 1..32 (YARA's "
					"limit of concurrent scans)\n");
				return -SVC_EXIT_USAGE;
			}
			o->threads = (unsigned)v;
			break;
		case 'm':
			if (!parse_uint(optarg, 64, &v) || v == 0) {
				fprintf(stderr, "scanner: --outstanding must be 1..64\n");
				return -SVC_EXIT_USAGE;
			}
			o->outstanding = (unsigned)v;
			break;
		case 's':
			if (!parse_uint(optarg, 1ull << 40, &v)) {
				fprintf(stderr,
					"scanner: --max-size takes a size in bytes (K, "
					"M, "
					"G allowed), not '%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			o->max_size = v;
			break;
		case OPT_OVERSIZE:
			if (!strcmp(optarg, "default")) {
				o->oversize_verdict = SCANNER_ERROR;
			} else if (!strcmp(optarg, "clean") || !strcmp(optarg, "allow")) {
				o->oversize_verdict = SCANNER_CLEAN;
			} else if (!strcmp(optarg, "infected") ||
				   !strcmp(optarg, "deny")) {
				o->oversize_verdict = SCANNER_INFECTED;
			} else {
				fprintf(stderr,
					"scanner: --oversize is default, clean or "
					"infected, not '%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			break;
		case OPT_EXEC_HOLD:
			if (!parse_uint(optarg, 10000, &v)) {
				fprintf(stderr,
					"scanner: --exec-hold must be 0..10000 (ms), not "
					"'%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			o->exec_hold_ms = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			if (!parse_uint(optarg, 3600, &v) || v == 0) {
				fprintf(stderr, "scanner: --scan-timeout must be 1..3600 "
						"seconds\n");
				return -SVC_EXIT_USAGE;
			}
			o->scan_timeout = (int)v;
			break;
		case 'j':
			o->json = true;
			break;
		case OPT_RUNDIR:
			o->runtime_dir = optarg;
			break;
		case 'p':
			o->port = optarg;
			break;
		case OPT_NORECONNECT:
			o->reconnect = false;
			break;
		case OPT_STATS:
			o->stats = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("scanner %s\n", FLTMGR_VERSION);
			return -1;
		default:
			usage(stderr);
			return -SVC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "scanner: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -SVC_EXIT_USAGE;
	}
	if (!o->rules && !o->stats) {
		fprintf(stderr, "scanner: --rules FILE|DIR is required\n");
		usage(stderr);
		return -SVC_EXIT_USAGE;
	}
	if ((unsigned long long)o->threads * o->outstanding > SCANNER_MAX_WINDOW) {
		fprintf(stderr, "scanner: --threads x --outstanding must be at most %d\n",
			SCANNER_MAX_WINDOW);
		return -SVC_EXIT_USAGE;
	}
	return 0;
}

int
svc_port_path(const struct svc_options *o, char *buf, size_t size)
{
	const char *dir = o->runtime_dir;
	int n;

	if (strchr(o->port, '/')) {
		n = snprintf(buf, size, "%s", o->port);
	} else {
		if (!dir || !*dir)
			dir = getenv("FLTMGR_RUNTIME_DIR");
		if (!dir || !*dir)
			dir = DEFAULT_RUNTIME_DIR;
		n = snprintf(buf, size, "%s/%s", dir, o->port);
	}
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
