/* SPDX-License-Identifier: MIT */
/*
 * externals.c — YARA external variables. Vendors' rule sets are written
 * for scanners that define a few about the file being scanned (THOR and
 * LOKI's convention, which signature-base uses):
 *
 *   filename   its name, "cmd.exe"
 *   filepath   its directory, "/srv/www" (no trailing slash)
 *   extension  its extension with the dot, lower case, ".exe" ("" if none)
 *   filetype   its type by magic bytes ("EXE", "ELF", "PDF", "ZIP", ...),
 *              else by its extension in upper case ("JSP"), else ""
 *   owner      the name of the user who owns it (numeric if it has none)
 *
 * They are declared (empty) when the rules are compiled and defined per
 * scan from the request and the scanned bytes. -d name=value adds
 * constants: an integer, true/false, or else a string. Owns nothing but
 * the caller's struct svc_file_facts; no allocation per scan beyond
 * libyara's own copy of each string.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <yara.h>

#include "svc.h"

static const char *const builtin[] = { "filename", "filepath", "extension", "filetype",
				       "owner" };

bool
svc_externals_builtin(const char *name)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(name, builtin[i]))
			return true;
	return false;
}

/* The type of a -d value: 'i' integer, 'b' boolean, 's' string. */
static char
value_type(const char *v, long long *ret_int)
{
	char *end;

	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return 'b';
	errno = 0;
	*ret_int = strtoll(v, &end, 0);
	if (*v && !*end && !errno)
		return 'i';
	return 's';
}

int
svc_externals_declare(const struct svc_options *o, void *yr_compiler)
{
	YR_COMPILER *c = yr_compiler;

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (yr_compiler_define_string_variable(c, builtin[i], "") !=
		    ERROR_SUCCESS)
			return -ENOMEM;
	for (unsigned i = 0; i < o->n_defines; i++) {
		const struct svc_define *d = &o->defines[i];
		long long n = 0;
		int r;

		switch (value_type(d->value, &n)) {
		case 'b':
			r = yr_compiler_define_boolean_variable(
				c, d->name, !strcmp(d->value, "true"));
			break;
		case 'i':
			r = yr_compiler_define_integer_variable(c, d->name, n);
			break;
		default:
			r = yr_compiler_define_string_variable(c, d->name, d->value);
		}
		if (r != ERROR_SUCCESS)
			return -ENOMEM;
	}
	return 0;
}

void
svc_externals_define_rules(const struct svc_options *o, void *yr_rules)
{
	YR_RULES *yr = yr_rules;

	/* A compiled set accepts only the variables it was compiled with;
	 * the others are refused, which is fine. */
	for (unsigned i = 0; i < o->n_defines; i++) {
		const struct svc_define *d = &o->defines[i];
		long long n = 0;

		switch (value_type(d->value, &n)) {
		case 'b':
			(void)yr_rules_define_boolean_variable(yr, d->name,
							       !strcmp(d->value, "true"));
			break;
		case 'i':
			(void)yr_rules_define_integer_variable(yr, d->name, n);
			break;
		default:
			(void)yr_rules_define_string_variable(yr, d->name, d->value);
		}
	}
}

struct magic {
	size_t off, len;
	const char *bytes, *type;
};

/* The types THOR's filetype names, by their first bytes. */
static const struct magic magics[] = {
	{ 0, 2, "MZ", "EXE" },
	{ 0, 4,
	  "\x7f"
	  "ELF",
	  "ELF" },
	{ 0, 4, "\xcf\xfa\xed\xfe", "MACHO" },
	{ 0, 4, "\xce\xfa\xed\xfe", "MACHO" },
	{ 0, 4, "\xca\xfe\xba\xbe", "CLASS" },
	{ 0, 5, "%PDF-", "PDF" },
	{ 0, 4, "PK\x03\x04", "ZIP" },
	{ 0, 4, "Rar!", "RAR" },
	{ 0, 6, "7z\xbc\xaf\x27\x1c", "7Z" },
	{ 0, 2, "\x1f\x8b", "GZIP" },
	{ 0, 3, "BZh", "BZIP2" },
	{ 0, 6,
	  "\xfd"
	  "7zXZ\x00",
	  "XZ" },
	{ 0, 8, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "DOC" },
	{ 0, 5, "{\\rtf", "RTF" },
	{ 0, 4, "MSCF", "CAB" },
	{ 0, 8, "\x4c\x00\x00\x00\x01\x14\x02\x00", "LNK" },
	{ 0, 3, "FWS", "SWF" },
	{ 0, 3, "CWS", "SWF" },
	{ 0, 8, "\x89PNG\r\n\x1a\n", "PNG" },
	{ 0, 3, "\xff\xd8\xff", "JPEG" },
	{ 0, 4, "GIF8", "GIF" },
	{ 0, 2, "#!", "SCRIPT" },
	{ 257, 5, "ustar", "TAR" },
};

void
svc_externals_facts(struct svc_file_facts *f, const struct scanner_request *q,
		    uint32_t uid, const uint8_t *data, size_t len)
{
	size_t n = q->path_len, slash = n, dot;

	while (slash > 0 && q->path[slash - 1] != '/')
		slash--;
	/* filepath: the directory, without its trailing slash ("/" stays) */
	snprintf(f->filepath, sizeof(f->filepath), "%.*s",
		 (int)(slash > 1 ? slash - 1 : slash), q->path);
	snprintf(f->filename, sizeof(f->filename), "%.*s", (int)(n - slash),
		 q->path + slash);
	f->extension[0] = '\0';
	dot = n;
	while (dot > slash && q->path[dot - 1] != '.')
		dot--;
	/* ".bashrc" has no extension; "a." has "." */
	if (dot > slash + 1 && n - dot + 1 < sizeof(f->extension)) {
		size_t k;

		for (k = 0; k < n - dot + 1; k++) {
			char c = q->path[dot - 1 + k];

			f->extension[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		f->extension[k] = '\0';
	}
	f->filetype[0] = '\0';
	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		const struct magic *m = &magics[i];

		if (len >= m->off + m->len && !memcmp(data + m->off, m->bytes, m->len)) {
			snprintf(f->filetype, sizeof(f->filetype), "%s", m->type);
			break;
		}
	}
	if (!f->filetype[0] && f->extension[0] &&
	    strlen(f->extension) < sizeof(f->filetype)) {
		size_t k;

		for (k = 0; f->extension[k + 1]; k++) {
			char c = f->extension[k + 1];

			f->filetype[k] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
		}
		f->filetype[k] = '\0';
	}
	/* The owner: looked up once per distinct uid in a row (NSS reads
	 * files; most scans in a row are of one owner's files). */
	if (!f->owner_known || f->owner_uid != uid) {
		struct passwd pw, *res = NULL;
		char buf[1024];

		if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
			snprintf(f->owner, sizeof(f->owner), "%s", pw.pw_name);
		else
			snprintf(f->owner, sizeof(f->owner), "%u", uid);
		f->owner_uid = uid;
		f->owner_known = true;
	}
}

void
svc_externals_define_scan(void *yr_scanner, const struct svc_file_facts *f)
{
	YR_SCANNER *sc = yr_scanner;

	/* A set compiled without one of them refuses it: nothing to do. */
	(void)yr_scanner_define_string_variable(sc, "filename", f->filename);
	(void)yr_scanner_define_string_variable(sc, "filepath", f->filepath);
	(void)yr_scanner_define_string_variable(sc, "extension", f->extension);
	(void)yr_scanner_define_string_variable(sc, "filetype", f->filetype);
	(void)yr_scanner_define_string_variable(sc, "owner", f->owner);
}
