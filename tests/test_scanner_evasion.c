/* SPDX-License-Identifier: MIT */
/*
 * test_scanner_evasion.c — what a file's owner can try to get a marked
 * file past the scanner: pad it past --max-size, write it through a
 * shared mmap (no modify event), make scans fail or time out to get
 * fail-open allows, change it during its scan, rewrite a program while
 * its exec is scanned (docs/security.md).
 *
 * The real fltmgrd loading scanner.so and the real scanner service, in a
 * private mount namespace, root only; the daemon, the service, the paths
 * of each test and its setup: scanner_fixture.h.
 */
#include "scanner_fixture.h"

/* This program re-executed as an unprivileged attacker (see main). */
#define MMAP_ARG "--mmap-attacker"

/* ---- fail-open verdicts and files that change while scanned ---- */

/* This process as a scanner service (window 1: excluded, so its own
 * opens and writes are not held up); the filter sends it requests. */
static filter_port *
fake_service(void)
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE];
	filter_port *p = NULL;
	char path[300];

	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(1, ctx);
	assert_int_equal(filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p),
			 0);
	return p;
}

/* A child that opens path once; its exit status is 0 or the errno. */
static pid_t
child_open(const char *path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(try_open(path, NULL));
	return pid;
}

static int
child_result(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Takes the next request (its descriptor closed unless ret_fd). */
static uint64_t
fake_take(filter_port *p, int *ret_fd)
{
	uint8_t buf[SCANNER_REQ_MAX];
	struct filter_message_header h;
	int r = filter_get_message(p, &h, buf, sizeof(buf), WAIT_MS);

	if (r < 0)
		fail_msg("no request for the fake service: %s", strerror(-r));
	assert_true(h.fd >= 0);
	if (ret_fd)
		*ret_fd = h.fd;
	else
		close(h.fd);
	return h.message_id;
}

static void
fake_answer(filter_port *p, uint64_t id, enum scanner_verdict v)
{
	uint8_t reply[SCANNER_REPLY_SIZE];

	scanner_reply_encode(v, reply);
	assert_int_equal(filter_reply_message(p, id, 0, reply, sizeof(reply)), 0);
}

/* Writes text at offset 0 of path (through its name, as another writer). */
static void
overwrite(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, text, strlen(text), 0), (ssize_t)strlen(text));
	close(fd);
}

/*
 * Every default verdict that allows (no service, a service that could not
 * scan, the deadline, a malformed reply, a service gone with the request)
 * is counted, logged at warning level with the path, the pid and the
 * executable, at most once a second per cause with the number left out,
 * and never cached: the next open of the same (infected) file is asked
 * again, and denied.
 */
static void
fail_open_verdicts_are_logged_and_never_cached(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_], id;
	char line[PATH_MAX + 128], self[PATH_MAX];
	int64_t t_first;
	filter_port *p;
	ssize_t n;
	pid_t c;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* Before Linux 5.15 (no FAN_REPORT_PIDFD) the engine gives the pid
	 * only: the line says so instead of naming the program. */
	if (tu_kernel_lacks("pidfd"))
		snprintf(self, sizeof(self), "exe unknown");
	/* Infected files, written before anyone watches; each default below
	 * on its own file, since a denial that follows it is cached. */
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "bad%d.txt", i);
		tu_write_file(at(name), "header " MARKER " trailer\n");
	}
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	daemon_start_params(DEADLINE, false, "param.inline_ms = 0\n");

	/* No service: allowed, logged once for six opens in a row. */
	t_first = tu_now_ms();
	for (int i = 0; i < 6; i++)
		assert_int_equal(try_open(at("bad.txt"), NULL), 0);
	snprintf(line, sizeof(line),
		 "open of %s by pid %d (%s) ALLOWED: no_service_defaults (unscanned, "
		 "default verdict: no service connected)",
		 at("bad.txt"), (int)getpid(), self);
	assert_true(tu_wait_in_file(dlog, line, 1, WAIT_MS));
	assert_int_equal(tu_count_in_file(dlog, "no service connected"), 1);

	p = fake_service();
	/* The service could not scan it. */
	c = child_open(at("bad0.txt"));
	fake_answer(p, fake_take(p, NULL), SCANNER_ERROR);
	assert_int_equal(child_result(c), 0);
	snprintf(line, sizeof(line), "open of %s by pid %d (%s) ALLOWED: service_errors",
		 at("bad0.txt"), (int)c, self);
	assert_true(tu_wait_in_file(dlog, line, 1, WAIT_MS));
	assert_true(tu_wait_in_file(dlog, "the service could not scan it", 1, WAIT_MS));
	/* Not cached: asked again, and this time denied. */
	c = child_open(at("bad0.txt"));
	fake_answer(p, fake_take(p, NULL), SCANNER_INFECTED);
	assert_int_equal(child_result(c), EPERM);

	/* No answer before the deadline. */
	c = child_open(at("bad1.txt"));
	id = fake_take(p, NULL);
	assert_int_equal(child_result(c), 0);
	assert_true(tu_wait_in_file(dlog, "no verdict before the deadline", 1, WAIT_MS));
	/* the late answer is refused */
	{
		uint8_t reply[SCANNER_REPLY_SIZE];

		scanner_reply_encode(SCANNER_CLEAN, reply);
		assert_int_equal(filter_reply_message(p, id, 0, reply, sizeof(reply)),
				 -ENOENT);
	}
	c = child_open(at("bad1.txt"));
	fake_answer(p, fake_take(p, NULL), SCANNER_INFECTED);
	assert_int_equal(child_result(c), EPERM);

	/* A malformed reply. */
	c = child_open(at("bad2.txt"));
	id = fake_take(p, NULL);
	assert_int_equal(filter_reply_message(p, id, 0, "bad", 3), 0);
	assert_int_equal(child_result(c), 0);
	assert_true(tu_wait_in_file(dlog, "sent a malformed reply", 1, WAIT_MS));

	/* The service goes away with the request. */
	c = child_open(at("bad3.txt"));
	(void)fake_take(p, NULL);
	filter_close_port(p);
	assert_int_equal(child_result(c), 0);
	assert_true(tu_wait_in_file(dlog, "the service went away with the request", 1,
				    WAIT_MS));

	/* No service again, more than a second after the first such line:
	 * logged, with the five left out. (Once our own connection is gone:
	 * until then this process is excluded as a service.) */
	snprintf(line, sizeof(line), "service pid %d disconnected", (int)getpid());
	assert_true(tu_wait_in_file(dlog, line, 1, WAIT_MS));
	while (tu_now_ms() - t_first < 1100)
		usleep(10000);
	assert_int_equal(try_open(at("bad.txt"), NULL), 0);
	assert_true(tu_wait_in_file(dlog, "(5 more like it since the last report)", 1,
				    WAIT_MS));

	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_no_service_defaults], 7);
	assert_int_equal(v[SCANNER_CTR_service_errors], 1);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 1);
	assert_int_equal(v[SCANNER_CTR_errors], 1);
	assert_int_equal(v[SCANNER_CTR_disconnect_defaults], 1);
	assert_int_equal(v[SCANNER_CTR_default_allows], 11);
	assert_int_equal(v[SCANNER_CTR_infected], 2);
	assert_int_equal(v[SCANNER_CTR_cache_hits], 0);
}

/*
 * Whether a change right after another one, once the first was looked
 * at, gets a newer mtime (multigrain timestamps, Linux 6.13). Before,
 * timestamps advance once a clock tick (1 to 4 ms): a rewrite of the same
 * size within one tick of the last change leaves the file's key (size,
 * mtime, ctime) as it was, and the scanner cannot tell (README, "Kernel
 * support").
 */
static bool
timestamps_are_coarse(const char *path)
{
	for (int i = 0; i < 5; i++) {
		struct stat a, b;

		tu_write_file(path, "1");
		assert_int_equal(stat(path, &a), 0);
		tu_write_file(path, "2");
		assert_int_equal(stat(path, &b), 0);
		if (a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
		    a.st_mtim.tv_nsec == b.st_mtim.tv_nsec)
			return true;
	}
	return false;
}

static void
file_changed_during_its_scan_is_scanned_again(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_], id;
	char buf[128];
	filter_port *p;
	bool coarse;
	ssize_t n;
	pid_t c;
	int fd;

	(void)state;
	coarse = timestamps_are_coarse(at("tick"));
	tu_write_file(at("f"), CLEANTXT);
	tu_write_file(at("g"), CLEANTXT);
	daemon_start_params(SCAN_DEADLINE, false, "param.inline_ms = 0\n");
	p = fake_service();

	c = child_open(at("f"));
	id = fake_take(p, NULL);
	overwrite(at("f"), MARKER); /* during the scan */
	fake_answer(p, id, SCANNER_CLEAN);
	id = fake_take(p, &fd); /* asked again */
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, MARKER));
	fake_answer(p, id, SCANNER_INFECTED);
	assert_int_equal(child_result(c), EPERM);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_changed_during_scan], 1);
	assert_int_equal(v[SCANNER_CTR_rescans], 1);
	assert_int_equal(v[SCANNER_CTR_clean], 0);
	assert_int_equal(v[SCANNER_CTR_infected], 1);

	/* Changing during every scan: denied, with default allow. On a
	 * kernel with coarse timestamps each change waits out a tick, or it
	 * could not be seen (a residue of such kernels, not tested here). */
	if (coarse)
		print_message("note: coarse file timestamps (Linux < 6.13): each "
			      "rewrite waits 20 ms, a same-size rewrite within one "
			      "clock tick of the last change is not seen\n");
	c = child_open(at("g"));
	for (int i = 0; i <= 3; i++) {
		char text[sizeof(CLEANTXT)];

		id = fake_take(p, NULL);
		if (coarse)
			usleep(20000);
		snprintf(text, sizeof(text), "%s", CLEANTXT);
		text[0] = (char)('a' + i);
		overwrite(at("g"), text);
		fake_answer(p, id, SCANNER_CLEAN);
	}
	assert_int_equal(child_result(c), EPERM);
	assert_true(tu_wait_in_file(
		dlog, "denied: changed_denies (it changed during each of its scans", 1,
		WAIT_MS));
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_changed_denies], 1);
	assert_int_equal(v[SCANNER_CTR_rescans], 1 + 3);
	assert_int_equal(v[SCANNER_CTR_clean], 0);
	assert_int_equal(v[SCANNER_CTR_default_allows], 0);
	filter_close_port(p);
}

/* A file the service will not read (over its --max-size) gets the filter's
 * default verdict: with default deny an unprivileged user cannot pad a
 * file past the limit to have it allowed unscanned (it was "clean" by
 * default). Logged, and not cached. */
static void
oversize_file_gets_the_default_verdict(void **state)
{
	const char *extra[] = { "--max-size", "1K", NULL };
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	write_sized(at("big"), 4096, true); /* before anyone watches */
	tu_write_file(at("small-bad"), MARKER);
	tu_write_file(at("small-clean"), CLEANTXT);
	daemon_start(SCAN_DEADLINE, true);
	svc_start(extra);
	assert_int_equal(try_open(at("big"), NULL), EPERM);
	assert_int_equal(try_open(at("big"), NULL), EPERM);
	assert_int_equal(try_open(at("small-bad"), NULL), EPERM);
	assert_int_equal(try_open(at("small-clean"), NULL), 0);
	assert_true(tu_wait_in_file(dlog,
				    "denied: service_errors (unscanned, default verdict: "
				    "the service could not scan it",
				    1, WAIT_MS));
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_service_errors], 2); /* asked twice */
	assert_int_equal(svc_stat("oversize"), 2);
}

/*
 * A user runs their clean program (its verdict may be cached, in the
 * kernel and in the filter), rewrites it through a shared writable
 * mapping, which makes no FAN_MODIFY event and on tmpfs does not move
 * mtime or ctime, and runs it again: the marked program must not run.
 * Default deny, as a careful administrator would configure.
 */
static void
exec_after_a_write_through_mmap_is_scanned(void **state)
{
	char dir[200], path[256];
	int r;

	(void)state;
	daemon_start(SCAN_DEADLINE, true);
	svc_start(NULL);
	snprintf(dir, sizeof(dir), "%s/u", watch);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/m%d", dir, i);
		r = run_as_nobody(MMAP_ARG, path);
		if (r == 0)
			fail_msg("try %d: the program rewritten through mmap ran", i);
		if (r != 100)
			fail_msg("try %d: attacker status %d", i, r);
	}
}

/* The same for an open. uid 65534 maps its clean file shared and
 * writable and stores into it (the page is now dirty), root opens it (a
 * clean verdict, cached with the file's times), the owner stores the
 * marker through the same mapping (a dirty page takes no fault: no
 * timestamp moves anywhere, the cache key still matches), and root opens
 * it again: that open must be scanned and denied. */
static void
open_after_a_write_through_mmap_is_scanned(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	char path[256], c = 0;
	struct stat a, b;
	int go[2], ready[2], st;
	pid_t pid;

	(void)state;
	daemon_start(SCAN_DEADLINE, true);
	svc_start(NULL);
	snprintf(path, sizeof(path), "%s/doc", watch);
	tu_write_file(path, CLEANTXT "\n" CLEANTXT "\n");
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		size_t n = strlen(MARKER);
		char *map;
		int fd;

		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		fd = open(path, O_RDWR | O_CLOEXEC);
		map = fd < 0 ? MAP_FAILED
			     : mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			_exit(3);
		((volatile char *)map)[n - 1] = map[n - 1]; /* dirty the page now */
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(4);
		memcpy(map, MARKER, n); /* no fault, no timestamp */
		if (write(ready[1], "w", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(5);
		_exit(0); /* the mapping stays until now */
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(try_open(path, NULL), 0);
	assert_int_equal(try_open(path, NULL), 0); /* clean, from the cache */
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(stat(path, &b), 0);
	print_message("mtime %s, ctime %s by the store through the dirty mapping\n",
		      a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
				      a.st_mtim.tv_sec == b.st_mtim.tv_sec
			      ? "unchanged"
			      : "changed",
		      a.st_ctim.tv_nsec == b.st_ctim.tv_nsec &&
				      a.st_ctim.tv_sec == b.st_ctim.tv_sec
			      ? "unchanged"
			      : "changed");
	st = try_open(path, NULL);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	{
		int ws;

		assert_int_equal(waitpid(pid, &ws, 0), pid);
		assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	}
	assert_int_equal(st, EPERM);
	filter_stats(v);
	assert_true(v[SCANNER_CTR_writable_rescans] >= 1);
}

/* ---- content that changes while it is scanned ---- */

/*
 * The attacker's side (this program re-executed under setpriv as uid
 * 65534 with RACE_ARG MODE DIR N [CTL ACK]): N times, it makes DIR/xI, a
 * copy of /bin/true followed by CLEANTXT, opens it for writing, and has it
 * executed: by a child of its own (MODE "self"), or by the test, running
 * as root, which it asks through the descriptor CTL and which answers on
 * ACK when the program has ended (MODE "root"). While the exec waits for
 * the scanner it watches the file's atime, which the scanner's pread()
 * moves: at the first move (the scan of the exec's FAN_OPEN_EXEC_PERM) it
 * rewrites the clean bytes (so that verdict is not cached), at the second
 * (the scan of FAN_OPEN_PERM) it writes MARKER over them, and it closes the
 * file before the verdict, so that the exec's deny_write_access() finds
 * no writer. An exec that succeeds after the marker was written ran the
 * marked program.
 *
 * Prints one line: "race runs=N hits=H marked=M denied=D busy=B clean=C",
 * hits: iterations in which the first scan's read was seen and the file
 * written right then, while the exec waited; marked: the marked program
 * ran (self mode; in root mode the test counts); denied: EPERM; busy:
 * ETXTBSY (a writer was still open when the kernel denied writes).
 */
#define RACE_ARG "--race-attacker"

static bool
atime_moves(const char *path, const struct timespec *from, int timeout_us)
{
	int64_t end = tu_now_ms() * 1000 + timeout_us;
	struct stat sb;

	do {
		if (stat(path, &sb) == 0 && (sb.st_atim.tv_sec != from->tv_sec ||
					     sb.st_atim.tv_nsec != from->tv_nsec))
			return true;
	} while (tu_now_ms() * 1000 < end);
	return false;
}

static int
race_attacker_main(int argc, char **argv)
{
	const char *mode = argv[2], *dir = argv[3];
	int n = atoi(argv[4]), ctl = argc > 6 ? atoi(argv[5]) : -1,
	    ack = argc > 6 ? atoi(argv[6]) : -1;
	int hits = 0, marked = 0, denied = 0, busy = 0, late_ones = 0;
	/* For measuring (docs/scanner.md): how long to wait for the second
	 * atime move, and a delay before the marker is written, to aim past
	 * the scanner's last check. */
	int t2_us = getenv("RACE_T2_US") ? atoi(getenv("RACE_T2_US")) : 20000;
	int delay_us = getenv("RACE_DELAY_US") ? atoi(getenv("RACE_DELAY_US")) : 0;
	/* RACE_REOPEN=1: hold no writer across the exec; open one when the
	 * first scan's read is seen, write the marker, close (measuring). */
	bool reopen = getenv("RACE_REOPEN") != NULL;
	static char body[1 << 20];
	ssize_t len;
	off_t off;
	int fd;

	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, body, sizeof(body) - 64) : -1;
	if (len <= 0)
		return 2;
	close(fd);
	off = (off_t)len;
	memcpy(body + len, CLEANTXT, strlen(CLEANTXT));
	len += (ssize_t)strlen(CLEANTXT);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat sb;
		bool hit1, late = false, reaped = false, wrote = false;
		int w, st = 0, go[2], res = -1;
		pid_t pid = -1;

		snprintf(path, sizeof(path), "%s/x%d", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
		if (fd < 0 || write(fd, body, (size_t)len) != len || close(fd) < 0)
			return 3;
		w = open(path, O_WRONLY | O_CLOEXEC);
		if (w < 0)
			return 4;
		/* The scan of that open moved atime past mtime, and relatime
		 * moves it again only for a read after a change: rewrite. Then
		 * wait for a later tick of the coarse clock, so that the next
		 * scan's read moves atime visibly. */
		if (pwrite(w, CLEANTXT, strlen(CLEANTXT), off) < 0)
			return 4;
		if (reopen) {
			close(w);
			w = -1;
		}
		usleep(10000);
		if (stat(path, &sb) < 0 || pipe2(go, O_CLOEXEC) < 0)
			return 5;
		if (!strcmp(mode, "self")) {
			pid = fork();
			if (pid < 0)
				return 6;
			if (pid == 0) {
				char *args[] = { path, NULL }, b;

				close(w); /* else our copy makes the exec ETXTBSY */
				if (read(go[0], &b, 1) != 1)
					_exit(103);
				execve(path, args, environ);
				_exit(errno == EPERM     ? 100
				      : errno == ETXTBSY ? 101
							 : 102);
			}
			if (write(go[1], "g", 1) != 1)
				return 7;
		} else if (write(ctl, "g", 1) != 1) {
			return 7;
		}
		hit1 = atime_moves(path, &sb.st_atim, 200000);
		if (w < 0 && hit1) {
			struct pollfd pf = { .fd = ack, .events = POLLIN };

			w = open(path, O_WRONLY | O_CLOEXEC);
			/* The program already ended: what ran was not written. */
			if (w >= 0 && (pid > 0 ? waitpid(pid, &st, WNOHANG) == pid
					       : poll(&pf, 1, 0) > 0)) {
				late = true;
				if (pid > 0)
					reaped = true;
			}
		}
		if (w < 0)
			hit1 = false;
		if (w >= 0 && pwrite(w, CLEANTXT, strlen(CLEANTXT), off) < 0)
			return 8;
		if (stat(path, &sb) < 0)
			return 5;
		if (hit1 && !reopen)
			(void)atime_moves(path, &sb.st_atim, t2_us);
		if (delay_us) {
			struct timespec t0, t;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			do
				clock_gettime(CLOCK_MONOTONIC, &t);
			while ((t.tv_sec - t0.tv_sec) * 1000000 +
				       (t.tv_nsec - t0.tv_nsec) / 1000 <
			       delay_us);
		}
		if (w >= 0) {
			if (pwrite(w, MARKER, strlen(MARKER), off) < 0)
				return 8;
			wrote = true;
			close(w);
		}
		close(go[0]);
		close(go[1]);
		if (pid > 0) {
			if (!reaped && waitpid(pid, &st, 0) != pid)
				return 9;
			res = WIFEXITED(st) ? WEXITSTATUS(st) : 104;
		} else {
			unsigned char r;

			if (read(ack, &r, 1) != 1)
				return 9;
			res = r;
		}
		hits += hit1;
		marked += res == 0 && wrote && !late;
		late_ones += late;
		denied += res == 100;
		busy += res == 101;
		unlink(path);
	}
	printf("race runs=%d hits=%d marked=%d denied=%d busy=%d late=%d\n", n, hits,
	       marked, denied, busy, late_ones);
	fflush(stdout);
	return 0;
}

/*
 * The mmap attacker (RACE_ARG is not involved: MMAP_ARG PATH, as uid
 * 65534): makes PATH, a copy of /bin/true followed by CLEANTXT, runs it
 * (so a clean verdict may be cached), then writes MARKER over the clean
 * bytes through a shared writable mapping (no write() call: no
 * FAN_MODIFY, and tmpfs does not even move mtime), unmaps, closes, and
 * runs it again. Exit status: 0 the marked program ran, 100 EPERM, 101
 * ETXTBSY, 102 another exec error, 2.. setup failures.
 */
static int
run_file(const char *path)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return 103;
	if (pid == 0) {
		char *args[] = { (char *)path, NULL };

		execve(path, args, environ);
		_exit(errno == EPERM ? 100 : errno == ETXTBSY ? 101 : 102);
	}
	if (waitpid(pid, &st, 0) != pid)
		return 104;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 105;
}

static int
mmap_attacker_main(const char *path)
{
	static char body[1 << 20];
	ssize_t len;
	char *map;
	int fd, r;

	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, body, sizeof(body) - 64) : -1;
	if (len <= 0)
		return 2;
	close(fd);
	memcpy(body + len, CLEANTXT, strlen(CLEANTXT));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (fd < 0 || write(fd, body, (size_t)len + strlen(CLEANTXT)) < 0 ||
	    close(fd) < 0)
		return 3;
	r = run_file(path);
	if (r != 0)
		return 10 + r % 10; /* the clean program must run */
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 4;
	map = mmap(NULL, (size_t)len + strlen(CLEANTXT), PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 5;
	memcpy(map + len, MARKER, strlen(MARKER));
	munmap(map, (size_t)len + strlen(CLEANTXT));
	close(fd);
	return run_file(path);
}

struct race_result {
	int runs, hits, marked, denied, busy, late;
};

/* Runs the attacker as uid 65534 in `mode` on DIR; in "root" mode this
 * process executes each file when asked. */
static void
run_race(const char *mode, const char *dir, int n, struct race_result *ret)
{
	char self[PATH_MAX], out[300], sn[16], sctl[16], sack[16];
	int ctl[2], ack[2], st, ofd;
	ssize_t len;
	pid_t pid;
	char *text, *p;

	len = (ssize_t)strlen(self_for_others);
	assert_true(len > 0 && (size_t)len < sizeof(self));
	memcpy(self, self_for_others, (size_t)len + 1);
	snprintf(out, sizeof(out), "%s/race-%s.out", scratch, mode);
	snprintf(sn, sizeof(sn), "%d", n);
	assert_int_equal(pipe(ctl), 0);
	assert_int_equal(pipe(ack), 0);
	snprintf(sctl, sizeof(sctl), "%d", ctl[1]);
	snprintf(sack, sizeof(sack), "%d", ack[0]);
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "setpriv",
				 "--reuid=65534",
				 "--regid=65534",
				 "--clear-groups",
				 "--",
				 self,
				 RACE_ARG,
				 (char *)mode,
				 (char *)dir,
				 sn,
				 sctl,
				 sack,
				 NULL };

		ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (ofd < 0)
			_exit(127);
		dup2(ofd, STDOUT_FILENO);
		close(ctl[0]);
		close(ack[1]);
		execvp("setpriv", argv);
		_exit(127);
	}
	close(ctl[1]);
	close(ack[0]);
	*ret = (struct race_result){ 0 };
	for (;;) { /* root mode: execute the user's file when asked */
		char b, *args[2];
		unsigned char r;
		pid_t x;
		int xst;

		if (read(ctl[0], &b, 1) != 1)
			break;
		snprintf(out, sizeof(out), "%s/x%d", dir, ret->runs);
		args[0] = out;
		args[1] = NULL;
		x = fork();
		assert_true(x >= 0);
		if (x == 0) {
			execve(out, args, environ);
			_exit(errno == EPERM ? 100 : errno == ETXTBSY ? 101 : 102);
		}
		assert_int_equal(waitpid(x, &xst, 0), x);
		r = WIFEXITED(xst) ? (unsigned char)WEXITSTATUS(xst) : 104;
		ret->runs++;
		assert_int_equal(write(ack[1], &r, 1), 1);
	}
	close(ctl[0]);
	close(ack[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	snprintf(out, sizeof(out), "%s/race-%s.out", scratch, mode);
	text = tu_slurp(out);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !(p = strstr(text, "race ")))
		fail_msg("race attacker (%s) failed, status %#x: %s", mode, (unsigned)st,
			 text);
	assert_int_equal(
		sscanf(p, "race runs=%d hits=%d marked=%d denied=%d busy=%d late=%d",
		       &ret->runs, &ret->hits, &ret->marked, &ret->denied, &ret->busy,
		       &ret->late),
		6);
	free(text);
}

/*
 * The exec of a user's file rewritten while the scanner reads it (clean
 * bytes during the scan of FAN_OPEN_EXEC_PERM, the marker during the scan
 * of FAN_OPEN_PERM, the writer closed before the verdict) must never run
 * the marked program, whether the user or root executes it, and the
 * scanner's counters must show it saw the attack. Default allow: a denial
 * can only come from the scanner's own decision.
 */
static void
exec_of_a_file_rewritten_during_its_scan_never_runs_the_marker(void **state)
{
	int N = getenv("RACE_N") ? atoi(getenv("RACE_N")) : 20;
	struct race_result self, root;
	uint64_t v[SCANNER_CTR_COUNT_];
	char dir[200];

	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	snprintf(dir, sizeof(dir), "%s/u", watch);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	run_race("self", dir, N, &self);
	run_race("root", dir, N, &root);
	filter_stats(v);
	print_message("scanner: rewrite race, uid 65534 executes: %d runs, %d hit, "
		      "%d marked ran, %d denied, %d ETXTBSY, %d written late\n",
		      self.runs, self.hits, self.marked, self.denied, self.busy,
		      self.late);
	print_message("scanner: rewrite race, root executes: %d runs, %d hit, %d "
		      "marked ran, %d denied, %d ETXTBSY, %d written late\n",
		      root.runs, root.hits, root.marked, root.denied, root.busy,
		      root.late);
	print_message("scanner: changed_during_scan %llu, rescans %llu, changed_denies "
		      "%llu, exec_writer_denies %llu, uncached %llu\n",
		      (unsigned long long)v[SCANNER_CTR_changed_during_scan],
		      (unsigned long long)v[SCANNER_CTR_rescans],
		      (unsigned long long)v[SCANNER_CTR_changed_denies],
		      (unsigned long long)v[SCANNER_CTR_exec_writer_denies],
		      (unsigned long long)v[SCANNER_CTR_uncached]);
	assert_int_equal(self.runs, N);
	assert_int_equal(root.runs, N);
	assert_int_equal(self.marked, 0);
	assert_int_equal(root.marked, 0);
	/* The scanner saw every attack it stopped: as a change during a scan,
	 * or as a writer holding the file open (which it refuses first). */
	if (self.hits + root.hits > 0)
		assert_true(v[SCANNER_CTR_changed_during_scan] +
				    v[SCANNER_CTR_exec_writer_denies] >
			    0);
	print_message("scanner: service exec_writers %llu lease_errors %llu "
		      "hold_failures %llu scanned %llu; filter requests %llu "
		      "cache_hits %llu events %llu\n",
		      (unsigned long long)svc_stat("exec_writers"),
		      (unsigned long long)svc_stat("lease_errors"),
		      (unsigned long long)svc_stat("hold_failures"),
		      (unsigned long long)svc_stat("scanned"),
		      (unsigned long long)v[SCANNER_CTR_requests],
		      (unsigned long long)v[SCANNER_CTR_cache_hits],
		      (unsigned long long)v[SCANNER_CTR_events]);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(oversize_file_gets_the_default_verdict,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			open_after_a_write_through_mmap_is_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(
			exec_after_a_write_through_mmap_is_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(
			fail_open_verdicts_are_logged_and_never_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(
			file_changed_during_its_scan_is_scanned_again, setup, teardown),
		cmocka_unit_test_setup_teardown(
			exec_of_a_file_rewritten_during_its_scan_never_runs_the_marker,
			setup, teardown),
	};
	int r;

	if (argc >= 5 && strcmp(argv[1], RACE_ARG) == 0)
		return race_attacker_main(argc, argv);
	if (argc == 3 && strcmp(argv[1], MMAP_ARG) == 0)
		return mmap_attacker_main(argv[2]);
	r = scanner_fixture_init("test_scanner_evasion");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	scanner_fixture_fini();
	return r;
}
