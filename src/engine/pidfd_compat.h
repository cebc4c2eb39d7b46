/* SPDX-License-Identifier: MIT */
/*
 * pidfd_compat.h — pidfs and PIDFD_GET_INFO, newer than the build host's
 * kernel headers (Debian 12 ships 6.1 headers). Values are the kernel's
 * UAPI values.
 */
#ifndef FLTMGR_PIDFD_COMPAT_H
#define FLTMGR_PIDFD_COMPAT_H

#include <stdint.h>
#include <sys/ioctl.h>

/* statfs f_type of a pidfd on pidfs (Linux 6.9+) */
#define FLT_PIDFS_MAGIC 0x50494446

/* PIDFD_GET_INFO (Linux 6.13), as far as we use it: its first version. */
struct pidfd_info_v0 {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid;
	uint32_t ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	uint32_t spare0;
};
#define FLT_PIDFD_GET_INFO   _IOWR(0xFF, 11, struct pidfd_info_v0)
#define FLT_PIDFD_INFO_CREDS (1ull << 1)

#endif
