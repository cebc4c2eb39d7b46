/* SPDX-License-Identifier: MIT */
/* names.c — see names.h. */
#include "names.h"

#include <string.h>

#include <fltmgr/filter.h>

bool
name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= FLT_PORT_NAME_MAX && strcmp(s, ".") && strcmp(s, "..") &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._-") == n;
}

bool
altitude_valid(const char *s)
{
	size_t dots = 0, digits = 0, n = s ? strlen(s) : 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.')
			dots++;
		else if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else
			return false;
	}
	return digits && dots <= 1 && n < 32 && s[0] != '.' && s[n - 1] != '.';
}
