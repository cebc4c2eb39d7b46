/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c — libFuzzer target: any text as fltmgrd's configuration.
 * cfg_parse_string() either returns a configuration or at least one error
 * message of the form NAME:LINE: ..., never crashes or leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *c = NULL;
	char *text = malloc(size + 1), *err = NULL;
	int r;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* the file loader refuses NUL bytes before this */
	r = cfg_parse_string("fuzz.conf", text, &c, &err);
	if (r == 0) {
		if (!c || err)
			abort();
		for (size_t i = 0; i < c->n_filters; i++)
			if (!c->filters[i].altitude || !c->filters[i].object)
				abort();
		cfg_free(c);
	} else if (r == -EINVAL) {
		if (c || !err || strncmp(err, "fuzz.conf:", 10))
			abort();
	} else if (r != -ENOMEM) {
		abort();
	}
	free(err);
	free(text);
	return 0;
}
