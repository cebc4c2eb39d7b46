/* SPDX-License-Identifier: MIT */
/*
 * fanotify_compat.h — fanotify constants newer than the build host's
 * kernel headers (Debian 12 ships 6.1 headers; the running kernel may be
 * much newer). Values are the kernel's UAPI values.
 */
#ifndef FLTMGR_FANOTIFY_COMPAT_H
#define FLTMGR_FANOTIFY_COMPAT_H

#include <sys/fanotify.h>

#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_DENY_ERRNO
#define FAN_ERRNO_BITS      8
#define FAN_ERRNO_SHIFT     (32 - FAN_ERRNO_BITS)
#define FAN_DENY_ERRNO(err) (FAN_DENY | ((((unsigned)(err)) & 0xff) << FAN_ERRNO_SHIFT))
#endif
#ifndef FAN_REPORT_PIDFD
#define FAN_REPORT_PIDFD 0x00000080
#endif
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif
#ifndef FAN_RENAME
#define FAN_RENAME 0x10000000
#endif

#ifndef FAN_REPORT_MNT
#define FAN_REPORT_MNT 0x00004000
#endif
#ifndef FAN_MARK_MNTNS
#define FAN_MARK_MNTNS 0x00000110
#endif
#ifndef FAN_MNT_ATTACH
#define FAN_MNT_ATTACH 0x01000000
#define FAN_MNT_DETACH 0x02000000
#endif

#endif
