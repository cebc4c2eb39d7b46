/* SPDX-License-Identifier: MIT */
/*
 * test_port_stress.c — the request state machine under pressure: many
 * senders with tiny random timeouts against service threads that answer
 * after random delays, so replies race timeouts on every message, and the
 * reader role passes between senders and the connection thread constantly.
 *
 * Proves: every send ends in 0 or -ETIMEDOUT; a 0 always carries the reply
 * to that sender's own message (never another's); every message that left
 * (messages_sent) got a reply that was either taken (0) or refused
 * (-ENOENT) — and the filter's counters agree exactly with what both sides
 * observed. A send may also time out before its message leaves, while the
 * message socket is full (docs/ports.md): the service never sees that one,
 * so the service's count is compared with messages_sent, not with the
 * number of sends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define SENDERS         6
#define SERVICE_THREADS 4
#define PER_SENDER      3000

static flt_filter *g_f;
static flt_port g_client;

static int
st_connect(flt_port client_port, void *server_cookie, const void *context,
	   size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	(void)server_cookie;
	(void)context;
	(void)context_len;
	(void)peer;
	(void)ret_cookie;
	g_client = client_port;
	return 0;
}

static void
st_disconnect(void *cookie)
{
	(void)cookie;
	flt_close_client_port(g_f, &g_client);
}

struct svc {
	filter_port *p;
	atomic_long taken, refused, other;
};

static void *
svc_thread(void *arg)
{
	struct svc *s = arg;
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (;;) {
		struct filter_message_header h;
		uint64_t v;
		int r = filter_get_message(s->p, &h, &v, sizeof(v), -1);

		if (r < 0)
			return NULL;
		if (rand_r(&seed) % 4 == 0)
			usleep(rand_r(&seed) % 3000); /* sometimes slow */
		r = filter_reply_message(s->p, h.message_id, 0, &v, sizeof(v));
		if (r == 0)
			atomic_fetch_add(&s->taken, 1);
		else if (r == -ENOENT)
			atomic_fetch_add(&s->refused, 1);
		else
			atomic_fetch_add(&s->other, 1);
	}
}

struct snd {
	int idx;
	long ok, timedout, bad;
};

static void *
snd_thread(void *arg)
{
	struct snd *s = arg;
	unsigned seed = (unsigned)s->idx * 7919u;

	for (int i = 0; i < PER_SENDER; i++) {
		uint64_t v = ((uint64_t)s->idx << 32) | (uint64_t)i, r = 0;
		size_t len = sizeof(r);
		int rc = flt_send_message(g_f, &g_client, &v, sizeof(v), &r, &len,
					  (int)(rand_r(&seed) % 4));

		if (rc == 0 && len == sizeof(r) && r == v)
			s->ok++;
		else if (rc == -ETIMEDOUT)
			s->timedout++;
		else
			s->bad++;
	}
	return NULL;
}

static void
replies_race_timeouts(void **state)
{
	struct flt_registration reg = { .name = "stress", .altitude = "370040" };
	struct flt_port_attributes attr = { .name = "stress" };
	struct svc svc[SERVICE_THREADS];
	struct snd snd[SENDERS];
	pthread_t ts[SERVICE_THREADS], tn[SENDERS];
	struct flt_port_stats ps;
	long ok = 0, timedout = 0, taken = 0, refused = 0, sent;
	filter_port *p = NULL;
	flt_manager *m;
	flt_port server;

	(void)state;
	tu_runtime_dir_create();
	m = tu_manager_new();
	assert_int_equal(flt_register_filter(m, &reg, &g_f), 0);
	assert_int_equal(flt_create_communication_port(g_f, &server, &attr, NULL,
						       st_connect, st_disconnect, NULL,
						       1),
			 0);
	assert_int_equal(filter_connect_communication_port("stress", 0, NULL, 0, &p), 0);
	for (int i = 0; i < SERVICE_THREADS; i++) {
		svc[i].p = p;
		atomic_init(&svc[i].taken, 0);
		atomic_init(&svc[i].refused, 0);
		atomic_init(&svc[i].other, 0);
		assert_int_equal(pthread_create(&ts[i], NULL, svc_thread, &svc[i]), 0);
	}
	for (int i = 0; i < SENDERS; i++) {
		snd[i] = (struct snd){ .idx = i + 1 };
		assert_int_equal(pthread_create(&tn[i], NULL, snd_thread, &snd[i]), 0);
	}
	for (int i = 0; i < SENDERS; i++) {
		pthread_join(tn[i], NULL);
		assert_int_equal(snd[i].bad, 0);
		ok += snd[i].ok;
		timedout += snd[i].timedout;
	}
	/* Every sender has returned: no message leaves any more. */
	assert_int_equal(flt_port_get_stats(g_f, &server, &ps), 0);
	sent = (long)ps.messages_sent;
	/* Let the service answer what it still holds, so every reply has
	 * been judged before we count (a bound for a loaded machine, not a
	 * timing claim: it ends as soon as everything is answered). */
	for (int i = 0; i < 3000; i++) {
		long answered = 0;

		usleep(10000);
		for (int j = 0; j < SERVICE_THREADS; j++)
			answered +=
				atomic_load(&svc[j].taken) + atomic_load(&svc[j].refused);
		if (answered == sent)
			break;
	}
	filter_close_port(p);
	for (int i = 0; i < SERVICE_THREADS; i++) {
		pthread_join(ts[i], NULL);
		assert_int_equal(atomic_load(&svc[i].other), 0);
		taken += atomic_load(&svc[i].taken);
		refused += atomic_load(&svc[i].refused);
	}
	print_message("stress: ok=%ld timedout=%ld (%ld never left: the socket was "
		      "full); service: taken=%ld refused=%ld\n",
		      ok, timedout, (long)SENDERS * PER_SENDER - sent, taken, refused);
	if (taken + refused != sent)
		fail_msg("the service judged %ld of %ld replies", taken + refused, sent);
	assert_int_equal(ok + timedout, (long)SENDERS * PER_SENDER);
	assert_true(sent <= (long)SENDERS * PER_SENDER);
	assert_int_equal(taken, ok);         /* each 0 matched one taken reply */
	assert_true(ok > 0 && timedout > 0); /* both outcomes really raced */
	assert_int_equal(flt_port_get_stats(g_f, &server, &ps), 0);
	assert_int_equal(ps.messages_sent, (uint64_t)sent);
	assert_int_equal(ps.replies_received, (uint64_t)ok);
	assert_int_equal(ps.late_replies, (uint64_t)refused);
	assert_int_equal(ps.timeouts, (uint64_t)timedout);
	flt_unregister_filter(g_f);
	flt_manager_free(m);
	tu_runtime_dir_remove();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(replies_race_timeouts),
	};

	return cmocka_run_group_tests_name("port_stress", tests, NULL, NULL);
}
