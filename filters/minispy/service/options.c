/* SPDX-License-Identifier: MIT */
/*
 * options.c — the command line of the minispy service (see minispy(8)),
 * and where the port's socket file is. Nothing here has side effects
 * beyond printing usage and errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "common/runtime_dir.h"
#include "spy.h"

#ifndef FLTMGR_VERSION
#define FLTMGR_VERSION "unknown"
#endif

#define DEFAULT_PORT "minispy"
#define ALL_OPS      ((1u << MINISPY_OP_COUNT_) - 1)

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: minispy [OPTIONS]\n"
		"Prints the file activity the minispy filter of fltmgrd reports.\n"
		"  -j, --json             JSON Lines, one object per event\n"
		"  -o, --output FILE      append to FILE (reopened on SIGHUP) "
		"instead of stdout\n"
		"      --ops LIST         show only these operations (comma-separated:\n"
		"                         open exec read write close_write close attrib\n"
		"                         create delete rename, or all); loss records\n"
		"                         are always shown\n"
		"  -n, --count N          exit after N events\n"
		"  -r, --runtime-dir DIR  where the port is (default "
		"$FLTMGR_RUNTIME_DIR or " RUNTIME_DIR_DEFAULT ")\n"
		"  -p, --port NAME        the port's name, or a socket path "
		"(default " DEFAULT_PORT ")\n"
		"      --no-reconnect     exit (status 1) when the daemon goes away\n"
		"  -q, --quiet            no connection state lines on stderr\n"
		"  -h, --help             this text\n"
		"  -V, --version          the version\n");
}

/* "create,write" -> mask; -EINVAL naming the bad word on stderr. */
static int
parse_ops(const char *list, uint32_t *ret)
{
	char *copy = strdup(list), *save = NULL;
	uint32_t mask = 0;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		uint16_t op;

		if (!strcmp(w, "all")) {
			mask = ALL_OPS;
			continue;
		}
		for (op = 0; op < MINISPY_OP_COUNT_; op++)
			if (!strcmp(w, minispy_op_name(op)))
				break;
		if (op == MINISPY_OP_COUNT_) {
			fprintf(stderr,
				"minispy: --ops: unknown operation '%s' (use open, exec, "
				"read, write, close_write, close, attrib, create, "
				"delete, "
				"rename or all)\n",
				w);
			r = -EINVAL;
			break;
		}
		mask |= 1u << op;
	}
	free(copy);
	if (r == 0 && !mask) {
		fprintf(stderr, "minispy: --ops: the list is empty\n");
		r = -EINVAL;
	}
	if (r == 0)
		*ret = mask;
	return r;
}

int
spy_parse_options(int argc, char **argv, struct spy_options *o)
{
	enum { OPT_OPS = 256, OPT_NO_RECONNECT };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "ops", required_argument, NULL, OPT_OPS },
		{ "count", required_argument, NULL, 'n' },
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "port", required_argument, NULL, 'p' },
		{ "no-reconnect", no_argument, NULL, OPT_NO_RECONNECT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;

	*o = (struct spy_options){ .port = DEFAULT_PORT,
				   .ops = ALL_OPS,
				   .reconnect = true };
	while ((c = getopt_long(argc, argv, "jo:n:r:p:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 'o':
			o->output = optarg;
			break;
		case OPT_OPS:
			if (parse_ops(optarg, &o->ops) < 0)
				return -SPY_EXIT_USAGE;
			break;
		case 'n': {
			char *end;

			errno = 0;
			o->count = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' ||
			    !o->count) {
				fprintf(stderr,
					"minispy: --count needs a positive number, not "
					"'%s'\n",
					optarg);
				return -SPY_EXIT_USAGE;
			}
			break;
		}
		case 'r':
			if (!*optarg) {
				fprintf(stderr,
					"minispy: --runtime-dir needs a directory\n");
				return -SPY_EXIT_USAGE;
			}
			o->runtime_dir = optarg;
			break;
		case 'p':
			o->port = optarg;
			break;
		case OPT_NO_RECONNECT:
			o->reconnect = false;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("minispy " FLTMGR_VERSION "\n");
			return -1;
		default:
			usage(stderr);
			return -SPY_EXIT_USAGE;
		}
	}
	if (!strchr(o->port, '/') &&
	    (!*o->port || strlen(o->port) > 64 ||
	     strspn(o->port, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			     "0123456789._-") != strlen(o->port))) {
		fprintf(stderr,
			"minispy: --port: '%s' is not a port name ([A-Za-z0-9._-], 1 to "
			"64 characters) or a path\n",
			o->port);
		return -SPY_EXIT_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "minispy: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -SPY_EXIT_USAGE;
	}
	return 0;
}

int
spy_port_path(const struct spy_options *o, char *buf, size_t size)
{
	int n;

	if (strchr(o->port, '/'))
		n = snprintf(buf, size, "%s", o->port);
	else
		n = snprintf(buf, size, "%s/%s",
			     runtime_dir_resolve(o->runtime_dir, NULL), o->port);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
