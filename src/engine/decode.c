/* SPDX-License-Identifier: MIT */
/*
 * decode.c — fanotify record parsing (see decode.h). The kernel's layout:
 * struct fanotify_event_metadata, then info records (header: type, pad,
 * len) up to event_len. Nothing here trusts a length it has not checked.
 */
#include "engine/decode.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>

#include "engine/fanotify_compat.h"

#ifndef FAN_EVENT_INFO_TYPE_PIDFD
#define FAN_EVENT_INFO_TYPE_PIDFD 4
#endif
#ifndef FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
#define FAN_EVENT_INFO_TYPE_OLD_DFID_NAME 10
#define FAN_EVENT_INFO_TYPE_NEW_DFID_NAME 12
#endif

#define FH_HEADER 8 /* struct file_handle: u32 handle_bytes, int handle_type */

static int
decode_fid(const uint8_t *rec, size_t rec_len, bool with_name, struct fan_fid *out,
	   const char **why)
{
	/* info header (4) + fsid (8) + file_handle header (8) */
	const size_t fixed = 4 + 8 + FH_HEADER;
	uint32_t hb;
	int ht;

	if (rec_len < fixed) {
		*why = "fid record shorter than its fixed part";
		return -EBADMSG;
	}
	memcpy(&out->fsid, rec + 4, 8);
	memcpy(&hb, rec + 12, 4);
	memcpy(&ht, rec + 16, 4);
	if (hb > rec_len - fixed || hb > 128) {
		*why = "file handle longer than its record";
		return -EBADMSG;
	}
	out->handle = rec + 12;
	out->handle_bytes = hb;
	out->handle_type = ht;
	out->name = NULL;
	if (with_name) {
		const char *name = (const char *)rec + fixed + hb;
		size_t room = rec_len - fixed - hb;

		if (room == 0 || !memchr(name, '\0', room)) {
			*why = "name not terminated inside its record";
			return -EBADMSG;
		}
		out->name = name;
	}
	return 0;
}

int
fan_decode_next(const uint8_t *buf, size_t len, size_t *off, struct fan_event *ev,
		const char **why)
{
	struct fanotify_event_metadata md;
	size_t pos, end;

	if (*off >= len)
		return 0;
	if (len - *off < sizeof(md)) {
		*why = "truncated event metadata";
		return -EBADMSG;
	}
	memcpy(&md, buf + *off, sizeof(md));
	if (md.vers != FANOTIFY_METADATA_VERSION) {
		*why = "unknown fanotify metadata version";
		return -EBADMSG;
	}
	if (md.event_len < sizeof(md) || md.event_len > len - *off ||
	    md.metadata_len < sizeof(md) || md.metadata_len > md.event_len) {
		*why = "event length out of bounds";
		return -EBADMSG;
	}
	memset(ev, 0, sizeof(*ev));
	ev->mask = md.mask;
	ev->fd = md.fd;
	ev->pid = md.pid;
	ev->pidfd = -1;

	pos = *off + md.metadata_len;
	end = *off + md.event_len;
	while (pos < end) {
		struct fanotify_event_info_header h;
		const uint8_t *rec = buf + pos;
		int r = 0;

		if (end - pos < sizeof(h)) {
			*why = "truncated info record header";
			return -EBADMSG;
		}
		memcpy(&h, rec, sizeof(h));
		if (h.len < sizeof(h) || h.len > end - pos) {
			*why = "info record length out of bounds";
			return -EBADMSG;
		}
		switch (h.info_type) {
		case FAN_EVENT_INFO_TYPE_FID:
			r = decode_fid(rec, h.len, false, &ev->fid, why);
			ev->has_fid = r == 0;
			break;
		case FAN_EVENT_INFO_TYPE_DFID_NAME:
			r = decode_fid(rec, h.len, true, &ev->dfid_name, why);
			ev->has_dfid_name = r == 0;
			break;
		case FAN_EVENT_INFO_TYPE_DFID:
			r = decode_fid(rec, h.len, false, &ev->dfid_name, why);
			ev->has_dfid_name = r == 0;
			break;
		case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
			r = decode_fid(rec, h.len, true, &ev->old_dfid_name, why);
			ev->has_old = r == 0;
			break;
		case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
			r = decode_fid(rec, h.len, true, &ev->new_dfid_name, why);
			ev->has_new = r == 0;
			break;
		case FAN_EVENT_INFO_TYPE_PIDFD:
			if (h.len < sizeof(h) + sizeof(int)) {
				*why = "pidfd record too short";
				return -EBADMSG;
			}
			memcpy(&ev->pidfd, rec + sizeof(h), sizeof(int));
			break;
		default:
			break; /* newer kernels may add records: skip them */
		}
		if (r < 0)
			return r;
		pos += h.len;
	}
	*off = end;
	return 1;
}
