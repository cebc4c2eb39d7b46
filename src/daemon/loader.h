/* SPDX-License-Identifier: MIT */
/*
 * loader.h — loading a filter from its shared object, the fltmgrd
 * counterpart of the Windows service control manager starting a driver:
 * check who may have written it, take a private copy of exactly the bytes
 * that were checked, check that they are a whole shared object for this
 * machine, load the copy, call its entry point.
 *
 * The copy (an "image", a sealed memfd) is what runs: rewriting or
 * truncating the file afterwards cannot reach the running filter, and a
 * file cut short (a copy still in progress) is refused with a message
 * instead of crashing the daemon inside dlopen().
 */
#ifndef FLTMGR_LOADER_H
#define FLTMGR_LOADER_H

#include <fltmgr/filter.h>

#include "daemon/config.h"

#include <stdbool.h>
#include <sys/stat.h>

/* A checked, private, unchangeable copy of a filter object. */
struct filter_image {
	int fd;         /* sealed memfd (or an unnamed root-only file); -1: none */
	char *path;     /* the file it was read from */
	struct stat st; /* of that file when it was read */
	bool loaded;    /* dlopen()ed once: the next load takes a fresh copy */
	bool pinned;    /* dlclose() left it mapped: fd is never closed, so
			   its name /proc/self/fd/N is never reused */
};

/*
 * Opens path and checks it may be trusted by a root daemon (trust.h: root
 * owns it and every directory on its way, none of them writable by
 * others). Returns an open descriptor of exactly the checked file, or a
 * negative errno with *ret_why set (free() it).
 */
int filter_object_open(const char *path, char **ret_why);

/*
 * The image of cf's object (cf->object, relative to filter_dir unless
 * absolute): checked as above, copied, sealed, and checked to be a whole
 * ELF shared object of this machine's class and type. Touches nothing
 * that runs. On failure *ret_why names the file and says why.
 */
int filter_image_open(const char *filter_dir, const struct cfg_filter *cf,
		      struct filter_image *ret, char **ret_why);
void filter_image_close(struct filter_image *img);

/*
 * A filter object may name its own default altitude, as a Windows filter
 * does in its INF: a NUL-terminated decimal string exported under this
 * name, e.g.
 *     __attribute__((visibility("default")))
 *     const char fltmgr_filter_altitude[] = "385100";
 * `fltmc load NAME` uses it when the configuration has no [filter NAME]
 * section and no altitude is given.
 */
#define FLT_FILTER_ALTITUDE_SYMBOL "fltmgr_filter_altitude"

struct loaded_filter {
	void *dl;
	flt_filter *filter;
	struct filter_image img; /* what runs; kept to start it again */
};

/*
 * Loads img, calls its entry point with cf's settings (cf->altitude NULL:
 * the object's own FLT_FILTER_ALTITUDE_SYMBOL), and checks the
 * filter it registered. On success lf owns img (img is emptied); on
 * failure nothing stays loaded, img stays the caller's and *ret_why says
 * why (free() it).
 */
int filter_load_image(flt_manager *m, const struct cfg_filter *cf,
		      struct filter_image *img, struct loaded_filter *ret,
		      char **ret_why);

/* filter_image_open() and filter_load_image() in one. */
int filter_load(flt_manager *m, const char *filter_dir, const struct cfg_filter *cf,
		struct loaded_filter *ret, char **ret_why);

/* The file at the image's path is no longer the one that was loaded
 * (replaced by a rename, or rewritten): a reload restarts the filter. */
bool filter_object_replaced(const struct loaded_filter *lf);

/* Unregisters the filter (waits for its callbacks) and unloads it. With
 * ret_img, its image is handed back instead of closed. */
void filter_unload(struct loaded_filter *lf);
void filter_unload_keep_image(struct loaded_filter *lf, struct filter_image *ret_img);

#endif
