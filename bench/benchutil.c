/* SPDX-License-Identifier: MIT */
/*
 * benchutil.c — helpers shared by the benchmarks: monotonic time, CPU
 * pinning, whole reads/writes on pipes, and sorting doubles.
 */
#include "benchutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *
err_str(int r)
{
	return strerror(r < 0 ? -r : r);
}

int
pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return 0;
}

/* Picks the first two CPUs this process may run on. */
int
pick_cpus(int *ret_a, int *ret_b)
{
	cpu_set_t set;
	int cpu, a = -1;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		if (a < 0) {
			a = cpu;
			continue;
		}
		*ret_a = a;
		*ret_b = cpu;
		return 0;
	}
	return -ENODEV;
}

int
read_full(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
write_full(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* A positive decimal count up to max, for option `name`. */
int
parse_count(const char *name, const char *s, unsigned long long max,
	    unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
	if (v == 0 || errno || *end || v > max) {
		fprintf(stderr, "%s: --%s: bad value '%s' (1..%llu)\n",
			program_invocation_short_name, name, s, max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}
