/* SPDX-License-Identifier: MIT */
/*
 * mounttab.c — see mounttab.h. A line of mountinfo(5):
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   id parent dev root point options [optional fields] - fstype source super-options
 *
 * Paths escape space, tab, newline and backslash as \ooo.
 */
#include "engine/mounttab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int
cmp_entry(const void *a, const void *b)
{
	uint64_t x = ((const struct mount_entry *)a)->id,
		 y = ((const struct mount_entry *)b)->id;

	return x < y ? -1 : x > y;
}

/* Next space-separated field of *p, NUL-terminated in place, unescaped. */
static char *
field(char **p)
{
	char *s = *p, *r, *w;

	while (*s == ' ')
		s++;
	if (!*s)
		return NULL;
	r = w = s;
	while (*r && *r != ' ') {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 |
				      (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*p = *r ? r + 1 : r;
	*w = '\0';
	return s;
}

static bool
parse_line(char *line, struct mount_entry *m)
{
	char *p = line, *id = field(&p), *parent = field(&p), *dev = field(&p);
	char *root = field(&p), *point = field(&p), *opts = field(&p), *f, *end;
	unsigned long maj, min;

	if (!id || !parent || !dev || !root || !point || !opts)
		return false;
	while ((f = field(&p)) && strcmp(f, "-"))
		; /* optional fields */
	if (!f)
		return false;
	m->fstype = field(&p);
	m->source = field(&p);
	if (!m->fstype)
		return false;
	if (!m->source)
		m->source = "";
	m->id = strtoull(id, &end, 10);
	if (*end)
		return false;
	m->parent = strtoull(parent, &end, 10);
	maj = strtoul(dev, &end, 10);
	if (*end != ':')
		return false;
	min = strtoul(end + 1, &end, 10);
	if (*end)
		return false;
	m->dev = makedev(maj, min);
	m->root = root;
	m->point = point;
	m->flags =
		(!strcmp(opts, "ro") || !strncmp(opts, "ro,", 3)) ? MOUNT_READ_ONLY : 0;
	return true;
}

int
mounttab_parse(const char *text, uint32_t flags, struct mount_table **ret)
{
	struct mount_table *t = calloc(1, sizeof(*t));
	size_t cap = 64, n = 0;
	char *p;

	if (!t || !(t->strings = strdup(text)) || !(t->v = malloc(cap * sizeof(*t->v)))) {
		mounttab_free(t);
		return -ENOMEM;
	}
	for (p = t->strings; p && *p;) {
		char *eol = strchr(p, '\n');
		struct mount_entry m;

		if (eol)
			*eol = '\0';
		if (parse_line(p, &m)) {
			if (n == cap) {
				struct mount_entry *v =
					realloc(t->v, 2 * cap * sizeof(*v));

				if (!v) {
					t->n = n;
					mounttab_free(t);
					return -ENOMEM;
				}
				t->v = v;
				cap *= 2;
			}
			m.flags |= flags;
			t->v[n++] = m;
		}
		p = eol ? eol + 1 : NULL;
	}
	t->n = n;
	qsort(t->v, n, sizeof(*t->v), cmp_entry);
	*ret = t;
	return 0;
}

int
mounttab_read_fd(int fd, uint32_t flags, struct mount_table **ret)
{
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap + 1);
	int r;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			free(buf);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			char *b = realloc(buf, 2 * cap + 1);

			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	r = mounttab_parse(buf, flags, ret);
	free(buf);
	return r;
}

/* One buffer for the strings of both: entries are copied and their
 * pointers moved into it. */
int
mounttab_merge(const struct mount_table *a, const struct mount_table *b,
	       struct mount_table **ret)
{
	const struct mount_table *src[2] = { a, b };
	struct mount_table *t = calloc(1, sizeof(*t));
	size_t bytes = 0, n = 0;
	char *w;

	if (!t)
		return -ENOMEM;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < src[k]->n; i++) {
			const struct mount_entry *m = &src[k]->v[i];

			bytes += strlen(m->root) + strlen(m->point) + strlen(m->fstype) +
				 strlen(m->source) + 4;
		}
	t->v = malloc((a->n + b->n + 1) * sizeof(*t->v));
	t->strings = malloc(bytes + 1);
	if (!t->v || !t->strings) {
		mounttab_free(t);
		return -ENOMEM;
	}
	w = t->strings;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < src[k]->n; i++) {
			struct mount_entry m = src[k]->v[i];
			const char **s[4] = { &m.root, &m.point, &m.fstype, &m.source };

			if (k == 1 && mounttab_find(a, m.id))
				continue;
			for (int j = 0; j < 4; j++) {
				size_t len = strlen(*s[j]) + 1;

				memcpy(w, *s[j], len);
				*s[j] = w;
				w += len;
			}
			t->v[n++] = m;
		}
	t->n = n;
	qsort(t->v, n, sizeof(*t->v), cmp_entry);
	*ret = t;
	return 0;
}

void
mounttab_free(struct mount_table *t)
{
	if (!t)
		return;
	free(t->v);
	free(t->strings);
	free(t);
}

const struct mount_entry *
mounttab_find(const struct mount_table *t, uint64_t id)
{
	struct mount_entry key = { .id = id };

	if (!t || !t->n)
		return NULL;
	return bsearch(&key, t->v, t->n, sizeof(*t->v), cmp_entry);
}

bool
mounttab_fstype_is_pseudo(const char *fstype)
{
	static const char *const pseudo[] = {
		"proc",      "sysfs",       "cgroup",   "cgroup2", "devpts",
		"devtmpfs",  "mqueue",      "debugfs",  "tracefs", "securityfs",
		"pstore",    "bpf",         "configfs", "fusectl", "hugetlbfs",
		"autofs",    "binfmt_misc", "efivarfs", "nsfs",    "rpc_pipefs",
		"selinuxfs", "nfsd",        "ramfs",    "pipefs",  "sockfs",
	};

	for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
		if (!strcmp(fstype, pseudo[i]))
			return true;
	return false;
}
