/* SPDX-License-Identifier: MIT */
/*
 * decode.h — parse the records read from a fanotify group. Pure: no I/O,
 * no allocation; every length is checked against the buffer, so a
 * synthetic or corrupt buffer yields an error, never an overread.
 */
#ifndef FLTMGR_DECODE_H
#define FLTMGR_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A file handle inside an info record (struct file_handle layout). */
struct fan_fid {
	uint64_t fsid;      /* __kernel_fsid_t, as 8 bytes */
	const void *handle; /* points at struct file_handle in the buffer */
	uint32_t handle_bytes;
	int handle_type;
	const char *name; /* DFID_NAME records: NUL-terminated; else NULL */
};

struct fan_event {
	uint64_t mask;
	int fd; /* FAN_NOFD for FID groups and overflow */
	pid_t pid;
	int pidfd; /* -1: none; FAN_NOPIDFD / FAN_EPIDFD as reported */
	int has_fid, has_dfid_name, has_old, has_new;
	struct fan_fid fid;           /* FAN_EVENT_INFO_TYPE_FID (the object) */
	struct fan_fid dfid_name;     /* DFID_NAME (parent + name) */
	struct fan_fid old_dfid_name; /* FAN_RENAME: where it was */
	struct fan_fid new_dfid_name; /* FAN_RENAME: where it is */
};

/*
 * Decodes the event at buf[*off] and advances *off past it. Returns 1 for
 * an event, 0 at the end of the buffer, or -EBADMSG with *ret_reason set
 * (the rest of the buffer cannot be trusted). Unknown info record types
 * are skipped.
 */
int fan_decode_next(const uint8_t *buf, size_t len, size_t *off, struct fan_event *ev,
		    const char **ret_reason);

#endif
