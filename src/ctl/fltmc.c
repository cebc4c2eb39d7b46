/* SPDX-License-Identifier: MIT */
/*
 * fltmc.c — the fltmgr admin tool, like Windows fltmc.exe. It parses the
 * command line, builds the request with json-c, talks to fltmgrd through
 * ctl_client, and prints the reply through ctl_render (or as JSON with
 * --json). It owns the mapping from every outcome to a one-line message on
 * stderr and an exit code (docs/control.md, "fltmc exit codes"), and is
 * the only place that decides to exit.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/runtime_dir.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_render.h"
#include "ctl/ctl_table.h"
#include "ctl/prom.h"

#ifndef FLTMGR_VERSION
#error "FLTMGR_VERSION must be defined by the build"
#endif

enum exit_code {
	EXIT_OK = 0,
	EXIT_REFUSED = 1,     /* the daemon refused or failed the command */
	EXIT_USAGE = 2,       /* bad command line */
	EXIT_NOT_RUNNING = 3, /* no socket, or nobody listening */
	EXIT_DENIED = 4,      /* socket mode, or the daemon refused the caller */
	EXIT_PROTOCOL = 5,    /* a reply that is not valid, or a timeout */
};

/* Command options, as bits of struct command.options. */
enum {
	OPT_ALTITUDE = 1u << 0,
	OPT_OBJECT = 1u << 1,
	OPT_KIND = 1u << 2,
	OPT_FILTER = 1u << 3,
};

struct command {
	const char *name;
	size_t n_args;     /* 0, 1 (NAME) or 2 (NAME PATH) */
	unsigned options;  /* the OPT_* it accepts */
	const char *usage; /* its synopsis after "fltmc " */
	const char *help;
	int (*render)(FILE *, json_object *); /* NULL: a confirmation line */
};

static const struct command commands[] = {
	{ "filters", 0, 0, "filters", "list the loaded filters (the default)",
	  ctl_render_filters },
	{ "instances", 0, OPT_FILTER, "instances [-f NAME]",
	  "list the filters' instances (or NAME's)", ctl_render_instances },
	{ "volumes", 0, 0, "volumes", "list the mounts and the filters on each",
	  ctl_render_volumes },
	{ "ports", 0, 0, "ports", "list communication ports and their clients",
	  ctl_render_ports },
	{ "stats", 0, 0, "stats", "show the counters", ctl_render_stats },
	{ "status", 0, 0, "status", "show the daemon's state", ctl_render_status },
	{ "load", 1, OPT_ALTITUDE | OPT_OBJECT,
	  "load NAME [--altitude A] [--object FILE]", "load a filter", NULL },
	{ "unload", 1, 0, "unload NAME", "unload a filter", NULL },
	{ "attach", 2, OPT_KIND, "attach NAME PATH [--kind subtree|mount|filesystem]",
	  "attach a filter instance to PATH", NULL },
	{ "detach", 2, 0, "detach NAME PATH", "detach a filter instance from PATH",
	  NULL },
	{ "reload", 0, 0, "reload", "reload the configuration (like SIGHUP)", NULL },
};

struct args {
	const char *runtime_dir;
	bool json, prometheus, help, version;
	const char *altitude, *object, *kind, *filter;
	unsigned given; /* OPT_* seen on the command line */
	const struct command *cmd;
	const char *name, *path;
};

static void __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("fltmc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see fltmc --help)\n", stderr);
}

static void
print_help(FILE *out)
{
	fputs("Usage: fltmc [--runtime-dir DIR] [--json] [COMMAND [ARGS]]\n"
	      "Manage the filters of fltmgrd, the fltmgr filter manager daemon.\n"
	      "\nCommands:\n",
	      out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];

		if (strlen(c->usage) <= 18)
			fprintf(out, "  %-18s %s\n", c->usage, c->help);
		else
			fprintf(out, "  %s\n  %-18s %s\n", c->usage, "", c->help);
	}
	fputs("\nOptions:\n"
	      "  --runtime-dir DIR  talk to DIR/control (default: $FLTMGR_RUNTIME_DIR,\n"
	      "                     else " RUNTIME_DIR_DEFAULT ")\n"
	      "  --json             print the daemon's reply as one line of JSON\n"
	      "  --format=FORMAT    text (the default), json (= --json), or\n"
	      "                     prometheus (stats: the text exposition format)\n"
	      "  -f, --filter NAME  instances: only NAME's (as Windows' fltmc -f)\n"
	      "  -h, --help         show this help\n"
	      "  -V, --version      show the version\n"
	      "\nExit status: 0 success, 1 the daemon refused the command, 2 usage "
	      "error,\n"
	      "3 fltmgrd not running, 4 permission denied, 5 protocol error or "
	      "timeout.\n",
	      out);
}

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Options may come anywhere (`fltmc load x --altitude 1`); `--` ends
 * them. Prints its own message; -EINVAL on a usage error. */
static int
parse_args(int argc, char **argv, struct args *a)
{
	enum { O_RUNTIME_DIR = 256, O_JSON, O_FORMAT, O_ALTITUDE, O_OBJECT, O_KIND };
	static const struct option longopts[] = {
		{ "runtime-dir", required_argument, NULL, O_RUNTIME_DIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "altitude", required_argument, NULL, O_ALTITUDE },
		{ "object", required_argument, NULL, O_OBJECT },
		{ "kind", required_argument, NULL, O_KIND },
		{ "filter", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *pos[4];
	size_t n_pos = 0, extra = 0;
	unsigned stray;
	int c;

	opterr = 0;
	/* "-": positional arguments come back in order as 1, whatever
	 * POSIXLY_CORRECT says; ":": a missing argument is ':'. */
	while ((c = getopt_long(argc, argv, "-:hVf:", longopts, NULL)) != -1) {
		switch (c) {
		case 1:
			if (n_pos < sizeof(pos) / sizeof(pos[0]))
				pos[n_pos++] = optarg;
			else
				extra++;
			break;
		case O_RUNTIME_DIR:
			a->runtime_dir = optarg;
			break;
		case O_JSON:
			a->json = true;
			break;
		case O_FORMAT:
			if (!strcmp(optarg, "json")) {
				a->json = true;
			} else if (!strcmp(optarg, "prometheus")) {
				a->prometheus = true;
			} else if (strcmp(optarg, "text") != 0) {
				usage_error("bad --format \"%s\": use text, json or "
					    "prometheus",
					    optarg);
				return -EINVAL;
			}
			break;
		case O_ALTITUDE:
			a->altitude = optarg;
			a->given |= OPT_ALTITUDE;
			break;
		case O_OBJECT:
			a->object = optarg;
			a->given |= OPT_OBJECT;
			break;
		case O_KIND:
			a->kind = optarg;
			a->given |= OPT_KIND;
			break;
		case 'f':
			a->filter = optarg;
			a->given |= OPT_FILTER;
			break;
		case 'h':
			a->help = true;
			break;
		case 'V':
			a->version = true;
			break;
		case ':':
			usage_error("option %s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			/* optopt is the character of a bad short option; 0 or a
			 * long option's value otherwise. */
			if (optopt > 0 && optopt < 128 && isgraph(optopt))
				usage_error("unknown option -%c", optopt);
			else
				usage_error("bad option %s", argv[optind - 1]);
			return -EINVAL;
		}
	}
	for (; optind < argc; optind++) {
		if (n_pos < sizeof(pos) / sizeof(pos[0]))
			pos[n_pos++] = argv[optind];
		else
			extra++;
	}
	if (a->help || a->version)
		return 0;

	a->cmd = find_command(n_pos > 0 ? pos[0] : "filters");
	if (!a->cmd) {
		usage_error("unknown command \"%s\"", pos[0]);
		return -EINVAL;
	}
	if (n_pos > 0)
		n_pos--; /* the arguments after the command */
	if (n_pos < a->cmd->n_args) {
		usage_error("%s needs %s; usage: fltmc %s", a->cmd->name,
			    n_pos == 0 ? "NAME" : "PATH", a->cmd->usage);
		return -EINVAL;
	}
	if (n_pos + extra > a->cmd->n_args) {
		usage_error("too many arguments; usage: fltmc %s", a->cmd->usage);
		return -EINVAL;
	}
	if (a->cmd->n_args >= 1)
		a->name = pos[1];
	if (a->cmd->n_args >= 2)
		a->path = pos[2];

	stray = a->given & ~a->cmd->options;
	if (stray) {
		usage_error("%s takes no --%s option; usage: fltmc %s", a->cmd->name,
			    (stray & OPT_ALTITUDE) ? "altitude"
			    : (stray & OPT_OBJECT) ? "object"
			    : (stray & OPT_FILTER) ? "filter"
						   : "kind",
			    a->cmd->usage);
		return -EINVAL;
	}
	if (a->prometheus && strcmp(a->cmd->name, "stats") != 0) {
		usage_error("--format=prometheus is for stats only, not %s",
			    a->cmd->name);
		return -EINVAL;
	}
	if (a->prometheus && a->json) {
		usage_error("--json and --format=prometheus: choose one");
		return -EINVAL;
	}
	if (a->kind && strcmp(a->kind, "subtree") != 0 && strcmp(a->kind, "mount") != 0 &&
	    strcmp(a->kind, "filesystem") != 0) {
		usage_error("bad --kind \"%s\": use subtree, mount or filesystem",
			    a->kind);
		return -EINVAL;
	}
	if (a->filter && !a->filter[0]) {
		usage_error("-f needs a filter name");
		return -EINVAL;
	}
	if ((a->name && !a->name[0]) || (a->path && !a->path[0])) {
		usage_error("%s: an empty %s", a->cmd->name,
			    a->name[0] ? "PATH" : "NAME");
		return -EINVAL;
	}
	if (a->runtime_dir && !a->runtime_dir[0]) {
		usage_error("--runtime-dir needs a directory");
		return -EINVAL;
	}
	return 0;
}

/* The daemon has its own working directory: send PATH resolved if it
 * exists, else joined to ours. *ret_path is the caller's to free. */
static int
absolute_path(const char *arg, char **ret_path)
{
	char *p = realpath(arg, NULL), *cwd;
	int n;

	if (!p && arg[0] == '/')
		p = strdup(arg);
	if (p) {
		*ret_path = p;
		return 0;
	}
	if (arg[0] == '/')
		return -ENOMEM;
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return -errno;
	n = asprintf(&p, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", arg);
	free(cwd);
	if (n < 0)
		return -ENOMEM;
	*ret_path = p;
	return 0;
}

static int
add_string(json_object *obj, const char *key, const char *value)
{
	json_object *v = json_object_new_string(value);

	if (!v)
		return -ENOMEM;
	if (json_object_object_add(obj, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* The request object of docs/control.md; the caller puts it. */
static int
build_request(const struct args *a, const char *path, json_object **ret_request)
{
	json_object *req = json_object_new_object();
	int r;

	if (!req)
		return -ENOMEM;
	r = add_string(req, "command", a->cmd->name);
	if (r == 0 && (a->name || a->filter))
		r = add_string(req, "name", a->name ? a->name : a->filter);
	if (r == 0 && a->altitude)
		r = add_string(req, "altitude", a->altitude);
	if (r == 0 && a->object)
		r = add_string(req, "object", a->object);
	if (r == 0 && path)
		r = add_string(req, "path", path);
	/* Always explicit, though the daemon defaults to subtree too. */
	if (r == 0 && strcmp(a->cmd->name, "attach") == 0)
		r = add_string(req, "kind", a->kind ? a->kind : "subtree");
	if (r < 0) {
		json_object_put(req);
		return r;
	}
	*ret_request = req;
	return 0;
}

static const char *
member_string(json_object *obj, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(obj, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

static void
permission_denied(const char *socket_path)
{
	fprintf(stderr,
		"fltmc: permission denied on %s: fltmc needs root (or membership in the "
		"daemon's control_group for read-only commands)\n",
		socket_path);
}

static int
connect_error(int r, const char *socket_path)
{
	switch (r) {
	case -ENOENT:
	case -ENOTDIR:
		fprintf(stderr,
			"fltmc: fltmgrd is not running (no control socket at %s)\n",
			socket_path);
		return EXIT_NOT_RUNNING;
	case -ECONNREFUSED:
		fprintf(stderr,
			"fltmc: fltmgrd is not running (nobody is listening on %s)\n",
			socket_path);
		return EXIT_NOT_RUNNING;
	case -EACCES:
	case -EPERM:
		permission_denied(socket_path);
		return EXIT_DENIED;
	case -ENAMETOOLONG:
		fprintf(stderr,
			"fltmc: the control socket path %s is too long for a unix "
			"socket: use "
			"a shorter --runtime-dir\n",
			socket_path);
		return EXIT_USAGE;
	case -ETIMEDOUT:
		fprintf(stderr,
			"fltmc: fltmgrd did not accept the connection on %s within %d "
			"s\n",
			socket_path, CTL_TIMEOUT_MS / 1000);
		return EXIT_PROTOCOL;
	default:
		fprintf(stderr, "fltmc: cannot connect to %s: %s\n", socket_path,
			strerror(-r));
		return EXIT_NOT_RUNNING;
	}
}

static int
call_error(int r, const char *socket_path)
{
	switch (r) {
	case -ETIMEDOUT:
		fprintf(stderr, "fltmc: no reply from fltmgrd within %d s\n",
			CTL_TIMEOUT_MS / 1000);
		return EXIT_PROTOCOL;
	case -ENODATA:
		fprintf(stderr,
			"fltmc: fltmgrd closed the connection without replying\n");
		return EXIT_PROTOCOL;
	case -EPROTO:
		fprintf(stderr,
			"fltmc: protocol error: the reply from fltmgrd is not one "
			"JSON object\n");
		return EXIT_PROTOCOL;
	case -EBADMSG:
		fprintf(stderr,
			"fltmc: protocol error: the reply from fltmgrd has no boolean "
			"\"ok\" member\n");
		return EXIT_PROTOCOL;
	case -EMSGSIZE:
		fprintf(stderr,
			"fltmc: protocol error: the reply from fltmgrd is over %u "
			"bytes or was truncated\n",
			CTL_REPLY_MAX);
		return EXIT_PROTOCOL;
	case -ENOMEM:
		fprintf(stderr, "fltmc: out of memory\n");
		return EXIT_REFUSED;
	default:
		fprintf(stderr, "fltmc: talking to fltmgrd on %s: %s\n", socket_path,
			strerror(-r));
		return EXIT_PROTOCOL;
	}
}

/* The daemon's {"ok": false, ...}: its message on stderr. */
static int
refused(const struct args *a, json_object *reply, const char *socket_path)
{
	const char *err = member_string(reply, "errno");
	const char *msg = member_string(reply, "error");
	char *e;

	if (err && strcmp(err, "EACCES") == 0) {
		permission_denied(socket_path);
		return EXIT_DENIED;
	}
	e = ctl_escape(msg ? msg : "the daemon gave no reason");
	if (!e) {
		fprintf(stderr, "fltmc: out of memory\n");
		return EXIT_REFUSED;
	}
	fprintf(stderr, "fltmc: %s: %s", a->cmd->name, e);
	free(e);
	if (err) {
		e = ctl_escape(err);
		if (e)
			fprintf(stderr, " (%s)", e);
		free(e);
	}
	fputc('\n', stderr);
	return EXIT_REFUSED;
}

/* Prints a successful reply the human way. */
static int
render(const struct args *a, const char *path, json_object *reply)
{
	struct ctl_invocation inv = {
		.command = a->cmd->name,
		.name = a->name,
		.path = path,
		.kind = a->kind ? a->kind : "subtree",
		.altitude = a->altitude,
	};
	int r;

	if (a->prometheus)
		r = prom_render(stdout, reply) < 0 ? -EIO : 0;
	else
		r = a->cmd->render ? a->cmd->render(stdout, reply)
				   : ctl_render_done(stdout, reply, &inv);
	if (r < 0) {
		fprintf(stderr, "fltmc: out of memory\n");
		return EXIT_REFUSED;
	}
	return EXIT_OK;
}

/* Connects, sends request, and handles the reply. */
static int
run(const struct args *a, const char *socket_path, const char *request, const char *path)
{
	json_object *reply = NULL;
	int fd = -1, r, code = EXIT_OK;

	r = ctl_connect(socket_path, &fd);
	if (r < 0)
		return connect_error(r, socket_path);
	r = ctl_call(fd, request, strlen(request), &reply);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		json_object_put(reply);
		return call_error(r, socket_path);
	}

	if (a->json) {
		const char *s = json_object_to_json_string_ext(
			reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

		if (s)
			printf("%s\n", s);
		else
			fprintf(stderr, "fltmc: out of memory\n");
		code = s ? EXIT_OK : EXIT_REFUSED;
	}
	if (!json_object_get_boolean(json_object_object_get(reply, "ok")))
		code = refused(a, reply, socket_path);
	else if (!a->json)
		code = render(a, path, reply);
	json_object_put(reply);
	return code;
}

static int
finish(int code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "fltmc: cannot write the output: %s\n", strerror(errno));
		return code == EXIT_OK ? EXIT_REFUSED : code;
	}
	return code;
}

int
main(int argc, char **argv)
{
	json_object *request = NULL;
	struct args a = { 0 };
	char socket_path[PATH_MAX];
	const char *dir, *text;
	char *path = NULL;
	int r, code;

	/* Only for the width of non-ASCII names in tables; the C locale is
	 * a fine fallback. */
	(void)setlocale(LC_CTYPE, "");

	if (parse_args(argc, argv, &a) < 0)
		return EXIT_USAGE;
	if (a.help) {
		print_help(stdout);
		return finish(EXIT_OK);
	}
	if (a.version) {
		printf("fltmc %s\n", FLTMGR_VERSION);
		return finish(EXIT_OK);
	}

	dir = runtime_dir_resolve(a.runtime_dir, NULL); /* not empty: parse_args */
	r = snprintf(socket_path, sizeof(socket_path), "%s/control", dir);
	if (r < 0 || (size_t)r >= sizeof(socket_path)) {
		usage_error("the runtime directory name is too long");
		return EXIT_USAGE;
	}

	if (a.path) {
		r = absolute_path(a.path, &path);
		if (r < 0) {
			fprintf(stderr, "fltmc: cannot make %s absolute: %s\n", a.path,
				strerror(-r));
			return EXIT_USAGE;
		}
	}
	r = build_request(&a, path, &request);
	if (r < 0) {
		fprintf(stderr, "fltmc: out of memory\n");
		free(path);
		return EXIT_REFUSED;
	}
	text = json_object_to_json_string_ext(
		request, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		fprintf(stderr, "fltmc: out of memory\n");
		code = EXIT_REFUSED;
	} else if (strlen(text) > CTL_REQUEST_MAX) {
		usage_error(
			"the request would be %zu bytes, over the %d the daemon accepts",
			strlen(text), CTL_REQUEST_MAX);
		code = EXIT_USAGE;
	} else {
		code = run(&a, socket_path, text, path);
	}
	json_object_put(request);
	free(path);
	return finish(code);
}
