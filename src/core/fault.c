/* SPDX-License-Identifier: MIT */
/* fault.c — see fault.h. */
#include "core/fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const site_names[FAULT_N_SITES] = {
	[FAULT_PERM_EVENT] = "perm",
	[FAULT_CONNECTION] = "conn",
	[FAULT_WAKE_FILE] = "wake",
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_bool armed;
static unsigned long every[FAULT_N_SITES]; /* 0: never; written once */
static atomic_ulong calls[FAULT_N_SITES];

/* "perm:3,conn:2"; anything unrecognised is ignored. */
static void
read_environment(void)
{
	const char *s = secure_getenv("FLTMGR_FAULT_ALLOC");

	while (s && *s) {
		for (int i = 0; i < FAULT_N_SITES; i++) {
			size_t n = strlen(site_names[i]);
			char *end;
			unsigned long v;

			if (strncmp(s, site_names[i], n) || s[n] != ':')
				continue;
			v = strtoul(s + n + 1, &end, 10);
			if (end != s + n + 1 && (*end == ',' || *end == '\0')) {
				every[i] = v;
				if (v)
					atomic_store(&armed, true);
			}
		}
		s = strchr(s, ',');
		if (s)
			s++;
	}
}

bool
fault_alloc_fails(enum fault_site site)
{
	pthread_once(&once, read_environment);
	if (!atomic_load_explicit(&armed, memory_order_relaxed) || !every[site])
		return false;
	return (atomic_fetch_add(&calls[site], 1) + 1) % every[site] == 0;
}
