/* SPDX-License-Identifier: MIT */
/*
 * control.c — see control.h. Everything runs on the daemon's main thread
 * with non-blocking sockets: a request is one SEQPACKET packet, so a
 * readable client socket always holds a whole request, and a reply that
 * does not fit into the client's socket buffer ends that client, never
 * the daemon's loop. When accept() fails for lack of descriptors or
 * memory, the listening socket is left out of the poll set for
 * ACCEPT_PAUSE_MS: the waiting client stays queued, and the loop does not
 * spin on a socket that stays readable.
 */
#include "daemon/control.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "daemon/commands.h"
#include "daemon/dlog.h"

#define ACCEPT_PAUSE_MS 100

enum access_level {
	ACCESS_NONE = 0,
	ACCESS_READ,
	ACCESS_ALL,
};

struct client {
	int fd;
	enum access_level access; /* ACCESS_NONE: answer EACCES, then close */
	struct ucred cred;
	int64_t expires_ns;
};

/* Over the limits: gets its EBUSY reply once its request is read. */
struct refusing {
	int fd;
	struct json_object *reply;
	int64_t expires_ns;
};

struct control {
	struct daemon *d;
	int listen_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct client clients[CONTROL_MAX_CLIENTS];
	int n_clients;
	struct refusing refusing[CONTROL_MAX_REFUSING];
	int n_refusing;
	int64_t accept_paused_until_ns; /* 0: accepting */
	int64_t accept_logged_ns;       /* the last accept error logged */
	uint64_t accept_errors_logged;  /* ctr.control_accept_errors then */
	int64_t busy_logged_ns;         /* the last limit refusal logged */
	uint64_t busy_logged;           /* ctr.control_busy then */
};

static int
apply_mode_at(const char *path, gid_t gid)
{
	mode_t mode = gid == (gid_t)-1 ? 0600 : 0660;

	/* The file, not the descriptor: fchown() on a socket changes the
	 * socket inode, which the permission check on connect() never sees. */
	if (chown(path, 0, gid == (gid_t)-1 ? 0 : gid) < 0)
		return -errno;
	if (chmod(path, mode) < 0)
		return -errno;
	return 0;
}

static int
apply_mode(struct control *c, gid_t gid)
{
	return apply_mode_at(c->path, gid);
}

int
control_open(struct daemon *d, struct control **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->d = d;
	/* Bound and listening under a temporary name, then renamed into
	 * place: a client that sees <runtime_dir>/control can connect (no
	 * ECONNREFUSED between bind and listen), and the rename replaces a
	 * previous daemon's file (we hold the runtime directory's lock). */
	if ((size_t)snprintf(c->path, sizeof(c->path), "%s/control", d->runtime_dir) >=
		    sizeof(c->path) ||
	    (size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.control.%d.tmp",
			     d->runtime_dir, (int)getpid()) >= sizeof(sa.sun_path)) {
		free(c);
		return -ENAMETOOLONG;
	}
	c->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0) {
		r = -errno;
		free(c);
		return r;
	}
	/* Bind with a umask that never exposes it. */
	(void)unlink(sa.sun_path);
	{
		mode_t old = umask(0177);

		r = bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old);
	}
	if (r < 0 || listen(c->listen_fd, 16) < 0 ||
	    (r = apply_mode_at(sa.sun_path, d->control_gid)) < 0 ||
	    rename(sa.sun_path, c->path) < 0) {
		r = r < 0 ? r : -errno;
		close(c->listen_fd);
		(void)unlink(sa.sun_path);
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void
control_set_group(struct control *c, gid_t gid)
{
	int r = apply_mode(c, gid);

	if (r < 0)
		dlog(FLT_LOG_ERROR, "control socket %s: cannot change group: %s", c->path,
		     strerror(-r));
}

static void
client_drop(struct control *c, int i)
{
	close(c->clients[i].fd);
	c->clients[i] = c->clients[--c->n_clients];
}

static bool send_reply(int fd, struct json_object *o);

static void
refusing_drop(struct control *c, int i)
{
	close(c->refusing[i].fd);
	json_object_put(c->refusing[i].reply);
	c->refusing[i] = c->refusing[--c->n_refusing];
}

/* The refused client's request is here: read it, answer, close. */
static void
refusing_answer(struct control *c, int i)
{
	char buf[CTL_MAX_REQUEST + 1];

	if (recv(c->refusing[i].fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) > 0)
		(void)send_reply(c->refusing[i].fd, c->refusing[i].reply);
	refusing_drop(c, i);
}

void
control_close(struct control *c)
{
	if (!c)
		return;
	while (c->n_clients)
		client_drop(c, c->n_clients - 1);
	while (c->n_refusing)
		refusing_drop(c, c->n_refusing - 1);
	close(c->listen_fd);
	(void)unlink(c->path);
	free(c);
}

/* Sends a reply without ever blocking; false: the client must go. */
static bool
send_reply(int fd, struct json_object *o)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	ssize_t n;

	if (!s)
		return false;
	n = send(fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n == (ssize_t)len;
}

static bool
in_group(int fd, const struct ucred *cred, gid_t gid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (cred->gid == gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Pauses accepting (see the top of the file); one log line a second. */
static void
accept_failed(struct control *c, int err)
{
	int64_t now = now_ns();

	c->d->ctr.control_accept_errors++;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
		c->accept_paused_until_ns = now + (int64_t)ACCEPT_PAUSE_MS * 1000000;
	if (c->accept_logged_ns && now - c->accept_logged_ns < 1000000000LL)
		return;
	dlog(FLT_LOG_WARNING, "control: accept: %s (%llu time%s since the last report)%s",
	     strerror(err),
	     (unsigned long long)(c->d->ctr.control_accept_errors -
				  c->accept_errors_logged),
	     c->d->ctr.control_accept_errors - c->accept_errors_logged == 1 ? "" : "s",
	     c->accept_paused_until_ns > now ? "; clients wait until it clears" : "");
	c->accept_logged_ns = now;
	c->accept_errors_logged = c->d->ctr.control_accept_errors;
}

/* Why a client of uid may not have a slot now, as a reply; NULL if it
 * may (see CONTROL_ROOT_SLOTS in control.h). */
static struct json_object *
over_limit(struct control *c, uid_t uid)
{
	int mine = 0, others = 0;

	for (int i = 0; i < c->n_clients; i++) {
		mine += c->clients[i].cred.uid == uid;
		others += c->clients[i].cred.uid != 0;
	}
	if (c->n_clients >= CONTROL_MAX_CLIENTS)
		return command_error(EBUSY, "too many control clients (%d); try again",
				     CONTROL_MAX_CLIENTS);
	if (uid == 0)
		return NULL;
	if (mine >= CONTROL_MAX_PER_USER)
		return command_error(
			EBUSY,
			"uid %u already has %d control connections, the most "
			"one user may have; close one and try again",
			(unsigned)uid, CONTROL_MAX_PER_USER);
	if (others >= CONTROL_MAX_CLIENTS - CONTROL_ROOT_SLOTS)
		return command_error(EBUSY,
				     "no control slot free for uid %u: users other than "
				     "root hold %d connections, the rest are kept for "
				     "root; try again",
				     (unsigned)uid, others);
	return NULL;
}

/* Counts a refusal by the limits; one log line a second at most. */
static void
busy_refused(struct control *c, const struct client *cl)
{
	int64_t now = now_ns();

	c->d->ctr.control_refused++;
	c->d->ctr.control_busy++;
	if (c->busy_logged_ns && now - c->busy_logged_ns < 1000000000LL)
		return;
	dlog(FLT_LOG_WARNING,
	     "control: refused pid %d uid %u: over the client limits (%llu refusal%s "
	     "since the last report)",
	     (int)cl->cred.pid, (unsigned)cl->cred.uid,
	     (unsigned long long)(c->d->ctr.control_busy - c->busy_logged),
	     c->d->ctr.control_busy - c->busy_logged == 1 ? "" : "s");
	c->busy_logged_ns = now;
	c->busy_logged = c->d->ctr.control_busy;
}

static void
accept_clients(struct control *c)
{
	for (;;) {
		struct client cl = { .access = ACCESS_NONE };
		socklen_t len = sizeof(cl.cred);
		struct json_object *o = NULL;

		cl.fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (cl.fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				accept_failed(c, errno);
			return;
		}
		if (getsockopt(cl.fd, SOL_SOCKET, SO_PEERCRED, &cl.cred, &len) < 0) {
			close(cl.fd);
			continue;
		}
		if (cl.cred.uid == 0)
			cl.access = ACCESS_ALL;
		else if (c->d->control_gid != (gid_t)-1 &&
			 in_group(cl.fd, &cl.cred, c->d->control_gid))
			cl.access = ACCESS_READ;
		o = over_limit(c, cl.cred.uid);
		if (o)
			busy_refused(c, &cl);
		if (o && c->n_refusing < CONTROL_MAX_REFUSING) {
			c->refusing[c->n_refusing++] = (struct refusing){
				.fd = cl.fd,
				.reply = o,
				.expires_ns =
					now_ns() + (int64_t)CONTROL_REFUSE_MS * 1000000,
			};
			continue;
		}
		if (o) { /* too many waiting already: it may see a reset */
			(void)send_reply(cl.fd, o);
			json_object_put(o);
			close(cl.fd);
			continue;
		}
		/* Replies may be large (stats of many ports): room for one
		 * whole packet, or the send fails with EMSGSIZE. The kernel
		 * caps this at net.core.wmem_max (doubled); SO_SNDBUFFORCE
		 * would need CAP_NET_ADMIN, which fltmgrd gives up. */
		(void)setsockopt(cl.fd, SOL_SOCKET, SO_SNDBUF, &(int){ 4 << 20 },
				 sizeof(int));
		cl.expires_ns = now_ns() + (int64_t)CONTROL_IDLE_MS * 1000000;
		c->clients[c->n_clients++] = cl;
	}
}

/* Handles one packet from client i; false: drop the client. */
static bool
serve(struct control *c, int i)
{
	char buf[CTL_MAX_REQUEST + 1], why[256];
	struct client *cl = &c->clients[i];
	struct ctl_request rq;
	struct json_object *o;
	bool keep = true;
	ssize_t n;
	int r;

	n = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false; /* the client is done */
	c->d->ctr.control_requests++;
	if (cl->access == ACCESS_NONE) {
		/* Refused only now, after reading: a reply sent before the
		 * client's request would reach it as a connection reset. */
		c->d->ctr.control_refused++;
		dlog(FLT_LOG_WARNING,
		     "control: refused pid %d uid %u: not root and not in the control "
		     "group",
		     (int)cl->cred.pid, (unsigned)cl->cred.uid);
		o = command_error(EACCES,
				  "permission denied: uid %u is not root and not in the "
				  "daemon's control_group",
				  (unsigned)cl->cred.uid);
		(void)send_reply(cl->fd, o);
		json_object_put(o);
		return false;
	}
	/* With MSG_TRUNC, n is the packet's real size: an oversized one is
	 * refused by its length before its (cut) bytes are looked at. */
	r = ctl_request_parse(buf, (size_t)n, &rq, why, sizeof(why));
	if (r == -ENOMEM) {
		o = command_error(ENOMEM, "out of memory");
	} else if (r < 0) {
		c->d->ctr.control_malformed++;
		o = command_error(-r, "%s", why);
		keep = r != -EMSGSIZE;
	} else if (cl->access != ACCESS_ALL && !ctl_command_read_only(rq.command)) {
		c->d->ctr.control_refused++;
		o = command_error(EACCES,
				  "permission denied: %s needs root (control_group "
				  "members may only read)",
				  ctl_command_name(rq.command));
		ctl_request_free(&rq);
	} else {
		o = command_run(c->d, &rq);
		ctl_request_free(&rq);
	}
	if (!o || !send_reply(cl->fd, o))
		keep = false;
	json_object_put(o);
	c->clients[i].expires_ns = now_ns() + (int64_t)CONTROL_IDLE_MS * 1000000;
	return keep;
}

int
control_pollfds(struct control *c, struct pollfd *p, int max)
{
	int n = 0;

	if (max < 1)
		return 0;
	if (c->accept_paused_until_ns && c->accept_paused_until_ns <= now_ns())
		c->accept_paused_until_ns = 0;
	/* While paused, a negative fd keeps the slot (control_dispatch
	 * counts on p[0]) and poll() ignores it; control_expire() then
	 * bounds the wait by the pause. */
	p[n++] = (struct pollfd){ .fd = c->accept_paused_until_ns ? -1 : c->listen_fd,
				  .events = POLLIN };
	for (int i = 0; i < c->n_clients && n < max; i++)
		p[n++] = (struct pollfd){ .fd = c->clients[i].fd, .events = POLLIN };
	for (int i = 0; i < c->n_refusing && n < max; i++)
		p[n++] = (struct pollfd){ .fd = c->refusing[i].fd, .events = POLLIN };
	return n;
}

void
control_dispatch(struct control *c, const struct pollfd *p, int n)
{
	/* The refused ones (after the clients in p; found by descriptor). */
	for (int k = 1; k < n; k++) {
		if (!p[k].revents)
			continue;
		for (int i = 0; i < c->n_refusing; i++) {
			if (c->refusing[i].fd != p[k].fd)
				continue;
			if (p[k].revents & POLLIN)
				refusing_answer(c, i);
			else
				refusing_drop(c, i);
			break;
		}
	}
	/* Clients (their indexes match p[1..]), from the end so a drop
	 * (which moves the last client into the hole) never skips one. */
	for (int k = n - 1; k >= 1; k--) {
		int i = k - 1;

		if (i >= c->n_clients || c->clients[i].fd != p[k].fd || !p[k].revents)
			continue;
		if ((p[k].revents & POLLIN) ? !serve(c, i) : true)
			client_drop(c, i);
	}
	if (n >= 1 && (p[0].revents & POLLIN))
		accept_clients(c);
}

int
control_expire(struct control *c)
{
	int64_t now = now_ns(), next = -1;

	if (c->accept_paused_until_ns)
		next = c->accept_paused_until_ns > now ? c->accept_paused_until_ns - now
						       : 0;

	for (int i = c->n_refusing - 1; i >= 0; i--) {
		if (c->refusing[i].expires_ns <= now)
			refusing_drop(c, i); /* sent nothing: nothing to answer */
		else if (next < 0 || c->refusing[i].expires_ns - now < next)
			next = c->refusing[i].expires_ns - now;
	}
	for (int i = c->n_clients - 1; i >= 0; i--) {
		if (c->clients[i].expires_ns <= now) {
			c->d->ctr.control_timeouts++;
			dlog(FLT_LOG_INFO,
			     "control: pid %d sent nothing for %d ms; closed",
			     (int)c->clients[i].cred.pid, CONTROL_IDLE_MS);
			client_drop(c, i);
		} else if (next < 0 || c->clients[i].expires_ns - now < next) {
			next = c->clients[i].expires_ns - now;
		}
	}
	return next < 0 ? -1 : (int)(next / 1000000) + 1;
}
