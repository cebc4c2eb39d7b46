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

#include "common/runtime_dir.h"
#include "svc.h"

#ifndef FLTMGR_VERSION
#define FLTMGR_VERSION "unknown"
#endif

#define DEFAULT_PORT "scanner"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: scanner --rules PATH [OPTIONS]\n"
		"       scanner --rules PATH --check [OPTIONS]\n"
		"       scanner --stats | --self-test [--scratch DIR] [OPTIONS]\n"
		"Scans the files the scanner filter of fltmgrd asks about with YARA "
		"rules.\n"
		"Rules:\n"
		"  -r, --rules PATH        a rule file, an index of includes, a "
		"compiled (yarac)\n"
		"                          file, or a directory tree of them\n"
		"      --namespace MODE    file (one namespace per file, default) or "
		"folder\n"
		"                          (one per top-level folder)\n"
		"  -d NAME=VALUE           define an external variable (integer, "
		"true/false,\n"
		"                          or string); filename, filepath, extension,\n"
		"                          filetype and owner are defined per scan\n"
		"      --strict-rules      refuse to start if any rule file fails "
		"(default:\n"
		"                          leave it out, load the rest, say so)\n"
		"      --rule-warnings     print every compiler warning (default: a "
		"count)\n"
		"      --no-eicar          without the built-in rule that denies the "
		"EICAR\n"
		"                          test file (scanner --self-test needs one)\n"
		"      --check             load the rules, print the summary, exit\n"
		"Policy (scanner(8), POLICY):\n"
		"      --default-action A  deny (default) or report: a match of a rule\n"
		"                          whose metadata and tags decide nothing\n"
		"      --deny-tag TAG      matches of rules with this tag (or namespace) "
		"deny\n"
		"      --report-tag TAG    ...are only reported\n"
		"      --deny-score N      meta score/severity >= N denies, < N reports\n"
		"      --report-only       scan and log, deny nothing (a dry run)\n"
		"Limits:\n"
		"  -s, --max-size BYTES    larger files are not scanned (default 32M; "
		"K, M, G)\n"
		"      --oversize VERDICT  default (the filter's default verdict), allow "
		"or\n"
		"                          deny for larger files (default: default)\n"
		"      --scan-timeout SEC  per-file scan time limit (default 4)\n"
		"      --timeout-verdict V default, allow or deny for a scan over it\n"
		"                          (default: default); neither is ever cached\n"
		"Service:\n"
		"  -t, --threads N         scanning threads (default 2)\n"
		"  -m, --outstanding M     requests kept outstanding per thread "
		"(default 4)\n"
		"      --exec-hold MS      keep an executed file leased this long after "
		"its\n"
		"                          verdict (default 250; 0: off; "
		"docs/scanner.md)\n"
		"      --log TARGET        auto (journal under systemd, else stderr), "
		"journal,\n"
		"                          stderr or none: where decisions are logged\n"
		"  -j, --json              also each decision as JSON Lines on stdout\n"
		"      --runtime-dir DIR   where the port is (default "
		"$FLTMGR_RUNTIME_DIR "
		"or " RUNTIME_DIR_DEFAULT ")\n"
		"  -p, --port NAME         the port's name, or a socket path (default "
		"" DEFAULT_PORT ")\n"
		"      --no-reconnect      exit (status 1) when the daemon goes away\n"
		"      --stats             print the filter's and the running service's\n"
		"                          counters (per rule too) and exit\n"
		"      --self-test         check that the running daemon, filter and "
		"service\n"
		"                          deny the EICAR test file, and exit\n"
		"      --scratch DIR       where --self-test writes it (default "
		"/var/tmp)\n"
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

/* SCANNER_ERROR ("default": the filter's default verdict), SCANNER_CLEAN
 * or SCANNER_INFECTED; -1. */
static int
parse_verdict(const char *s)
{
	if (!strcmp(s, "default"))
		return SCANNER_ERROR;
	if (!strcmp(s, "allow") || !strcmp(s, "clean"))
		return SCANNER_CLEAN;
	if (!strcmp(s, "deny") || !strcmp(s, "infected"))
		return SCANNER_INFECTED;
	return -1;
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
		OPT_NAMESPACE,
		OPT_STRICT,
		OPT_NO_EICAR,
		OPT_WARNINGS,
		OPT_CHECK,
		OPT_DEFAULT_ACTION,
		OPT_DENY_TAG,
		OPT_REPORT_TAG,
		OPT_DENY_SCORE,
		OPT_REPORT_ONLY,
		OPT_TIMEOUT_VERDICT,
		OPT_LOG,
		OPT_SELF_TEST,
		OPT_SCRATCH,
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
		{ "namespace", required_argument, NULL, OPT_NAMESPACE },
		{ "define", required_argument, NULL, 'd' },
		{ "strict-rules", no_argument, NULL, OPT_STRICT },
		{ "no-eicar", no_argument, NULL, OPT_NO_EICAR },
		{ "rule-warnings", no_argument, NULL, OPT_WARNINGS },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "default-action", required_argument, NULL, OPT_DEFAULT_ACTION },
		{ "deny-tag", required_argument, NULL, OPT_DENY_TAG },
		{ "report-tag", required_argument, NULL, OPT_REPORT_TAG },
		{ "deny-score", required_argument, NULL, OPT_DENY_SCORE },
		{ "report-only", no_argument, NULL, OPT_REPORT_ONLY },
		{ "timeout-verdict", required_argument, NULL, OPT_TIMEOUT_VERDICT },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "self-test", no_argument, NULL, OPT_SELF_TEST },
		{ "scratch", required_argument, NULL, OPT_SCRATCH },
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
		.timeout_verdict = SCANNER_ERROR,
		.default_action = SVC_ACT_DENY,
		.deny_score = -1,
		.scratch = "/var/tmp",
		.exec_hold_ms = 250,
		.scan_timeout = 4,
		.reconnect = true,
	};
	while ((c = getopt_long(argc, argv, "r:t:m:s:jp:qhVd:", longopts, NULL)) != -1) {
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
		case OPT_TIMEOUT_VERDICT: {
			int v2 = parse_verdict(optarg);

			if (v2 < 0) {
				fprintf(stderr,
					"scanner: --%s is default, allow or deny, not "
					"'%s'\n",
					c == OPT_OVERSIZE ? "oversize"
							  : "timeout-verdict",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			if (c == OPT_OVERSIZE)
				o->oversize_verdict = v2;
			else
				o->timeout_verdict = v2;
			break;
		}
		case OPT_NAMESPACE:
			if (!strcmp(optarg, "file")) {
				o->ns_mode = SVC_NS_FILE;
			} else if (!strcmp(optarg, "folder")) {
				o->ns_mode = SVC_NS_FOLDER;
			} else {
				fprintf(stderr,
					"scanner: --namespace is file or folder, not "
					"'%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			break;
		case 'd': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg || o->n_defines == SVC_MAX_DEFINES) {
				fprintf(stderr,
					"scanner: -d takes NAME=VALUE (at most %d), not "
					"'%s'\n",
					SVC_MAX_DEFINES, optarg);
				return -SVC_EXIT_USAGE;
			}
			*eq = '\0';
			if (svc_externals_builtin(optarg)) {
				fprintf(stderr,
					"scanner: -d %s: defined per scan from the file; "
					"choose another name\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			for (unsigned i = 0; i < o->n_defines; i++)
				if (!strcmp(o->defines[i].name, optarg)) {
					fprintf(stderr, "scanner: -d %s given twice\n",
						optarg);
					return -SVC_EXIT_USAGE;
				}
			o->defines[o->n_defines++] =
				(struct svc_define){ .name = optarg, .value = eq + 1 };
			break;
		}
		case OPT_NO_EICAR:
			o->no_eicar = true;
			break;
		case OPT_STRICT:
			o->strict_rules = true;
			break;
		case OPT_WARNINGS:
			o->rule_warnings = true;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case OPT_DEFAULT_ACTION:
			if (!strcmp(optarg, "deny")) {
				o->default_action = SVC_ACT_DENY;
			} else if (!strcmp(optarg, "report")) {
				o->default_action = SVC_ACT_REPORT;
			} else {
				fprintf(stderr,
					"scanner: --default-action is deny or report, "
					"not '%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			break;
		case OPT_DENY_TAG:
		case OPT_REPORT_TAG: {
			bool deny = c == OPT_DENY_TAG;
			unsigned *n = deny ? &o->n_deny_tags : &o->n_report_tags;

			if (*n == SVC_MAX_TAGS || !*optarg) {
				fprintf(stderr,
					"scanner: --%s: at most %d non-empty tags\n",
					deny ? "deny-tag" : "report-tag", SVC_MAX_TAGS);
				return -SVC_EXIT_USAGE;
			}
			(deny ? o->deny_tags : o->report_tags)[(*n)++] = optarg;
			break;
		}
		case OPT_DENY_SCORE:
			if (!parse_uint(optarg, 1000000, &v)) {
				fprintf(stderr,
					"scanner: --deny-score takes a number, not "
					"'%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			o->deny_score = (long long)v;
			break;
		case OPT_REPORT_ONLY:
			o->report_only = true;
			break;
		case OPT_LOG:
			if (!strcmp(optarg, "auto")) {
				o->log_target = SVC_LOG_AUTO;
			} else if (!strcmp(optarg, "journal")) {
				o->log_target = SVC_LOG_JOURNAL;
			} else if (!strcmp(optarg, "stderr")) {
				o->log_target = SVC_LOG_STDERR;
			} else if (!strcmp(optarg, "none")) {
				o->log_target = SVC_LOG_NONE;
			} else {
				fprintf(stderr,
					"scanner: --log is auto, journal, stderr or "
					"none, "
					"not '%s'\n",
					optarg);
				return -SVC_EXIT_USAGE;
			}
			break;
		case OPT_SELF_TEST:
			o->self_test = true;
			break;
		case OPT_SCRATCH:
			o->scratch = optarg;
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
			if (!*optarg) {
				fprintf(stderr,
					"scanner: --runtime-dir needs a directory\n");
				return -SVC_EXIT_USAGE;
			}
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
	if (!o->rules && !o->stats && !o->self_test) {
		fprintf(stderr, "scanner: --rules PATH is required\n");
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
	int n;

	if (strchr(o->port, '/'))
		n = snprintf(buf, size, "%s", o->port);
	else
		n = snprintf(buf, size, "%s/%s",
			     runtime_dir_resolve(o->runtime_dir, NULL), o->port);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
