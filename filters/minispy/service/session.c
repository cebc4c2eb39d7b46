/* SPDX-License-Identifier: MIT */
/*
 * session.c — the service's life: connect to the minispy port, take
 * records and print them, and react to signals and to the daemon going
 * away.
 *
 * Records come in batches (FILTER_CONNECT_BATCHES): one port record holds
 * as many as the filter had ready, and filter_get_messages() takes them
 * all at once. The port descriptor is readable only while a record waits
 * in the socket, so the loop reads until -ETIMEDOUT before it polls.
 *
 * One thread. Signals (SIGINT, SIGTERM, SIGHUP) are blocked and read from
 * a signalfd that is polled together with the port's descriptor, so a
 * signal is handled between two records, never inside one: a stop at any
 * moment first takes what is already waiting on the socket (bounded),
 * writes and flushes it, then closes the port and exits 0. Records the
 * service has read are never dropped; records still in the socket when a
 * SIGKILL comes are the limit docs/minispy-filter.md states.
 *
 * When the connection ends (fltmgrd stopped, restarted, or the filter
 * unloaded), the service reconnects with exponential backoff (100 ms up
 * to 5 s) and says so once per state change, not once per attempt; with
 * --no-reconnect it exits 1 instead. The first connection is not retried:
 * a missing daemon or a refusal is reported on one line naming the port
 * and the cause, with a distinct exit status (enum spy_exit).
 *
 * Confirmation. The service connects as a confirming one (minispy_record.h)
 * and, after its output has been flushed, tells the filter how many
 * messages it has handled: at least every CONFIRM_EVERY messages, within
 * CONFIRM_IDLE_MS of going idle, and once more before it exits. The filter
 * keeps what is not confirmed and hands it to the next service if this
 * one dies (SIGKILL included), so a crash costs duplicates, not records.
 * A filter that does not know the call makes the service stop confirming.
 *
 * The port is owned by struct session (closed before every reconnect and
 * at exit), and so is the JSON buffer (freed at exit); the output stream
 * by output.c.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fltmgr/user.h>

#include "spy.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Records read before going back to poll(): keeps signals prompt and the
 * output flushed regularly under a flood. */
#define DRAIN_BATCH 1024
/* What a stop still takes from the socket before exiting. */
#define DRAIN_AT_STOP 65536
/* Confirm at least this often (messages), and this soon after going idle;
 * both well inside the filter's window (its queue_size, 4096 by default). */
#define CONFIRM_EVERY   256
#define CONFIRM_IDLE_MS 50
/* What one filter_get_messages() takes at most: a whole port record
 * (64 KiB, at most 511 messages). */
#define TAKE_MAX       512
#define FLT_TAKE_BYTES 65536

struct session {
	const struct spy_options *o;
	char path[PATH_MAX];
	struct spy_output *out;
	struct json_writer json; /* the JSON line being made, reused */
	filter_port *port;
	int sfd;
	uint64_t events;         /* events printed */
	uint64_t bad;            /* malformed or oversized messages skipped */
	uint64_t handled;        /* messages taken on this connection */
	uint64_t confirmed_upto; /* the last count confirmed */
	bool confirming;         /* the filter takes confirmations */
	bool flush_failed;       /* the last flush failed: confirm nothing more */
	bool stopping;           /* leave the loop, with exit_code */
	bool stop_signal;        /* stopping by a signal: still drain the socket */
	int exit_code;           /* enum spy_exit */
	/* One port record's worth: the filter sends records in batches. */
	struct filter_message msgs[TAKE_MAX];
	uint8_t buf[FLT_TAKE_BYTES];
};

static void
stop(struct session *s, int exit_code)
{
	if (s->stopping)
		return; /* the first reason wins */
	s->stopping = true;
	s->exit_code = exit_code;
}

/* A connection state line on stderr, unless --quiet. */
__attribute__((format(printf, 2, 3))) static void
say(const struct session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->o->quiet)
		return;
	fputs("minispy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A one-line cause for a connect error, and the exit status it means. */
static const char *
connect_cause(int err, int *ret_exit)
{
	*ret_exit = SPY_EXIT_FAIL;
	switch (err) {
	case -ENOENT:
		*ret_exit = SPY_EXIT_NO_DAEMON;
		return "no such port (is fltmgrd running with the minispy filter?)";
	case -ECONNREFUSED:
		*ret_exit = SPY_EXIT_NO_DAEMON;
		return "nobody is listening (fltmgrd is not running)";
	case -EACCES:
	case -EPERM:
		*ret_exit = SPY_EXIT_PERMISSION;
		return "permission denied (the port's mode or its allowed users "
		       "refuse this user; try as root)";
	case -EUSERS:
		return "the port is at its connection limit (max_connections)";
	case -ENOTDIR:
		return "a component of the path is not a directory";
	}
	return strerror(-err);
}

/* ---- output ---- */

/* Flushes; on a broken pipe stops quietly (status 0), on another error
 * stops with status 1 and one line. */
static void
flush_output(struct session *s)
{
	int r = spy_output_flush(s->out);

	s->flush_failed = r < 0;
	if (r == 0 || (s->stopping && s->exit_code != SPY_EXIT_OK))
		return;
	if (r == -EPIPE) { /* e.g. `minispy | head`: the reader is done */
		stop(s, SPY_EXIT_OK);
		return;
	}
	fprintf(stderr, "minispy: cannot write %s: %s\n",
		s->o->output ? s->o->output : "the output", strerror(-r));
	stop(s, SPY_EXIT_FAIL);
}

static void
handle_message(struct session *s, const void *data, size_t len)
{
	struct minispy_record rec;
	int r = minispy_record_decode(data, len, &rec);

	if (r < 0) {
		if (s->bad++ == 0)
			fprintf(stderr,
				"minispy: skipping a record it cannot read (%s); "
				"is fltmgrd's minispy.so of another version?\n",
				strerror(-r));
		return;
	}
	if (rec.type == MINISPY_REC_EVENT && !(s->o->ops & (1u << rec.event.op)))
		return;
	if (spy_format_record(spy_output_stream(s->out), &s->json, &rec, s->o->json) <
	    0) {
		fprintf(stderr, "minispy: out of memory formatting a record\n");
		stop(s, SPY_EXIT_FAIL);
		return;
	}
	if (rec.type == MINISPY_REC_EVENT && s->o->count && ++s->events >= s->o->count)
		stop(s, SPY_EXIT_OK);
}

/*
 * Reads up to about max waiting records without blocking, a port record's
 * worth at a time. Returns 0 when the socket is empty or max was reached,
 * -ENOTCONN (or another error) when the connection is gone (everything
 * before it has been handled).
 */
static int
drain(struct session *s, size_t max)
{
	size_t taken = 0;

	while (taken < max) {
		int n = filter_get_messages(s->port, s->msgs, TAKE_MAX, s->buf,
					    sizeof(s->buf), 0);

		if (n == -ETIMEDOUT)
			return 0;
		if (n == -EMSGSIZE) {
			s->handled++;
			taken++;
			if (s->bad++ == 0)
				fprintf(stderr,
					"minispy: skipping an oversized message\n");
			continue;
		}
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			/* Stopped by --count or an output error: the rest
			 * were taken but not handled, so not confirmed
			 * either; the filter hands them on. */
			if (s->stopping && !s->stop_signal)
				break;
			s->handled++;
			taken++;
			if (s->msgs[i].header.fd >= 0)
				close(s->msgs[i].header.fd); /* minispy sends none */
			handle_message(s, s->msgs[i].data, s->msgs[i].length);
		}
		if (s->stopping && !s->stop_signal)
			return 0; /* --count reached, or an output error */
	}
	return 0;
}

/* Tells the filter that everything taken so far is written out (the
 * output was flushed without error after it). */
static void
confirm(struct session *s)
{
	uint8_t in[16];
	uint32_t magic = MINISPY_RECORD_MAGIC, cmd = MINISPY_CMD_CONFIRM;
	size_t len = 0;
	int r;

	if (!s->confirming || !s->port || s->flush_failed ||
	    s->handled == s->confirmed_upto)
		return;
	memcpy(in, &magic, 4);
	memcpy(in + 4, &cmd, 4);
	memcpy(in + 8, &s->handled, 8);
	r = filter_send_message(s->port, in, sizeof(in), NULL, 0, &len);
	if (r == 0) {
		s->confirmed_upto = s->handled;
	} else if (r != -ENOTCONN && r != -ECANCELED) {
		fprintf(stderr,
			"minispy: the filter refused a confirmation (%s); not "
			"confirming any more\n",
			strerror(-r));
		s->confirming = false;
	}
}

/* A fresh connection: confirm as a confirming service. */
static int
connect_port(struct session *s)
{
	uint32_t ctx[2] = { MINISPY_RECORD_MAGIC, MINISPY_CONNECT_CONFIRM };
	int r = filter_connect_communication_port(s->path, FILTER_CONNECT_BATCHES, ctx,
						  sizeof(ctx), &s->port);

	if (r == 0) {
		s->confirming = true;
		s->handled = s->confirmed_upto = 0;
	}
	return r;
}

/* ---- signals ---- */

static int
signals_open(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN); /* a closed pipe is EPIPE from write */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void
handle_signals(struct session *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			int r = spy_output_reopen(s->out);

			if (r < 0)
				fprintf(stderr,
					"minispy: SIGHUP: cannot reopen %s: %s (still "
					"writing to the old file)\n",
					s->o->output ? s->o->output : "stdout",
					strerror(-r));
		} else if (!s->stopping) {
			stop(s, SPY_EXIT_OK);
			s->stop_signal = true;
		}
	}
}

/* ---- connection ---- */

/* Sleeps timeout_ms unless a signal comes; true if it is time to stop. */
static bool
wait_signal(struct session *s, int timeout_ms)
{
	struct pollfd pf = { .fd = s->sfd, .events = POLLIN };

	if (poll(&pf, 1, timeout_ms) > 0)
		handle_signals(s);
	return s->stopping;
}

/* Reconnects until it works or a stop signal comes. */
static void
reconnect(struct session *s)
{
	int delay = BACKOFF_MIN_MS, last_err = 0;

	say(s,
	    "lost the connection to %s (fltmgrd stopped or the filter was "
	    "unloaded); reconnecting",
	    s->path);
	while (!wait_signal(s, delay)) {
		int exit_code, r = connect_port(s);

		if (r == 0) {
			say(s, "reconnected to %s", s->path);
			return;
		}
		/* While the daemon is down the port is missing or refuses:
		 * expected, silent. Anything else is news, once. */
		if (r != last_err && r != -ENOENT && r != -ECONNREFUSED)
			say(s, "%s: %s; still trying", s->path,
			    connect_cause(r, &exit_code));
		last_err = r;
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	}
}

static void
run_loop(struct session *s)
{
	while (!s->stopping) {
		struct pollfd pf[2] = {
			{ .fd = s->sfd, .events = POLLIN },
			{ .fd = filter_port_fd(s->port), .events = POLLIN },
		};
		int r;

		bool unconfirmed = s->confirming && s->handled != s->confirmed_upto;
		int n = poll(pf, 2, unconfirmed ? CONFIRM_IDLE_MS : -1);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "minispy: poll: %s\n", strerror(errno));
			stop(s, SPY_EXIT_FAIL);
			break;
		}
		if (n == 0) { /* idle */
			confirm(s);
			continue;
		}
		if (pf[0].revents)
			handle_signals(s);
		/* Also after a stop signal: take what is already there. */
		r = drain(s, s->stop_signal ? DRAIN_AT_STOP : DRAIN_BATCH);
		flush_output(s);
		if (s->stopping || s->handled - s->confirmed_upto >= CONFIRM_EVERY)
			confirm(s);
		if (r == 0 || s->stopping)
			continue;
		filter_close_port(s->port);
		s->port = NULL;
		if (!s->o->reconnect) {
			fprintf(stderr,
				"minispy: lost the connection to %s (%s); exiting "
				"(--no-reconnect)\n",
				s->path,
				r == -ENOTCONN
					? "fltmgrd stopped or the filter was unloaded"
					: strerror(-r));
			stop(s, SPY_EXIT_FAIL);
			break;
		}
		reconnect(s);
	}
}

int
spy_run(const struct spy_options *o)
{
	struct session *s = calloc(1, sizeof(*s));
	int r, code;

	if (!s) {
		fprintf(stderr, "minispy: out of memory\n");
		return SPY_EXIT_FAIL;
	}
	s->o = o;
	if (spy_port_path(o, s->path, sizeof(s->path)) < 0) {
		fprintf(stderr, "minispy: the port path is too long\n");
		free(s);
		return SPY_EXIT_USAGE;
	}
	s->sfd = signals_open();
	if (s->sfd < 0) {
		fprintf(stderr, "minispy: signalfd: %s\n", strerror(-s->sfd));
		free(s);
		return SPY_EXIT_FAIL;
	}
	r = spy_output_open(o->output, &s->out);
	if (r < 0) {
		fprintf(stderr, "minispy: cannot open %s: %s\n", o->output, strerror(-r));
		close(s->sfd);
		free(s);
		return SPY_EXIT_FAIL;
	}
	r = connect_port(s);
	if (r < 0) {
		fprintf(stderr, "minispy: cannot connect to port %s: %s\n", s->path,
			connect_cause(r, &code));
	} else {
		say(s, "connected to %s", s->path);
		run_loop(s);
		code = s->exit_code;
		if (s->bad)
			fprintf(stderr, "minispy: %llu messages could not be read\n",
				(unsigned long long)s->bad);
	}
	filter_close_port(s->port);
	spy_output_close(s->out);
	close(s->sfd);
	jw_free(&s->json);
	free(s);
	return code;
}
