/* SPDX-License-Identifier: MIT */
/*
 * loader.c — see loader.h.
 *
 * The object is opened once through trusted_open() (every directory on
 * its way checked), copied through that descriptor into a memfd that is
 * then sealed against any change, the copy is checked to be a whole ELF
 * shared object (every program header and every loadable segment's bytes
 * inside the file), and the copy is what dlopen() maps
 * (/proc/self/fd/N). So:
 *
 *  - a file cut short (being copied in place) is refused with a message,
 *    where dlopen() would have mapped pages past its end and died of
 *    SIGBUS on the first touch;
 *  - a file that changes after the check (truncated or rewritten between
 *    the check and dlopen, or while it runs) cannot reach what runs: the
 *    sealed copy cannot shrink, grow or be written, by anyone;
 *  - a file that changes while it is being copied is noticed (its size or
 *    times differ before and after) and refused, to be tried again.
 *
 * What remains: a writer (root: nobody else may write the file) that
 * rewrites bytes in place without changing the size while the copy is
 * read, within the same timestamp tick as its previous write (file times
 * advance with the kernel's coarse clock), is not noticed. The copy is
 * then a mix, still of a whole ELF file's size.
 */
#include "daemon/loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/names.h"
#include "daemon/trust.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* Larger objects are refused (the copy lives in memory). */
#define OBJECT_MAX ((off_t)256 << 20)

static int __attribute__((format(printf, 3, 4)))
fail(int r, char **ret_why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(ret_why, fmt, ap) < 0)
		*ret_why = NULL;
	va_end(ap);
	return r;
}

int
filter_object_open(const char *path, char **ret_why)
{
	return trusted_open(path, "filter object", ret_why);
}

/* ---- the private copy ---- */

/* An empty file only this process can reach: a memfd that can be sealed
 * and mapped executable, or (memfd_create() not allowed) an unnamed file
 * in /dev/shm. */
static int
private_file(const char *name)
{
	static const unsigned flags[] = {
		MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC,
		MFD_CLOEXEC | MFD_ALLOW_SEALING,                   /* before Linux 6.3 */
		MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL, /* vm.memfd_noexec=2 */
	};
	int fd = -1, err = ENOSYS;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && fd < 0; i++) {
		fd = memfd_create(name, flags[i]);
		if (fd < 0)
			err = errno;
	}
	if (fd >= 0)
		return fd;
	fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0400);
	return fd >= 0 ? fd : -err;
}

static int
write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Copies from (from its start) to a new private file; the size in
 * *ret_size. */
static int
copy_private(int from, const char *name, off_t *ret_size)
{
	static char buf[1 << 16];
	off_t total = 0;
	int to, r;

	to = private_file(name);
	if (to < 0)
		return to;
	for (;;) {
		ssize_t n = pread(from, buf, sizeof(buf), total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		if (total + n > OBJECT_MAX) {
			r = -EFBIG;
			goto fail;
		}
		r = write_all(to, buf, (size_t)n);
		if (r < 0)
			goto fail;
		total += n;
	}
	/* Sealed: from now on nobody can shrink, grow or write it (a file
	 * in /dev/shm cannot be sealed; only this process can reach it). */
	(void)fcntl(to, F_ADD_SEALS,
		    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	*ret_size = total;
	return to;
fail:
	close(to);
	return r;
}

/* ---- is it a whole shared object for this machine? ---- */

/* The class, byte order and machine of the running program. */
static void
host_elf(unsigned char *cls, unsigned char *data, uint16_t *machine)
{
	ElfW(Ehdr) eh;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

	*cls = sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32;
	*data = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
	*machine = 0; /* unknown: not compared */
	if (fd < 0)
		return;
	if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
	    !memcmp(eh.e_ident, ELFMAG, SELFMAG))
		*machine = eh.e_machine;
	close(fd);
}

/* off + len <= size without overflow. */
static bool
inside(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

static int
elf_check(int fd, off_t size, const char *path, char **ret_why)
{
	unsigned char cls, data;
	uint16_t machine;
	ElfW(Ehdr) eh;
	bool dynamic = false;
	int loads = 0;

#define BAD(...)                                                       \
	fail(-ENOEXEC, ret_why,                                        \
	     "filter object %s is not a whole shared object for this " \
	     "machine: " __VA_ARGS__)
	host_elf(&cls, &data, &machine);
	if (size < (off_t)sizeof(eh) ||
	    pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		return BAD("%lld bytes, shorter than an ELF header (a copy still in "
			   "progress?)",
			   path, (long long)size);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return BAD("no ELF header", path);
	if (eh.e_ident[EI_CLASS] != cls || eh.e_ident[EI_DATA] != data ||
	    eh.e_ident[EI_VERSION] != EV_CURRENT)
		return BAD(
			"ELF class %d, byte order %d, version %d (this machine: %d, %d, "
			"%d)",
			path, eh.e_ident[EI_CLASS], eh.e_ident[EI_DATA],
			eh.e_ident[EI_VERSION], cls, data, EV_CURRENT);
	if (eh.e_type != ET_DYN)
		return BAD("ELF type %d, not a shared object (%d)", path, eh.e_type,
			   ET_DYN);
	if (machine && eh.e_machine != machine)
		return BAD("built for machine %d, this one is %d", path, eh.e_machine,
			   machine);
	if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
	    eh.e_phnum == PN_XNUM)
		return BAD("bad program header table (%d entries of %d bytes)", path,
			   eh.e_phnum, eh.e_phentsize);
	if (!inside(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, (uint64_t)size))
		return BAD(
			"its program headers end at byte %llu, the file has %lld bytes "
			"(cut short: a copy still in progress?)",
			path,
			(unsigned long long)(eh.e_phoff +
					     (uint64_t)eh.e_phnum * eh.e_phentsize),
			(long long)size);
	for (int i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) ph;

		if (pread(fd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return BAD("cannot read program header %d", path, i);
		if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC)
			continue;
		if (!inside(ph.p_offset, ph.p_filesz, (uint64_t)size))
			return BAD(
				"its %s segment (program header %d) ends at byte %llu, "
				"the file has %lld bytes (cut short: a copy still in "
				"progress?)",
				path, ph.p_type == PT_LOAD ? "PT_LOAD" : "PT_DYNAMIC", i,
				(unsigned long long)(ph.p_offset + ph.p_filesz),
				(long long)size);
		if (ph.p_type == PT_LOAD) {
			if (ph.p_filesz > ph.p_memsz)
				return BAD("PT_LOAD segment %d has more file bytes than "
					   "memory",
					   path, i);
			loads++;
		} else {
			dynamic = true;
		}
	}
	if (!loads || !dynamic)
		return BAD("no %s", path,
			   loads ? "PT_DYNAMIC segment" : "PT_LOAD segment");
#undef BAD
	return 0;
}

/* ---- images ---- */

static char *
object_path(const char *filter_dir, const struct cfg_filter *cf)
{
	char *path = NULL;

	if (cf->object[0] == '/')
		return strdup(cf->object);
	if (asprintf(&path, "%s/%s", filter_dir, cf->object) < 0)
		return NULL;
	return path;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int
filter_image_open(const char *filter_dir, const struct cfg_filter *cf,
		  struct filter_image *ret, char **ret_why)
{
	struct filter_image img = { .fd = -1 };
	struct stat after;
	char name[80];
	off_t size = 0;
	int fd, r;

	*ret_why = NULL;
	img.path = object_path(filter_dir, cf);
	if (!img.path)
		return -ENOMEM;
	fd = filter_object_open(img.path, ret_why);
	if (fd < 0) {
		free(img.path);
		return fd;
	}
	snprintf(name, sizeof(name), "fltmgr:%s", base_name(img.path));
	if (fstat(fd, &img.st) < 0) {
		r = fail(-errno, ret_why, "filter object %s: %s", img.path,
			 strerror(errno));
		goto out;
	}
	r = copy_private(fd, name, &size);
	if (r < 0) {
		r = fail(r, ret_why, "filter object %s: cannot make a private copy: %s",
			 img.path, r == -EFBIG ? "larger than 256 MiB" : strerror(-r));
		goto out;
	}
	img.fd = r;
	r = 0;
	if (fstat(fd, &after) < 0 || after.st_size != img.st.st_size ||
	    size != img.st.st_size || after.st_mtim.tv_sec != img.st.st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != img.st.st_mtim.tv_nsec ||
	    after.st_ctim.tv_sec != img.st.st_ctim.tv_sec ||
	    after.st_ctim.tv_nsec != img.st.st_ctim.tv_nsec) {
		r = fail(-EAGAIN, ret_why,
			 "filter object %s changed while it was being read (a copy in "
			 "progress?); try again once it is complete",
			 img.path);
		goto out;
	}
	r = elf_check(img.fd, size, img.path, ret_why);
out:
	close(fd);
	if (r < 0) {
		filter_image_close(&img);
		return r;
	}
	*ret = img;
	return 0;
}

void
filter_image_close(struct filter_image *img)
{
	if (!img)
		return;
	if (img->fd >= 0 && !img->pinned)
		close(img->fd);
	free(img->path);
	*img = (struct filter_image){ .fd = -1 };
}

/* Replaces a copy that was loaded before with a fresh one, so that
 * dlopen() never meets the name or the inode of an object it may still
 * hold (a dlclose() does not always unmap). */
static int
image_refresh(struct filter_image *img, char **ret_why)
{
	char name[80];
	off_t size;
	int fd;

	snprintf(name, sizeof(name), "fltmgr:%s", base_name(img->path));
	fd = copy_private(img->fd, name, &size);
	if (fd < 0)
		return fail(fd, ret_why, "filter object %s: cannot copy it again: %s",
			    img->path, strerror(-fd));
	if (!img->pinned)
		close(img->fd);
	img->fd = fd;
	img->loaded = img->pinned = false;
	return 0;
}

/* The filter that holds a server port of this name, or NULL. */
static const char *
port_holder(flt_manager *m, const char *port)
{
	flt_filter *v[64];
	size_t n = flt_manager_list_filters(m, v, 64);

	for (size_t i = 0; i < n && i < 64; i++) {
		struct flt_port_info *p = NULL;
		size_t np = 0;
		bool found = false;

		if (flt_filter_list_ports(v[i], &p, &np) < 0)
			continue;
		for (size_t k = 0; k < np && !found; k++)
			found = !p[k].client.value && !strcmp(p[k].name, port);
		free(p);
		if (found)
			return flt_filter_name(v[i]);
	}
	return NULL;
}

/* Why an entry point refused with -EEXIST: most often its port name
 * (param.port, else the object's name) is another filter's. */
static int
refused_exists(flt_manager *m, const struct cfg_filter *cf,
	       const struct flt_filter_config *fc, const char *object, char **ret_why)
{
	const char *given = flt_config_param(fc, "port");
	char port[FLT_PORT_NAME_MAX + 1];
	const char *holder;

	snprintf(port, sizeof(port), "%s", given ? given : base_name(object));
	if (!given && strlen(port) > 3 && !strcmp(port + strlen(port) - 3, ".so"))
		port[strlen(port) - 3] = '\0';
	holder = port_holder(m, port);
	if (holder)
		return fail(-EEXIST, ret_why,
			    "filter %s refused to load: port name %s is taken by filter "
			    "%s; set param.port",
			    cf->name, port, holder);
	return fail(-EEXIST, ret_why,
		    "filter %s refused to load: a name it creates exists already "
		    "(File exists; a port? set param.port)",
		    cf->name);
}

int
filter_load_image(flt_manager *m, const struct cfg_filter *cf, struct filter_image *img,
		  struct loaded_filter *ret, char **ret_why)
{
	struct flt_filter_config fc = {
		.name = cf->name,
		.altitude = cf->altitude,
		.deadline_ms = cf->deadline_ms,
		.default_verdict = cf->default_verdict,
		.n_params = cf->n_params,
	};
	const char **keys = NULL, **values = NULL;
	flt_filter_entry_fn entry;
	flt_filter *f = NULL;
	char proc[64];
	void *dl;
	int r;

	*ret_why = NULL;
	if (img->loaded) {
		r = image_refresh(img, ret_why);
		if (r < 0)
			return r;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", img->fd);
	dl = dlopen(proc, RTLD_NOW | RTLD_LOCAL);
	img->loaded = true;
	if (!dl)
		return fail(-ENOEXEC, ret_why, "filter object %s: cannot load: %s",
			    img->path, dlerror());
	entry = (flt_filter_entry_fn)dlsym(dl, FLT_FILTER_ENTRY_SYMBOL);
	if (!entry) {
		r = fail(-ENOEXEC, ret_why, "filter object %s has no %s function",
			 img->path, FLT_FILTER_ENTRY_SYMBOL);
		goto fail_dl;
	}
	if (cf->n_params) {
		keys = calloc(cf->n_params, sizeof(*keys));
		values = calloc(cf->n_params, sizeof(*values));
		if (!keys || !values) {
			r = -ENOMEM;
			goto fail_dl;
		}
		for (size_t i = 0; i < cf->n_params; i++) {
			keys[i] = cf->params[i].key;
			values[i] = cf->params[i].value;
		}
	}
	if (!fc.altitude) {
		const char *own = dlsym(dl, FLT_FILTER_ALTITUDE_SYMBOL);

		if (!own || !memchr(own, '\0', 32) || !altitude_valid(own)) {
			r = fail(-EINVAL, ret_why,
				 "filter %s: no altitude is configured and its object %s "
				 "%s; give one (fltmc load %s ALTITUDE, or a [filter "
				 "%s] section)",
				 cf->name, img->path,
				 own ? "names no valid default altitude "
				       "(" FLT_FILTER_ALTITUDE_SYMBOL ")"
				     : "names no default altitude "
				       "(" FLT_FILTER_ALTITUDE_SYMBOL ")",
				 cf->name, cf->name);
			goto fail_dl;
		}
		fc.altitude = own;
	}
	fc.param_keys = keys;
	fc.param_values = values;
	r = entry(m, &fc, &f);
	if (r >= 0 && (!f || strcmp(flt_filter_name(f), cf->name))) {
		if (f)
			flt_unregister_filter(f);
		r = fail(-EPROTO, ret_why,
			 "filter object %s: %s did not register filter %s", img->path,
			 FLT_FILTER_ENTRY_SYMBOL, cf->name);
		goto fail_dl;
	}
	if (r < 0) {
		if (f) /* registered, then failed: do not leave it behind */
			flt_unregister_filter(f);
		if (r == -EEXIST)
			r = refused_exists(m, cf, &fc, img->path, ret_why);
		else
			r = fail(r, ret_why, "filter %s refused to load: %s", cf->name,
				 strerror(-r));
		goto fail_dl;
	}
	free(keys);
	free(values);
	*ret = (struct loaded_filter){ .dl = dl, .filter = f, .img = *img };
	*img = (struct filter_image){ .fd = -1 };
	return 0;
fail_dl:
	free(keys);
	free(values);
	dlclose(dl);
	return r;
}

int
filter_load(flt_manager *m, const char *filter_dir, const struct cfg_filter *cf,
	    struct loaded_filter *ret, char **ret_why)
{
	struct filter_image img;
	int r;

	r = filter_image_open(filter_dir, cf, &img, ret_why);
	if (r < 0)
		return r;
	r = filter_load_image(m, cf, &img, ret, ret_why);
	filter_image_close(&img); /* emptied on success */
	return r;
}

void
filter_unload_keep_image(struct loaded_filter *lf, struct filter_image *ret_img)
{
	if (!lf)
		return;
	if (lf->filter)
		flt_unregister_filter(lf->filter); /* waits for its callbacks */
	if (lf->dl) {
		char proc[64];
		void *still;

		dlclose(lf->dl);
		/* dlopen() finds an object by the name it was loaded under
		 * (/proc/self/fd/N) before anything else: while the object
		 * stays mapped (a dlclose() may keep it), N must never name
		 * another copy. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", lf->img.fd);
		still = dlopen(proc, RTLD_LAZY | RTLD_NOLOAD);
		if (still) {
			dlclose(still);
			lf->img.pinned = true;
		}
	}
	if (ret_img)
		*ret_img = lf->img;
	else
		filter_image_close(&lf->img);
	*lf = (struct loaded_filter){ .img = { .fd = -1 } };
}

void
filter_unload(struct loaded_filter *lf)
{
	filter_unload_keep_image(lf, NULL);
}

bool
filter_object_replaced(const struct loaded_filter *lf)
{
	struct stat now;

	if (!lf->img.path || stat(lf->img.path, &now) < 0)
		return false; /* gone: the next load will say so */
	return now.st_dev != lf->img.st.st_dev || now.st_ino != lf->img.st.st_ino ||
	       now.st_size != lf->img.st.st_size ||
	       now.st_mtim.tv_sec != lf->img.st.st_mtim.tv_sec ||
	       now.st_mtim.tv_nsec != lf->img.st.st_mtim.tv_nsec;
}
