/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_reload.c — reloads (SIGHUP and fltmc reload): the unchanged
 * filters and their services keep running and protecting, a bad
 * configuration or object changes nothing, a replaced object is picked
 * up, runtime changes under load, and a restarted or failing filter
 * holds its default verdict instead of letting opens through.
 *
 * The real fltmgrd and fltmc in a private mount namespace, root only;
 * the daemon, the paths of each test and its setup: daemon_fixture.h.
 */
#include "daemon_fixture.h"

/* ---- reloads under load ---- */

/* 0 if the filter answered "pong", else the error. */
static int
service_ping(struct service *s)
{
	char reply[16] = "";
	size_t len = 0;
	int r = filter_send_message(s->port, "ping", 4, reply, sizeof(reply), &len);

	if (r == 0 && (len != 4 || memcmp(reply, "pong", 4)))
		return -EPROTO;
	return r;
}

/* Opens in a loop on another thread: how many, and how many went wrong. */
struct prober {
	pthread_t thread;
	const char *name;
	int expect; /* 0 or -EPERM */
	atomic_bool stop;
	atomic_int done, wrong;
};

static void *
prober_main(void *arg)
{
	struct prober *p = arg;

	while (!atomic_load(&p->stop)) {
		if (try_open(p->name) != p->expect)
			atomic_fetch_add(&p->wrong, 1);
		atomic_fetch_add(&p->done, 1);
		usleep(200);
	}
	return NULL;
}

static void
prober_start(struct prober *p, const char *name, int expect)
{
	p->name = name;
	p->expect = expect;
	assert_int_equal(pthread_create(&p->thread, NULL, prober_main, p), 0);
}

/* Lets the prober run until it has made at least n opens (bounded: a
 * loaded machine may starve it for a while). */
static void
prober_wait_done(struct prober *p, int n)
{
	int64_t end = tu_now_ms() + 10000;

	while (atomic_load(&p->done) < n && tu_now_ms() < end)
		usleep(10000);
}

static int
prober_ran(void *arg)
{
	struct prober *p = arg;

	return atomic_load(&p->done) > 0;
}

static void
prober_stop(struct prober *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
}

static int64_t
daemon_counter(const char *name)
{
	struct json_object *o = fltmc_json("stats", NULL, NULL);
	int64_t v = jint(jget(o, "daemon"), name);

	json_object_put(o);
	return v;
}

/* SIGHUP with an added filter and a changed log level: the unchanged
 * filter's service stays connected and its instance denies throughout. */
static void
test_reload_keeps_service_and_protection(void **state)
{
	struct prober deny = { 0 }, allow = { 0 };
	struct service svc = { 0 };
	struct json_object *o;
	char extra[512], out[4096];
	int before;

	(void)state;
	copy_filter("tf2.so");
	daemon_start();
	service_connect(&svc);
	assert_int_equal(service_ping(&svc), 0);
	prober_start(&deny, "secret.txt", -EPERM);
	prober_start(&allow, "plain.txt", 0);
	/* Both probing before the reloads start (no rate is assumed: the
	 * machine may be busy). */
	assert_true(tu_wait_until(prober_ran, &deny, 10000));
	assert_true(tu_wait_until(prober_ran, &allow, 10000));
	before = atomic_load(&deny.done);

	snprintf(extra, sizeof(extra),
		 "\n[filter tf2]\naltitude = 200000\nobject = tf2.so\nattach = %s\n",
		 watch);
	write_conf(extra);
	kill(daemon_pid, SIGHUP);
	for (int i = 0; i < 100 && daemon_counter("reloads") < 1; i++)
		usleep(50000);
	assert_int_equal(daemon_counter("reloads"), 1);
	/* And once more through the control socket. */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	usleep(100000);
	prober_wait_done(&deny, before + 1);
	prober_stop(&deny);
	prober_stop(&allow);

	assert_true(atomic_load(&deny.done) > before); /* it probed across them */
	assert_int_equal(atomic_load(&deny.wrong), 0);
	assert_int_equal(atomic_load(&allow.wrong), 0);
	assert_int_equal(service_ping(&svc), 0); /* still connected */

	o = fltmc_json("filters", NULL, NULL);
	assert_int_equal(json_object_array_length(jget(o, "filters")), 2);
	json_object_put(o);
	o = fltmc_json("ports", NULL, NULL);
	assert_int_equal(
		jint(json_object_array_get_idx(jget(o, "ports"), 0), "connections"), 1);
	json_object_put(o);

	/* A changed setting restarts that filter: its service is told. */
	write_conf("param.extra = 1\n");
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	assert_int_equal(service_ping(&svc), -ENOTCONN);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	o = fltmc_json("filters", NULL, NULL);
	assert_int_equal(json_object_array_length(jget(o, "filters")), 1);
	json_object_put(o);
	filter_close_port(svc.port);
}

/* A configuration with errors is rejected by reload; nothing changes. */
static void
test_reload_rejects_bad_config(void **state)
{
	struct json_object *o;
	char out[4096];

	(void)state;
	daemon_start();
	write_conf("bogus = 1\nattach\n");
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 1);
	assert_non_null(strstr(read_file(logfile), "unknown key 'bogus'"));
	/* fltmc prints every FILE:LINE error; --json has them one by one */
	assert_non_null(strstr(out, "unknown key 'bogus'"));
	assert_non_null(strstr(out, ":12: syntax error"));
	/* the reply is the line that starts with {"ok" (the reason goes to
	 * stderr too, into the same file) */
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "--json", "reload"),
		1);
	{
		char *line = strstr(out, "{\"ok\"");

		assert_non_null(line);
		if (strchr(line, '\n'))
			*strchr(line, '\n') = '\0';
		o = json_tokener_parse(line);
	}
	assert_non_null(o);
	assert_int_equal(json_object_array_length(jget(o, "errors")), 2);
	assert_non_null(strstr(
		json_object_get_string(json_object_array_get_idx(jget(o, "errors"), 0)),
		":11: unknown key 'bogus'"));
	json_object_put(o);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "reload_failures"), 2);
	/* the notification outcome counters are there (jget fails if not) */
	{
		static const char *const outcomes[] = { "notif_ignored", "notif_resolved",
							"notif_unresolved", "notif_lost",
							"read_errors" };

		for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
			assert_true(jint(jget(o, "engine"), outcomes[i]) >= 0);
	}
	json_object_put(o);
}

/* A filter object replaced by a rename (the documented upgrade) is
 * picked up by the next reload: that filter restarts, no other change. */
static void
test_reload_picks_up_replaced_object(void **state)
{
	struct service svc = { 0 };
	struct json_object *o;
	char out[4096], from[300], to[300];

	(void)state;
	daemon_start();
	service_connect(&svc);
	assert_int_equal(service_ping(&svc), 0);
	/* Unchanged file: nothing restarts. */
	o = fltmc_json("reload", NULL, NULL);
	assert_int_equal(jint(o, "restarted"), 0);
	json_object_put(o);
	assert_int_equal(service_ping(&svc), 0);

	copy_filter("tf.so.new");
	snprintf(from, sizeof(from), "%s/tf.so.new", fdir);
	snprintf(to, sizeof(to), "%s/tf.so", fdir);
	assert_int_equal(rename(from, to), 0);
	o = fltmc_json("reload", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "ok")));
	assert_int_equal(jint(o, "restarted"), 1);
	json_object_put(o);
	assert_int_equal(service_ping(&svc), -ENOTCONN); /* it was restarted */
	filter_close_port(svc.port);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	assert_non_null(strstr(read_file(logfile), "object file was replaced"));
	(void)out;
}

/* attach, detach, unload, load while opens run; unload with a service
 * connected: the service sees the disconnect, the daemon carries on. */
static void
test_runtime_changes_under_load(void **state)
{
	struct prober allow = { 0 };
	struct service svc = { 0 };
	struct json_object *o;
	char out[4096], other[300];
	int before;

	(void)state;
	snprintf(other, sizeof(other), "%s/other", watch);
	assert_int_equal(mkdir(other, 0777), 0);
	tu_write_file_mode(strcat(strcpy((char[512]){ 0 }, other), "/secret.txt"), "s\n",
			   0644);
	daemon_start();
	service_connect(&svc);
	prober_start(&allow, "plain.txt", 0);
	assert_true(tu_wait_until(prober_ran, &allow, 10000));
	before = atomic_load(&allow.done);

	/* detach the configured instance: nothing denied there any more */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "detach",
			     "tf", watch),
			 0);
	assert_int_equal(try_open("secret.txt"), 0);
	/* attach a subdirectory only */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "attach",
			     "tf", other, "--kind", "subtree"),
			 0);
	assert_int_equal(try_open("other/secret.txt"), -EPERM);
	assert_int_equal(try_open("secret.txt"), 0);
	/* errors are reported, exit 1 */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "attach",
			     "tf", other),
			 1);
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "unload", "nope"),
		1);

	/* unload with the service connected */
	assert_int_equal(service_ping(&svc), 0);
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "unload", "tf"), 0);
	assert_int_equal(service_ping(&svc), -ENOTCONN);
	filter_close_port(svc.port);
	assert_int_equal(try_open("other/secret.txt"), 0);

	/* load it again from the configuration */
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "load", "tf"), 0);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	service_connect(&svc);
	assert_int_equal(service_ping(&svc), 0);
	filter_close_port(svc.port);

	prober_wait_done(&allow, before + 1);
	prober_stop(&allow);
	assert_true(atomic_load(&allow.done) > before); /* it probed across them */
	assert_int_equal(atomic_load(&allow.wrong), 0);
	o = fltmc_json("status", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "healthy")));
	json_object_put(o);
}

/* ---- fail-closed reloads ---- */

/* Prober processes: each opens, executes or reads one file in a loop and
 * counts how often that was allowed, in memory shared with us. */
enum probe_kind { PROBE_OPEN, PROBE_EXEC, PROBE_READ };

struct probe_shared {
	atomic_int stop, ready, tries, allowed;
};

struct proc_prober {
	pid_t pid;
	enum probe_kind kind;
	char path[512];
	struct probe_shared *sh;
};

static bool
probe_once(enum probe_kind kind, const char *path, int fd)
{
	char c;
	int status, k;
	pid_t pid;

	switch (kind) {
	case PROBE_OPEN:
		k = open(path, O_RDONLY | O_CLOEXEC);
		if (k < 0)
			return false;
		close(k);
		return true;
	case PROBE_EXEC:
		pid = fork();
		if (pid < 0)
			return false;
		if (pid == 0) {
			execl(path, path, (char *)NULL);
			_exit(99);
		}
		if (waitpid(pid, &status, 0) != pid)
			return false;
		return WIFEXITED(status) && WEXITSTATUS(status) == 0;
	case PROBE_READ:
		return pread(fd, &c, 1, 0) >= 0;
	}
	return false;
}

static void
proc_prober_start(struct proc_prober *p, struct probe_shared *sh, enum probe_kind kind,
		  const char *path)
{
	p->kind = kind;
	p->sh = sh;
	snprintf(p->path, sizeof(p->path), "%s", path);
	fflush(stdout);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		int fd = -1;

		/* The read prober needs the file open first (a permission
		 * event for a read is only made for a file opened while the
		 * filesystem had permission marks). */
		for (int i = 0; kind == PROBE_READ && fd < 0 && i < 10000; i++) {
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				usleep(1000);
		}
		if (kind == PROBE_READ && fd < 0)
			_exit(2);
		atomic_store(&sh->ready, 1);
		while (!atomic_load(&sh->stop)) {
			bool ok = probe_once(kind, path, fd);

			if (ok)
				atomic_fetch_add(&sh->allowed, 1);
			atomic_fetch_add(&sh->tries, 1);
			usleep(200);
		}
		_exit(0);
	}
}

static int
proc_prober_tried(void *arg)
{
	struct proc_prober *p = arg;

	return atomic_load(&p->sh->tries) > 0;
}

static void
proc_prober_stop(struct proc_prober *p)
{
	int status;

	atomic_store(&p->sh->stop, 1);
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Two fail-closed filters: tfo denies opens of secret files in watch/o,
 * tfx denies executions and reads of them in watch/x (no open callback);
 * both have default_verdict = deny. gen_* is a parameter with no effect
 * but to make a reload restart the filter. */
static void
write_deny_conf(int gen_o, int gen_x)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\nlog_level = info\n\n"
		 "[filter tfo]\naltitude = 300000\nobject = tfo.so\n"
		 "default_verdict = deny\nattach = %s/o\nparam.deny = secret\n"
		 "param.port = tfoport\nparam.gen = %d\n\n"
		 "[filter tfx]\naltitude = 290000\nobject = tfx.so\n"
		 "default_verdict = deny\nattach = %s/x\nparam.deny = secret\n"
		 "param.ops = exec,read\nparam.gen = %d\n",
		 fdir, watch, gen_o, watch, gen_x);
	tu_write_file_mode(conf, text, 0644);
}

static void
make_deny_tree(void)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/o", watch);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/x", watch);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/o/secret.txt", watch);
	tu_write_file_mode(p, "s\n", 0644);
	snprintf(p, sizeof(p), "%s/o/plain.txt", watch);
	tu_write_file_mode(p, "p\n", 0644);
	snprintf(p, sizeof(p), "%s/x/secret.txt", watch);
	tu_write_file_mode(p, "s\n", 0644);
	snprintf(p, sizeof(p), "%s/x/secret-true", watch);
	copy_file_mode("/bin/true", p, 0755);
	snprintf(p, sizeof(p), "%s/x/plain-true", watch);
	copy_file_mode("/bin/true", p, 0755);
	copy_filter("tfo.so");
	copy_filter("tfx.so");
}

/* A reload that restarts a fail-closed filter (default_verdict = deny)
 * never lets through what that filter denies: prober processes open,
 * execute and read its denied files throughout eight reloads that change
 * a parameter of both filters, and none succeeds. A reload that changes
 * only the other filter leaves this one alone (its service stays
 * connected). */
static void
test_reload_restart_holds_default_verdict(void **state)
{
	struct probe_shared *sh;
	struct proc_prober pr[3];
	struct service svc = { 0 };
	struct json_object *o;
	char path[3][512], p[512], out[4096];
	int before[3];
	const int reloads = 8;

	(void)state;
	make_deny_tree();
	write_deny_conf(0, 0);
	daemon_start();
	sh = mmap(NULL, 3 * sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, 3 * sizeof(*sh));
	snprintf(path[0], sizeof(path[0]), "%s/o/secret.txt", watch);
	snprintf(path[1], sizeof(path[1]), "%s/x/secret-true", watch);
	snprintf(path[2], sizeof(path[2]), "%s/x/secret.txt", watch);
	/* Denied while nothing reloads: the probes see the filters. */
	assert_false(probe_once(PROBE_OPEN, path[0], -1));
	assert_false(probe_once(PROBE_EXEC, path[1], -1));
	proc_prober_start(&pr[0], &sh[0], PROBE_OPEN, path[0]);
	proc_prober_start(&pr[1], &sh[1], PROBE_EXEC, path[1]);
	proc_prober_start(&pr[2], &sh[2], PROBE_READ, path[2]);
	for (int k = 0; k < 3; k++) {
		assert_true(tu_wait_until(proc_prober_tried, &pr[k], 10000));
		before[k] = atomic_load(&sh[k].tries);
	}
	for (int i = 1; i <= reloads; i++) {
		write_deny_conf(i, i);
		o = fltmc_json("reload", NULL, NULL);
		if (!json_object_get_boolean(jget(o, "ok")) || jint(o, "restarted") != 2)
			fail_msg("reload %d: %s", i, json_object_to_json_string(o));
		json_object_put(o);
	}
	for (int k = 0; k < 3; k++) {
		int64_t end = tu_now_ms() + 10000;

		/* at least one probe after the last reload */
		while (atomic_load(&sh[k].tries) <= before[k] + 1 && tu_now_ms() < end)
			usleep(10000);
		proc_prober_stop(&pr[k]);
	}
	print_message("probes during %d reloads: open %d/%d, exec %d/%d, read %d/%d "
		      "allowed\n",
		      reloads, atomic_load(&sh[0].allowed), atomic_load(&sh[0].tries),
		      atomic_load(&sh[1].allowed), atomic_load(&sh[1].tries),
		      atomic_load(&sh[2].allowed), atomic_load(&sh[2].tries));
	for (int k = 0; k < 3; k++) {
		assert_true(atomic_load(&sh[k].tries) > before[k]);
		if (atomic_load(&sh[k].allowed) != 0)
			fail_msg("%s of %s allowed %d times of %d during the reloads",
				 k == 0   ? "open"
				 : k == 1 ? "exec"
					  : "read",
				 path[k], atomic_load(&sh[k].allowed),
				 atomic_load(&sh[k].tries));
	}
	/* After the swaps, only what the filters deny is denied. */
	snprintf(p, sizeof(p), "%s/o/plain.txt", watch);
	assert_true(probe_once(PROBE_OPEN, p, -1));
	snprintf(p, sizeof(p), "%s/x/plain-true", watch);
	assert_true(probe_once(PROBE_EXEC, p, -1));
	assert_false(probe_once(PROBE_OPEN, path[0], -1));

	/* A reload that changes only tfx does not touch tfo. */
	snprintf(p, sizeof(p), "%s/tfoport", rundir);
	assert_int_equal(filter_connect_communication_port(p, 0, NULL, 0, &svc.port), 0);
	assert_int_equal(service_ping(&svc), 0);
	write_deny_conf(reloads, reloads + 1);
	o = fltmc_json("reload", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "ok")));
	assert_int_equal(jint(o, "restarted"), 1);
	json_object_put(o);
	assert_int_equal(service_ping(&svc), 0);
	filter_close_port(svc.port);
	assert_true(daemon_alive());
	munmap(sh, 3 * sizeof(*sh));
	(void)out;
}

/* A reload whose new object is refused (mode 0775, another owner), whose
 * entry point refuses, or whose instance cannot be attached keeps the
 * running fail-closed filter; fltmc reload fails with the reason, and
 * status is unhealthy naming the filter and why until a reload works. */
static void
test_reload_failure_keeps_running_filter(void **state)
{
	struct service svc = { 0 };
	char out[8192], obj[300];

	(void)state;
	snprintf(obj, sizeof(obj), "%s/tf.so", fdir);
	write_conf("default_verdict = deny\n");
	daemon_start();
	service_connect(&svc);
	expect_health(true, "tf", NULL);

	install_object(0775, 0);
	assert_int_equal(FLTMC(out, "reload"), 1);
	if (!strstr(out, obj) || !strstr(out, "writable by group or others"))
		fail_msg("reload output: %s", out);
	expect_tf_running(1);
	assert_int_equal(service_ping(&svc), 0); /* not even restarted */
	expect_health(false, "tf", "writable by group or others");
	assert_int_equal(FLTMC(out, "status"), 0);
	if (!strstr(out, "Healthy:") || !strstr(out, "no") || !strstr(out, "tf") ||
	    !strstr(out, "writable by group or others"))
		fail_msg("status output: %s", out);

	install_object(0644, 65534);
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "not owned by root"));
	expect_tf_running(1);
	assert_int_equal(service_ping(&svc), 0);
	expect_health(false, "tf", "not owned by root");

	install_object(0644, 0);
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	expect_health(true, "tf", NULL);
	filter_close_port(svc.port);

	/* The new settings' entry point refuses: the old filter runs on. */
	write_conf("default_verdict = deny\nparam.refuse = 5\n");
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "refused to load"));
	expect_tf_running(1);
	expect_health(false, "tf", "refused to load");

	/* An instance of the new settings cannot be attached. */
	write_conf("default_verdict = deny\nparam.gen = 2\n"
		   "attach = /nonexistent-fltmgr-dir\n");
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "/nonexistent-fltmgr-dir"));
	expect_tf_running(1);
	expect_health(false, "tf", "/nonexistent-fltmgr-dir");

	write_conf("default_verdict = deny\n");
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	expect_health(true, "tf", NULL);
	assert_true(daemon_alive());
}

/* A restart whose new settings fail and whose previous settings fail too
 * (the entry point refuses while a file exists): the fail-closed filter's
 * instances stay held shut, every open there is denied, fltmc shows it
 * held and status says why; a reload that can load it again lets go. */
static void
test_reload_failing_twice_holds_instances_shut(void **state)
{
	struct json_object *o, *f;
	char out[8192], flag[300], extra[512];

	(void)state;
	snprintf(flag, sizeof(flag), "%s/refuse-%s", scratch, strrchr(fdir, '/') + 1);
	snprintf(extra, sizeof(extra), "default_verdict = deny\nparam.refuse_if = %s\n",
		 flag);
	write_conf(extra);
	daemon_start();
	assert_int_equal(try_open("plain.txt"), 0);
	tu_write_file_mode(flag, "x\n", 0644);
	snprintf(extra, sizeof(extra),
		 "default_verdict = deny\nparam.refuse_if = %s\nparam.gen = 2\n", flag);
	write_conf(extra);
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "refused to load"));
	assert_true(daemon_alive());
	o = fltmc_json("filters", NULL, NULL);
	f = json_object_array_get_idx(jget(o, "filters"), 0);
	assert_non_null(f);
	assert_string_equal(json_object_get_string(jget(f, "state")), "held");
	json_object_put(o);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(try_open("secret.txt"), -EPERM);
		assert_int_equal(try_open("plain.txt"), -EPERM); /* held shut */
	}
	expect_health(false, "tf", "held shut");
	o = fltmc_json("instances", NULL, NULL);
	assert_string_equal(
		json_object_get_string(jget(
			json_object_array_get_idx(jget(o, "instances"), 0), "state")),
		"held");
	json_object_put(o);
	/* still refusing: still held */
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_int_equal(try_open("plain.txt"), -EPERM);
	/* it can load again: the hold goes */
	unlink(flag);
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	assert_int_equal(try_open("plain.txt"), 0);
	expect_health(true, "tf", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reload_keeps_service_and_protection,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_rejects_bad_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_picks_up_replaced_object,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_changes_under_load, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_restart_holds_default_verdict,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_failure_keeps_running_filter,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_reload_failing_twice_holds_instances_shut, setup, teardown),
	};
	int r;

	r = daemon_fixture_init("test_daemon_reload");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	daemon_fixture_fini();
	return r;
}
