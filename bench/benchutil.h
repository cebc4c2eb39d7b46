/* SPDX-License-Identifier: MIT */
/* benchutil.h — helpers shared by port_bench and engine_bench. */
#ifndef FLTMGR_BENCHUTIL_H
#define FLTMGR_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t now_ns(void);
/* strerror of a negative or positive errno. */
const char *err_str(int r);
/* Pins the calling thread/process to cpu; 0 or -errno. */
int pin_to_cpu(int cpu);
/* The first two CPUs this process may run on; 0 or -errno. */
int pick_cpus(int *ret_a, int *ret_b);
/* Reads/writes exactly len bytes (retrying on EINTR and short counts);
 * 0, or -errno, or -EPIPE at end of file. */
int read_full(int fd, void *buf, size_t len);
int write_full(int fd, const void *buf, size_t len);
/* A positive decimal count up to max for option --name; prints the
 * problem (with the program's name) and returns -EINVAL otherwise. */
int parse_count(const char *name, const char *s, unsigned long long max,
		unsigned long long *ret);
/* qsort comparator for doubles, ascending. */
int cmp_double(const void *a, const void *b);

#endif
