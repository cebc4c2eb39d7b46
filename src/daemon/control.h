/* SPDX-License-Identifier: MIT */
/*
 * control.h — the control socket's server side: listening, who may talk
 * (SO_PEERCRED / SO_PEERGROUPS, never the file mode alone), one request
 * per packet, one reply per request, and the limits that keep one bad
 * client from holding up the daemon (docs/control.md).
 */
#ifndef FLTMGR_CONTROL_H
#define FLTMGR_CONTROL_H

#include <poll.h>

#include "daemon/daemon.h"

#define CONTROL_MAX_CLIENTS 16
/* The last slots are root's: other users together hold at most
 * CONTROL_MAX_CLIENTS - CONTROL_ROOT_SLOTS, and each user (uid) at most
 * CONTROL_MAX_PER_USER, so neither a control_group member nor anybody who
 * gets past the socket's mode can lock root out. */
#define CONTROL_ROOT_SLOTS   4
#define CONTROL_MAX_PER_USER 4
#define CONTROL_IDLE_MS      5000
/* A client over those limits is answered EBUSY after its request is read
 * (a reply left beside an unread request reaches it as a reset): at most
 * this many wait for that at once, each at most CONTROL_REFUSE_MS; past
 * either, it is closed at once. */
#define CONTROL_MAX_REFUSING 8
#define CONTROL_REFUSE_MS    1000
/* The pollfds control_pollfds() may fill. */
#define CONTROL_POLLFDS (1 + CONTROL_MAX_CLIENTS + CONTROL_MAX_REFUSING)

struct control;

/* Creates <runtime_dir>/control (mode 0600, or 0660 with group gid when
 * gid != (gid_t)-1). A stale socket file is replaced. */
int control_open(struct daemon *d, struct control **ret);
void control_close(struct control *c);
/* Applies a changed control_group (reload). */
void control_set_group(struct control *c, gid_t gid);

/* Fills pollfds for the listener and each client; returns how many. */
int control_pollfds(struct control *c, struct pollfd *p, int max);
/* Handles what poll reported on those pollfds (same order, same n). */
void control_dispatch(struct control *c, const struct pollfd *p, int n);
/* Milliseconds until the next idle client expires or a pause of
 * accepting ends (-1: neither); expires the clients whose time has come. */
int control_expire(struct control *c);

#endif
