/* SPDX-License-Identifier: MIT */
/*
 * selftest.c — `scanner --self-test`: proves, for an operator or a
 * monitoring check, that the running fltmgrd, its scanner filter and a
 * connected service deny a known-bad file. It writes the EICAR test file
 * into a fresh file in --scratch (which must be under an instance of the
 * filter), opens it for reading, expects EPERM, and tells from the
 * filter's counters (read over a monitor connection, which is never
 * excluded from scanning) whether the denial was a detection or only the
 * filter's default verdict. Removes its file in every case.
 *
 * The EICAR string is kept reversed in this binary and turned round at
 * run time: the scanner's own executable must not match the rule it tests.
 *
 * Owns its file and its monitor connection; exit 0 when the file was
 * denied by a detection, SVC_EXIT_SELFTEST when not, SVC_EXIT_NO_DAEMON
 * when there is no scanner port.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

static const char eicar_reversed[] =
	"*H+H$!ELIF-TSET-SURIVITNA-DRADNATS-RACIE$}7)CC7)^P(45XZP\\4[PA@%P!O5X";

static int
filter_counters(const char *port_path, uint64_t v[SCANNER_CTR_COUNT_])
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE], cmd[SCANNER_CMD_SIZE],
		out[SCANNER_STATS_SIZE + 512];
	filter_port *p = NULL;
	size_t olen = 0;
	int r;

	scanner_context_encode(0, ctx);
	r = filter_connect_communication_port(port_path, 0, ctx, sizeof(ctx), &p);
	if (r < 0)
		return r;
	scanner_cmd_encode(SCANNER_CMD_STATS, cmd);
	r = filter_send_message(p, cmd, sizeof(cmd), out, sizeof(out), &olen);
	filter_close_port(p);
	if (r < 0)
		return r;
	return scanner_stats_decode(out, olen, v) < 0 ? -EPROTO : 0;
}

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define DELTA(c) (after[SCANNER_CTR_##c] - before[SCANNER_CTR_##c])

int
svc_self_test(const struct svc_options *o, const char *port_path)
{
	uint64_t before[SCANNER_CTR_COUNT_], after[SCANNER_CTR_COUNT_];
	char path[4200], eicar[sizeof(eicar_reversed)];
	size_t n = sizeof(eicar_reversed) - 1;
	int fd, err, r;
	int64_t t0, ms;

	for (size_t i = 0; i < n; i++)
		eicar[i] = eicar_reversed[n - 1 - i];
	eicar[n] = '\0';
	r = filter_counters(port_path, before);
	if (r < 0) {
		printf("self-test: FAIL: cannot reach the scanner filter at %s: %s\n",
		       port_path, strerror(-r));
		return r == -ENOENT || r == -ECONNREFUSED ? SVC_EXIT_NO_DAEMON
							  : SVC_EXIT_SELFTEST;
	}
	snprintf(path, sizeof(path), "%s/fltmgr-self-test.XXXXXX", o->scratch);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		printf("self-test: FAIL: cannot create a file in %s: %s\n", o->scratch,
		       strerror(errno));
		return SVC_EXIT_SELFTEST;
	}
	r = write(fd, eicar, n) == (ssize_t)n ? 0 : -1;
	if (close(fd) < 0 || r < 0) {
		printf("self-test: FAIL: cannot write %s: %s\n", path, strerror(errno));
		(void)unlink(path);
		return SVC_EXIT_SELFTEST;
	}
	t0 = ms_now();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	err = fd < 0 ? errno : 0;
	ms = ms_now() - t0;
	if (fd >= 0)
		close(fd);
	r = filter_counters(port_path, after);
	(void)unlink(path);
	if (r < 0) {
		printf("self-test: FAIL: lost the scanner filter: %s\n", strerror(-r));
		return SVC_EXIT_SELFTEST;
	}
	printf("self-test: wrote the EICAR test file to %s, opened it: %s (%lld ms)\n",
	       path, err ? strerror(err) : "allowed", (long long)ms);
	printf("self-test: filter: events +%llu, requests +%llu, infected +%llu, "
	       "clean +%llu, default verdicts +%llu\n",
	       (unsigned long long)DELTA(events), (unsigned long long)DELTA(requests),
	       (unsigned long long)DELTA(infected), (unsigned long long)DELTA(clean),
	       (unsigned long long)(DELTA(no_service_defaults) +
				    DELTA(deadline_defaults) +
				    DELTA(disconnect_defaults) + DELTA(service_errors)));
	if (err == EPERM && DELTA(infected) > 0) {
		printf("self-test: PASS: the scanner denied the test file\n");
		return SVC_EXIT_OK;
	}
	if (DELTA(events) == 0)
		printf("self-test: FAIL: the filter saw no open in %s: is it under an "
		       "instance of the scanner filter (fltmgr.conf attach =)?\n",
		       o->scratch);
	else if (err == EPERM)
		printf("self-test: FAIL: denied, but by the filter's default verdict, "
		       "not by a detection (is a scanner service connected?)\n");
	else if (DELTA(clean) > 0)
		printf("self-test: FAIL: the service found it clean: do the loaded "
		       "rules detect EICAR (scanner(8), SELF-TEST)?\n");
	else
		printf("self-test: FAIL: the test file was not denied (%s)\n",
		       err ? strerror(err) : "allowed");
	return SVC_EXIT_SELFTEST;
}
