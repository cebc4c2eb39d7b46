/* SPDX-License-Identifier: MIT */
/*
 * send_batch.c — flt_send_message_batch(): messages that want no reply,
 * packed into one MESSAGE_BATCH frame (docs/ports.md, section 3) for a
 * service that takes batches, or sent alone as a MESSAGE otherwise.
 *
 * Ids and sequence numbers are taken under the connection lock exactly as
 * flt_send_message() takes them, one per message, so a service sees the
 * same numbering whichever way the messages travelled; messages_sent
 * counts messages, not frames. A frame is queued whole or not at all, so
 * the caller learns exactly which messages left: the first k.
 */
#include <errno.h>
#include <stdbool.h>

#include "common/frame_io.h"
#include "common/timeutil.h"
#include "ports/internal.h"

size_t
batch_frame_fits(bool batches, const struct flt_batch_message *msgs, size_t n)
{
	size_t k = 0, total = 0;

	if (!batches)
		return 1;
	while (k < n && k < BATCH_MAX_MESSAGES) {
		size_t need = WIRE_BATCH_ENTRY_SIZE + msgs[k].len;

		if (msgs[k].len > WIRE_BATCH_MAX_ENTRY || need > WIRE_MAX_PAYLOAD - total)
			break;
		total += need;
		k++;
	}
	return k ? k : 1; /* a message too long for an entry goes alone */
}

size_t
batch_frame_build(const struct flt_batch_message *msgs, size_t k, uint64_t *next_seq,
		  uint8_t (*entries)[WIRE_BATCH_ENTRY_SIZE], struct iovec *iov,
		  struct wire_header *h)
{
	size_t n_iov = 0;

	h->length = 0;
	if (k == 1) {
		h->type = WIRE_MESSAGE;
		h->length = (uint32_t)msgs[0].len;
		h->aux = msgs[0].sequence ? msgs[0].sequence : ++*next_seq;
		iov[n_iov++] = (struct iovec){ .iov_base = (void *)msgs[0].msg,
					       .iov_len = msgs[0].len };
		return h->length ? n_iov : 0;
	}
	h->type = WIRE_MESSAGE_BATCH;
	h->aux2 = (uint32_t)k;
	for (size_t i = 0; i < k; i++) {
		uint64_t seq = msgs[i].sequence ? msgs[i].sequence : ++*next_seq;

		wire_encode_batch_entry(entries[i], seq, (uint32_t)msgs[i].len);
		iov[n_iov++] = (struct iovec){ .iov_base = entries[i],
					       .iov_len = WIRE_BATCH_ENTRY_SIZE };
		if (msgs[i].len)
			iov[n_iov++] = (struct iovec){ .iov_base = (void *)msgs[i].msg,
						       .iov_len = msgs[i].len };
		h->length += (uint32_t)(WIRE_BATCH_ENTRY_SIZE + msgs[i].len);
	}
	return n_iov;
}

static int
conn_send_batch(struct conn *c, const struct flt_batch_message *msgs, size_t n,
		int64_t deadline)
{
	uint8_t entries[BATCH_MAX_MESSAGES][WIRE_BATCH_ENTRY_SIZE];
	struct iovec iov[FRAME_MAX_IOV];
	struct wire_header h = { 0 };
	size_t k, n_iov = 0;
	int r;

	pthread_mutex_lock(&c->lock);
	r = conn_wait_connected_locked(c, deadline);
	if (r < 0) {
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	k = batch_frame_fits(c->batches, msgs, n);
	h.id = c->next_id + 1;
	c->next_id += k;
	n_iov = batch_frame_build(msgs, k, &c->next_seq, entries, iov, &h);
	pthread_mutex_unlock(&c->lock);

	r = conn_queue_frame(c, &h, iov, n_iov, -1, deadline);
	if (r < 0) {
		pthread_mutex_lock(&c->lock);
		if (c->state == CONN_CLOSING)
			r = -ENOTCONN;
		pthread_mutex_unlock(&c->lock);
		if (r == -ETIMEDOUT)
			atomic_fetch_add(&c->ctr.timeouts, 1);
		else if (r == -ENOTCONN)
			atomic_fetch_add(&c->ctr.disconnect_failures, 1);
		return r;
	}
	atomic_fetch_add_explicit(&c->ctr.sent, k, memory_order_relaxed);
	return (int)k;
}

int
flt_send_message_batch(flt_filter *filter, const flt_port *client_port,
		       const struct flt_batch_message *msgs, size_t n, int timeout_ms)
{
	struct conn *c = NULL;
	int64_t deadline;
	int r;

	if (!filter || !client_port || !msgs || n == 0 || timeout_ms < FLT_INFINITE)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].msg && msgs[i].len)
			return -EINVAL;
	if (msgs[0].len > WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	deadline = callback_scope_cap(deadline_from_ms(timeout_ms));
	r = conn_lookup(filter, client_port, &c);
	if (r < 0)
		return r;
	r = conn_send_batch(c, msgs, n, deadline);
	obj_unref(&c->obj);
	return r;
}
