/* SPDX-License-Identifier: MIT */
/*
 * port_demo.c — fltmgr-port-demo, the main job until the daemon exists.
 *
 * A filter (this process, libfltmgr) and a user-mode service (a separate
 * process, libfltuser, started as `fltmgr-port-demo --service`) talk over a
 * communication port the way an on-access scanner does:
 *   1. the filter asks the service for a verdict on simulated file opens;
 *   2. the service is SIGKILLed in the middle of that (the seed's `net
 *      stop`), the filter keeps sending and gets -ENOTCONN, nothing crashes,
 *      and a new service instance connects;
 *   3. one-way notifications are streamed as fast as possible.
 * It ends with a summary built from the port's own counters.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fltmgr/filter.h>
#include <fltmgr/user.h>

#define PORT_NAME "demo"

static flt_filter *g_filter;
static flt_port g_client;
static atomic_int g_connected;
static atomic_int g_connects; /* connections ever accepted */

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- the service ---- */

static int
service_main(void)
{
	filter_port *p = NULL;
	long allowed = 0, denied = 0, notes = 0;
	int r;

	for (int i = 0; i < 500; i++) {
		r = filter_connect_communication_port(PORT_NAME, 0, "demo-service", 12,
						      &p);
		if (r != -EUSERS && r != -ENOENT)
			break;
		usleep(10000);
	}
	if (r < 0) {
		fprintf(stderr, "service: cannot connect to port '%s': %s\n", PORT_NAME,
			strerror(-r));
		return 1;
	}
	for (;;) {
		struct filter_message_header h;
		char msg[512];
		int n = filter_get_message(p, &h, msg, sizeof(msg) - 1, -1);

		if (n < 0)
			break; /* the filter went away, or we were closed */
		msg[n] = '\0';
		if (h.reply_length == 0) {
			notes++;
			continue;
		}
		/* The "scan": deny executables in Downloads. */
		bool deny = strstr(msg, "/Downloads/") && strstr(msg, ".exe");
		const char *verdict = deny ? "deny" : "allow";

		deny ? denied++ : allowed++;
		(void)filter_reply_message(p, h.message_id, 0, verdict, strlen(verdict));
	}
	fprintf(stderr, "  service %d: allowed %ld, denied %ld, notifications %ld\n",
		(int)getpid(), allowed, denied, notes);
	filter_close_port(p);
	return 0;
}

/* ---- the filter ---- */

static int
on_connect(flt_port client, void *cookie, const void *ctx, size_t ctx_len,
	   const struct flt_peer *peer, void **ret_cookie)
{
	(void)cookie;
	(void)ret_cookie;
	g_client = client; /* plain store: the connect callback holds the port lock */
	printf("  connect:    pid %d uid %u, context \"%.*s\"\n", (int)peer->pid,
	       (unsigned)peer->uid, (int)ctx_len, (const char *)ctx);
	atomic_store(&g_connected, 1);
	atomic_fetch_add(&g_connects, 1);
	return 0;
}

static void
on_disconnect(void *cookie)
{
	(void)cookie;
	flt_close_client_port(g_filter, &g_client);
	atomic_store(&g_connected, 0);
	printf("  disconnect: client port closed\n");
}

/* Starts a service process and waits (up to 30 s) for its connection:
 * a new one, not a previous connection that is still being torn down. */
static pid_t
start_service(const char *self)
{
	int before = atomic_load(&g_connects);
	pid_t pid = fork();

	if (pid == 0) {
		execl(self, self, "--service", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 3000 && atomic_load(&g_connects) == before; i++)
		usleep(10000);
	if (atomic_load(&g_connects) == before)
		printf("   (the service did not connect within 30 s)\n");
	return pid;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static const char *const paths[] = {
		"/home/alice/report.pdf",
		"/home/alice/Downloads/setup.exe",
		"/usr/lib/libc.so.6",
		"/etc/passwd",
		"/home/bob/Downloads/invoice.exe",
	};
	struct flt_registration reg = { .name = "demo", .altitude = "370000" };
	struct flt_port_attributes attr = { .name = PORT_NAME, .mode = 0600 };
	struct flt_manager_options mo = { .log_level = FLT_LOG_WARNING };
	char dir[] = "/tmp/fltmgr-demo.XXXXXX", self[4096];
	const int verdicts = 4000, notes = 100000;
	long allow = 0, deny = 0, notconn = 0, timedout = 0, other = 0;
	double *lat = calloc(verdicts, sizeof(double));
	int nlat = 0, r;
	struct flt_port_stats st;
	flt_manager *m;
	flt_port server;
	ssize_t sl;
	pid_t svc;

	if (argc > 1 && !strcmp(argv[1], "--service"))
		return service_main();
	if (argc > 1) {
		fprintf(stderr,
			"usage: %s   (runs the port demo in a private directory)\n",
			argv[0]);
		return 2;
	}
	sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl < 0 || !lat || !mkdtemp(dir))
		return 1;
	self[sl] = '\0';
	setenv("FLTMGR_RUNTIME_DIR", dir, 1);
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("fltmgr port demo: filter pid %d, ports in %s\n\n", (int)getpid(), dir);
	r = flt_manager_new(&mo, &m);
	if (r == 0)
		r = flt_register_filter(m, &reg, &g_filter);
	if (r == 0)
		r = flt_create_communication_port(g_filter, &server, &attr, NULL,
						  on_connect, on_disconnect, NULL, 1);
	if (r < 0) {
		fprintf(stderr, "demo: cannot set up the filter: %s\n", strerror(-r));
		return 1;
	}

	printf("1. verdicts: %d simulated opens, each waiting for the service's answer\n",
	       verdicts);
	svc = start_service(self);
	for (int i = 0; i < verdicts; i++) {
		char msg[256], rep[16];
		size_t len = sizeof(rep);
		double t0;

		if (i == verdicts / 2) {
			printf("2. SIGKILL the service mid-stream (the seed's 'net "
			       "stop'), keep sending\n");
			kill(svc, SIGKILL);
			waitpid(svc, NULL, 0);
			/* The kernel closed its sockets; the disconnect callback
			 * follows at once. */
			for (int w = 0; w < 500 && atomic_load(&g_connected); w++)
				usleep(10000);
		}
		if (i == verdicts / 2 + 200) {
			printf("   ... 200 sends later, start a new service instance\n");
			svc = start_service(self);
		}
		snprintf(msg, sizeof(msg), "op=open pid=%d path=%s", 1000 + i % 50,
			 paths[i % 5]);
		t0 = now_us();
		r = flt_send_message(g_filter, &g_client, msg, strlen(msg), rep, &len,
				     1000);
		if (r == 0) {
			lat[nlat++] = now_us() - t0;
			len == 4 && !memcmp(rep, "deny", 4) ? deny++ : allow++;
		} else if (r == -ENOTCONN) {
			notconn++;
		} else if (r == -ETIMEDOUT) {
			timedout++;
		} else {
			other++;
		}
	}
	qsort(lat, (size_t)nlat, sizeof(double), cmp_double);
	printf("   answered %d: allow %ld, deny %ld; no service (-ENOTCONN) %ld; "
	       "timed out %ld; other %ld\n",
	       nlat, allow, deny, notconn, timedout, other);
	if (nlat)
		printf("   round trip: p50 %.1f us, p99 %.1f us\n", lat[nlat / 2],
		       lat[nlat * 99 / 100]);

	printf("3. notifications: %d one-way messages\n", notes);
	{
		double t0 = now_us();
		long ok = 0;

		for (int i = 0; i < notes; i++)
			ok += flt_send_message(g_filter, &g_client,
					       "op=close path=/tmp/x", 20, NULL, NULL,
					       1000) == 0;
		printf("   %ld queued in %.0f ms (%.0f msgs/s)\n", ok,
		       (now_us() - t0) / 1000, ok / ((now_us() - t0) / 1e6));
	}

	flt_port_get_stats(g_filter, &server, &st);
	/* Stop the service the polite way: close the filter side. */
	flt_close_client_port(g_filter, &g_client);
	waitpid(svc, NULL, 0);
	flt_port_get_stats(g_filter, &server, &st);
	printf("\nport '%s' counters: connections %llu, sent %llu, replies %llu, "
	       "timeouts %llu,\n"
	       "  failed on disconnect %llu, late replies %llu, malformed frames %llu\n",
	       PORT_NAME, (unsigned long long)st.connections_accepted,
	       (unsigned long long)st.messages_sent,
	       (unsigned long long)st.replies_received, (unsigned long long)st.timeouts,
	       (unsigned long long)st.disconnect_failures,
	       (unsigned long long)st.late_replies,
	       (unsigned long long)st.malformed_frames);
	flt_unregister_filter(g_filter);
	flt_manager_free(m);
	rmdir(dir);
	free(lat);
	printf("done: no crash, every send returned a defined status.\n");
	return other ? 1 : 0;
}
