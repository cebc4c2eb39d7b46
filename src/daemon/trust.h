/* SPDX-License-Identifier: MIT */
/*
 * trust.h — opening a file a root daemon acts on (its configuration, a
 * filter object) only if nobody but root could have put it there.
 *
 * The path is walked one component at a time from / (from the current
 * directory's own path for a relative one), each step through the
 * descriptor of the directory already checked, symbolic links followed by
 * hand. Every directory passed through, every symbolic link and the file
 * itself must be owned by root; no directory may be writable by group or
 * others unless it is sticky (like /tmp: then only root and an entry's
 * owner may rename or remove that entry, and the entry is root's), and the
 * file may not be writable by group or others. The file must be a regular
 * file. What the walk checked is what is opened: nothing on the way can be
 * swapped behind it by anyone but root.
 */
#ifndef FLTMGR_TRUST_H
#define FLTMGR_TRUST_H

/*
 * Opens path read-only (O_CLOEXEC) after the walk above. what names the
 * file in messages ("configuration file", "filter object"). Returns the
 * descriptor, or a negative errno with *ret_why set to one sentence that
 * names the offending path (free() it): -ENOENT and the like when
 * something does not exist, -EPERM when something is not root's or is
 * writable by others, -EINVAL when the file is not a regular file, -ELOOP
 * for too many symbolic links.
 */
int trusted_open(const char *path, const char *what, char **ret_why);

struct cfg;

/*
 * What fltmgrd reads its configuration with: the file is opened through
 * trusted_open() ("configuration file"), then read as cfg_load_fd()
 * (config.h) does. Errors are in *ret_errors, one per line (free() it).
 */
int cfg_load_trusted(const char *path, struct cfg **ret_cfg, char **ret_errors);

#endif
