/* SPDX-License-Identifier: MIT */
/*
 * statx_compat.h — statx() with the mount id. glibc 2.36's struct statx
 * predates stx_mnt_id (Linux 5.8), so the engine calls the system call
 * with its own copy of the kernel's layout (UAPI linux/stat.h, which
 * cannot be included next to <sys/stat.h>).
 */
#ifndef FLTMGR_STATX_COMPAT_H
#define FLTMGR_STATX_COMPAT_H

#include <stdint.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#define FLT_STATX_TYPE        0x0001u
#define FLT_STATX_MODE        0x0002u
#define FLT_STATX_NLINK       0x0004u
#define FLT_STATX_UID         0x0008u
#define FLT_STATX_GID         0x0010u
#define FLT_STATX_MTIME       0x0040u
#define FLT_STATX_CTIME       0x0080u
#define FLT_STATX_INO         0x0100u
#define FLT_STATX_SIZE        0x0200u
#define FLT_STATX_BASIC_STATS 0x07ffu
#define FLT_STATX_MNT_ID      0x1000u

struct flt_statx_ts {
	int64_t tv_sec;
	uint32_t tv_nsec;
	int32_t reserved;
};

struct flt_statx {
	uint32_t stx_mask;
	uint32_t stx_blksize;
	uint64_t stx_attributes;
	uint32_t stx_nlink;
	uint32_t stx_uid;
	uint32_t stx_gid;
	uint16_t stx_mode;
	uint16_t spare0;
	uint64_t stx_ino;
	uint64_t stx_size;
	uint64_t stx_blocks;
	uint64_t stx_attributes_mask;
	struct flt_statx_ts stx_atime, stx_btime, stx_ctime, stx_mtime;
	uint32_t stx_rdev_major, stx_rdev_minor;
	uint32_t stx_dev_major, stx_dev_minor;
	uint64_t stx_mnt_id;
	uint64_t spare2[13];
};

_Static_assert(sizeof(struct flt_statx) == 256, "the kernel's struct statx is 256 bytes");

static inline int
flt_statx(int dirfd, const char *path, int flags, unsigned mask, struct flt_statx *st)
{
	return (int)syscall(SYS_statx, dirfd, path, flags, mask, st);
}

static inline dev_t
flt_statx_dev(const struct flt_statx *st)
{
	return makedev(st->stx_dev_major, st->stx_dev_minor);
}

static inline int64_t
flt_statx_ctime_ns(const struct flt_statx *st)
{
	/* Saturated: a ctime past 2262 reads as "now or later". */
	if (st->stx_ctime.tv_sec > INT64_MAX / 1000000000 - 1)
		return INT64_MAX;
	if (st->stx_ctime.tv_sec < INT64_MIN / 1000000000 + 1)
		return INT64_MIN;
	return st->stx_ctime.tv_sec * 1000000000 + (int64_t)st->stx_ctime.tv_nsec;
}

#endif
