/* SPDX-License-Identifier: MIT */
/*
 * config_auto.c — see config_auto.h. Owns the auto_attach keys: their
 * syntax, the checks that make them a policy, and the copy the daemon
 * keeps of what it applied (so a reload changes only what changed).
 */
#include "daemon/config_auto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUTO_MAX_WORDS 64

static void
strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static size_t
strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static int
strv_dup(char *const *src, char ***ret)
{
	size_t n = strv_len(src);
	char **v;

	*ret = NULL;
	if (!src)
		return 0;
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(src[i]);
		if (!v[i]) {
			strv_free(v);
			return -ENOMEM;
		}
	}
	*ret = v;
	return 0;
}

static bool
strv_equal(char *const *a, char *const *b)
{
	size_t n = strv_len(a);

	if (n != strv_len(b) || !a != !b)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

/* value split at blanks and commas into a NULL-terminated list (an empty
 * value gives an empty list). -E2BIG past AUTO_MAX_WORDS words. */
static int
split_words(const char *value, char ***ret)
{
	char **v = calloc(AUTO_MAX_WORDS + 1, sizeof(*v));
	const char *s = value;
	size_t n = 0;

	*ret = NULL;
	if (!v)
		return -ENOMEM;
	for (;;) {
		size_t len;

		s += strspn(s, " \t,");
		if (!*s)
			break;
		if (n == AUTO_MAX_WORDS) {
			strv_free(v);
			return -E2BIG;
		}
		len = strcspn(s, " \t,");
		v[n] = strndup(s, len);
		if (!v[n]) {
			strv_free(v);
			return -ENOMEM;
		}
		n++;
		s += len;
	}
	*ret = v;
	return 0;
}

static bool
valid_fs_type(const char *s)
{
	size_t n = strlen(s);

	return n && n < 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789."
			 "_-") == n;
}

/* A list key: replaces *field. Patterns must be absolute. */
static int
list_key(char ***field, const char *key, const char *value, bool patterns, char *err,
	 size_t err_size)
{
	char **v;
	int r = split_words(value, &v);

	if (r == -E2BIG) {
		snprintf(err, err_size, "%s takes at most %d entries", key,
			 AUTO_MAX_WORDS);
		return -EINVAL;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; v[i]; i++) {
		if (patterns && v[i][0] != '/') {
			snprintf(err, err_size,
				 "%s takes absolute mount-point patterns (fnmatch, e.g. "
				 "/media/?*), not '%s'",
				 key, v[i]);
			strv_free(v);
			return -EINVAL;
		}
	}
	strv_free(*field);
	*field = v;
	return 0;
}

static int
fs_types_key(struct cfg_auto *a, const char *value, char *err, size_t err_size)
{
	char **v;
	int r = split_words(value, &v);

	if (r == -E2BIG) {
		snprintf(err, err_size, "auto_attach takes at most %d file-system types",
			 AUTO_MAX_WORDS);
		return -EINVAL;
	}
	if (r < 0)
		return r;
	if (!v[0] || (!strcmp(v[0], "none") && !v[1])) {
		strv_free(v); /* off */
		v = NULL;
	}
	for (size_t i = 0; v && v[i]; i++) {
		if (!strcmp(v[i], "none") ||
		    (strcmp(v[i], "*") && !valid_fs_type(v[i]))) {
			snprintf(err, err_size,
				 "auto_attach takes file-system types (ext4 xfs ...), * "
				 "for "
				 "any, or none, not '%s'",
				 v[i]);
			strv_free(v);
			return -EINVAL;
		}
	}
	strv_free(a->fs_types);
	a->fs_types = v;
	return 0;
}

static int
pid_key(struct cfg_auto *a, const char *value, char *err, size_t err_size)
{
	char *end;
	long n;

	free(a->pid_file);
	a->pid_file = NULL;
	a->pid = 0;
	if (value[0] == '/') {
		a->pid_file = strdup(value);
		return a->pid_file ? 0 : -ENOMEM;
	}
	errno = 0;
	n = strtol(value, &end, 10);
	if (errno || end == value || *end || n < 1 || n > 4194304) {
		snprintf(err, err_size,
			 "auto_attach_pid takes a process id or the absolute path of a "
			 "file holding one, not '%s'",
			 value);
		return -EINVAL;
	}
	a->pid = (pid_t)n;
	return 0;
}

int
cfg_auto_key(struct cfg_auto *a, const char *key, const char *value, int line, char *err,
	     size_t err_size)
{
	int r;

	if (strncmp(key, "auto_attach", 11))
		return 1;
	if (!strcmp(key, "auto_attach")) {
		r = fs_types_key(a, value, err, err_size);
		if (!r)
			a->line = line;
		return r;
	}
	if (!strcmp(key, "auto_attach_kind")) {
		if (!strcmp(value, "filesystem")) {
			a->kind = FLT_INSTANCE_FILESYSTEM;
		} else if (!strcmp(value, "mount")) {
			a->kind = FLT_INSTANCE_MOUNT;
		} else {
			snprintf(err, err_size,
				 "auto_attach_kind must be filesystem or mount, not '%s'",
				 value);
			return -EINVAL;
		}
		a->kind_given = true;
	} else if (!strcmp(key, "auto_attach_mounts")) {
		r = list_key(&a->mounts, key, value, true, err, err_size);
		if (r)
			return r;
	} else if (!strcmp(key, "auto_attach_exclude")) {
		r = list_key(&a->exclude, key, value, true, err, err_size);
		if (r)
			return r;
	} else if (!strcmp(key, "auto_attach_pid")) {
		r = pid_key(a, value, err, err_size);
		if (r)
			return r;
	} else {
		return 1;
	}
	if (!a->other_line)
		a->other_line = line;
	return 0;
}

int
cfg_auto_check(const struct cfg_auto *a, char *err, size_t err_size, int *ret_line)
{
	if (!a->line && a->other_line) {
		*ret_line = a->other_line;
		snprintf(err, err_size,
			 "auto_attach_* settings without auto_attach (the file-system "
			 "types to attach, or *)");
		return -EINVAL;
	}
	return 0;
}

bool
cfg_auto_enabled(const struct cfg_auto *a)
{
	return a->fs_types && a->fs_types[0];
}

bool
cfg_auto_same(const struct cfg_auto *a, const struct cfg_auto *b)
{
	if (!cfg_auto_enabled(a) && !cfg_auto_enabled(b))
		return true;
	return cfg_auto_enabled(a) == cfg_auto_enabled(b) &&
	       strv_equal(a->fs_types, b->fs_types) && strv_equal(a->mounts, b->mounts) &&
	       strv_equal(a->exclude, b->exclude) && a->kind == b->kind &&
	       a->pid == b->pid && !a->pid_file == !b->pid_file &&
	       (!a->pid_file || !strcmp(a->pid_file, b->pid_file));
}

int
cfg_auto_copy(const struct cfg_auto *src, struct cfg_auto *dst)
{
	*dst = *src;
	dst->fs_types = dst->mounts = dst->exclude = NULL;
	dst->pid_file = NULL;
	if (strv_dup(src->fs_types, &dst->fs_types) < 0 ||
	    strv_dup(src->mounts, &dst->mounts) < 0 ||
	    strv_dup(src->exclude, &dst->exclude) < 0 ||
	    (src->pid_file && !(dst->pid_file = strdup(src->pid_file)))) {
		cfg_auto_free(dst);
		return -ENOMEM;
	}
	return 0;
}

void
cfg_auto_free(struct cfg_auto *a)
{
	strv_free(a->fs_types);
	strv_free(a->mounts);
	strv_free(a->exclude);
	free(a->pid_file);
	*a = (struct cfg_auto){ 0 };
}

static int
read_pid_file(const char *path, pid_t *ret, char *err, size_t err_size)
{
	char buf[32], *end;
	ssize_t n;
	long v;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		int e = errno;

		snprintf(err, err_size, "auto_attach_pid: cannot open %s: %s", path,
			 strerror(e));
		return -e;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, err_size, "auto_attach_pid: cannot read %s", path);
		return -EIO;
	}
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || v < 1 || v > 4194304) {
		snprintf(err, err_size, "auto_attach_pid: %s does not hold a process id",
			 path);
		return -EINVAL;
	}
	*ret = (pid_t)v;
	return 0;
}

int
cfg_auto_policy(const struct cfg_auto *a, struct flt_auto_attach *policy, char *err,
		size_t err_size)
{
	*policy = (struct flt_auto_attach){
		.kind = a->kind_given ? a->kind : FLT_INSTANCE_FILESYSTEM,
		.ns_pid = a->pid,
	};
	if (!cfg_auto_enabled(a))
		return 0;
	if (a->pid_file) {
		int r = read_pid_file(a->pid_file, &policy->ns_pid, err, err_size);

		if (r < 0)
			return r;
	}
	policy->fs_types = (const char *const *)a->fs_types;
	policy->mount_points = (const char *const *)a->mounts;
	policy->exclude = (const char *const *)a->exclude;
	return 0;
}

/* *s (realloc'ed) followed by sep and word */
static int
append(char **s, const char *sep, const char *word)
{
	char *n;

	if (asprintf(&n, "%s%s%s", *s ? *s : "", sep, word) < 0)
		return -ENOMEM;
	free(*s);
	*s = n;
	return 0;
}

/* the words of v, the first after lead, the others after a blank */
static int
append_list(char **s, char *const *v, const char *lead)
{
	for (size_t i = 0; v && v[i]; i++)
		if (append(s, i ? " " : lead, v[i]) < 0)
			return -ENOMEM;
	return 0;
}

char *
cfg_auto_describe(const struct cfg_auto *a)
{
	char *s = NULL, pid[64];

	if (!cfg_auto_enabled(a))
		return strdup("off");
	if (append_list(&s, a->fs_types, "") < 0 ||
	    append(&s, " as instances per ",
		   a->kind_given && a->kind == FLT_INSTANCE_MOUNT ? "mount"
								  : "filesystem") < 0 ||
	    append_list(&s, a->mounts, ", mount points ") < 0 ||
	    append_list(&s, a->exclude, ", except ") < 0)
		goto oom;
	if (a->pid || a->pid_file) {
		if (a->pid_file)
			snprintf(pid, sizeof(pid), "the pid in %.40s", a->pid_file);
		else
			snprintf(pid, sizeof(pid), "pid %d", (int)a->pid);
		if (append(&s, ", in the mount namespace of ", pid) < 0)
			goto oom;
	}
	return s;
oom:
	free(s);
	return NULL;
}
