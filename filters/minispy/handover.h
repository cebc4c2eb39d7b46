/* SPDX-License-Identifier: MIT */
/*
 * handover.h — delivery.c's helper for a departing connection (see
 * handover.c). Nothing else calls it.
 */
#ifndef MINISPY_HANDOVER_H
#define MINISPY_HANDOVER_H

#include "minispy.h"

/* c left (no pump runs for it, every completion came). Hands on what it
 * had not delivered — sent but unconfirmed, in flight, its DEPARTED
 * losses, backlog part, queue — and frees it from c: back into the
 * backlog when c was the last service; otherwise, what no remaining
 * service got becomes DEPARTED loss records for the oldest remaining one.
 * st->lock held. Returns a one-word summary for the log. */
const char *ms_handover_locked(struct ms_state *st, struct ms_conn *c);

#endif
