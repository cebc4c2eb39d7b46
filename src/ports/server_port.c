/* SPDX-License-Identifier: MIT */
/*
 * server_port.c — a named listening port: its socket file, its lock file,
 * its accept thread, and who may connect.
 *
 * Liveness: the creator holds flock(LOCK_EX) on <dir>/.<name>.lock for the
 * port's lifetime, so "is this name live?" has an exact answer: a held lock
 * means -EEXIST; a free lock means any socket file there is stale and is
 * replaced. The socket is bound under a temporary name, chmod'ed, then
 * renamed into place, so it is never reachable with the wrong mode.
 *
 * The accept thread checks the peer's credentials and the connection limit
 * (both before any filter callback runs), then hands the socket to a new
 * connection object, which owns it from then on. Closing the port stops
 * only new connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/names.h"
#include "ports/internal.h"
#include "common/lockdep.h"

#define LISTEN_BACKLOG 128

static void
sp_destroy(struct obj *o)
{
	struct server_port *sp = sp_of(o);

	if (sp->listen_fd >= 0)
		close(sp->listen_fd);
	if (sp->lock_fd >= 0)
		close(sp->lock_fd);
	if (sp->close_efd >= 0)
		close(sp->close_efd);
	pthread_mutex_destroy(&sp->lock);
	free(sp->uids);
	free(sp->gids);
	free(sp->path);
	free(sp);
}

/* Is the peer on the port's uid/gid lists (or are there none)? */
static bool
peer_allowed(struct server_port *sp, int fd, const struct flt_peer *peer)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (sp->n_uids == 0 && sp->n_gids == 0)
		return true;
	for (size_t i = 0; i < sp->n_uids; i++)
		if (sp->uids[i] == peer->uid)
			return true;
	for (size_t i = 0; i < sp->n_gids; i++)
		if (sp->gids[i] == peer->gid)
			return true;
	if (sp->n_gids == 0)
		return false;
	/* Supplementary groups as they were at connect time. A peer with
	 * more than 256 groups is judged on the first 256. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0 &&
	    errno != ERANGE)
		return false;
	if (len > sizeof(groups))
		len = sizeof(groups);
	for (size_t g = 0; g < len / sizeof(gid_t); g++)
		for (size_t i = 0; i < sp->n_gids; i++)
			if (sp->gids[i] == groups[g])
				return true;
	return false;
}

static void
refuse(struct server_port *sp, int fd, int status, const struct flt_peer *peer,
       const char *why)
{
	struct wire_header h = { .type = WIRE_CONNECT_REPLY, .status = status };

	atomic_fetch_add(&sp->refused, 1);
	log_notice(sp->filter->mgr, "port %s: refused pid %d uid %u: %s", sp->name,
		   (int)peer->pid, (unsigned)peer->uid, why);
	char drain[64];

	(void)frame_send(fd, &h, NULL, NULL, 0, MSG_DONTWAIT);
	/* Closing with unread data makes the peer see ECONNRESET first;
	 * the client copes, but drain what has arrived to spare it. */
	while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT | MSG_TRUNC) > 0)
		;
	close(fd);
}

static void
accept_one(struct server_port *sp)
{
	static struct flt_log_limit accept_limit, start_limit;
	flt_filter *f = sp->filter;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct flt_peer peer;
	struct conn *c = NULL;
	int fd, r;

	fd = accept4(sp->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* The peer stays in the backlog and is taken when
			 * descriptors are free again (or its connect times
			 * out). */
			flt_log_limited(f->mgr, &accept_limit, FLT_LOG_WARNING,
					"port %s: accept: %s; retrying every 10 ms",
					sp->name, strerror(errno));
			usleep(10000); /* do not spin on a full fd table */
		}
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		close(fd);
		return;
	}
	peer = (struct flt_peer){ .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
	if (!peer_allowed(sp, fd, &peer)) {
		refuse(sp, fd, -EACCES, &peer, "not on the port's uid/gid list");
		return;
	}

	pthread_mutex_lock(&sp->lock);
	if (sp->n_slots >= sp->max_connections) {
		pthread_mutex_unlock(&sp->lock);
		refuse(sp, fd, -EUSERS, &peer, "connection limit reached");
		return;
	}
	sp->n_slots++;
	pthread_mutex_unlock(&sp->lock);

	r = conn_new(sp, fd, &peer, &c); /* owns fd from here, even on failure */
	if (r == 0) {
		r = conn_start(c);
		if (r < 0) {
			struct wire_header h = { .type = WIRE_CONNECT_REPLY,
						 .status = r };

			(void)frame_send(c->m_fd, &h, NULL, NULL, 0, MSG_DONTWAIT);
			obj_unref(&c->obj);
		}
	}
	if (r < 0) {
		pthread_mutex_lock(&sp->lock);
		sp->n_slots--;
		pthread_mutex_unlock(&sp->lock);
		atomic_fetch_add(&sp->refused, 1);
		flt_log_limited(f->mgr, &start_limit, FLT_LOG_WARNING,
				"port %s: cannot start a connection for pid %d: %s",
				sp->name, (int)peer.pid, strerror(-r));
	}
}

static void *
accept_thread(void *arg)
{
	struct server_port *sp = arg;
	char tname[16];

	snprintf(tname, sizeof(tname), "flt-acc-%.7s", sp->name);
	pthread_setname_np(pthread_self(), tname);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = sp->listen_fd, .events = POLLIN },
			{ .fd = sp->close_efd, .events = POLLIN },
		};

		mgr_reap(sp->filter->mgr);
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		if (p[0].revents)
			accept_one(sp);
	}
	return NULL;
}

/* Takes the name's lock and puts a listening socket at its path. */
static int
sp_bind(struct server_port *sp, const char *dir, mode_t mode)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char lock_path[PATH_MAX], tmp[sizeof(addr.sun_path)];
	int n, r;

	n = snprintf(tmp, sizeof(tmp), "%s/.%s.%d.tmp", dir, sp->name, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    strlen(sp->path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	snprintf(lock_path, sizeof(lock_path), "%s/.%s.lock", dir, sp->name);

	sp->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sp->lock_fd < 0)
		return -errno;
	if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EEXIST : -errno;

	/* We own the name: whatever socket file is there is stale. */
	if (unlink(sp->path) == 0)
		log_notice(sp->filter->mgr, "port %s: replaced stale socket %s", sp->name,
			   sp->path);

	sp->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sp->listen_fd < 0)
		return -errno;
	strcpy(addr.sun_path, tmp);
	(void)unlink(tmp);
	if (bind(sp->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	if (chmod(tmp, mode) < 0 || listen(sp->listen_fd, LISTEN_BACKLOG) < 0 ||
	    rename(tmp, sp->path) < 0) {
		r = -errno;
		(void)unlink(tmp);
		return r;
	}
	return 0;
}

int
flt_create_communication_port(flt_filter *filter, flt_port *ret_server_port,
			      const struct flt_port_attributes *attr, void *server_cookie,
			      flt_connect_notify on_connect,
			      flt_disconnect_notify on_disconnect,
			      flt_message_notify on_message, int max_connections)
{
	struct server_port *sp;
	const char *dir;
	flt_port handle;
	int r;

	if (!filter || !ret_server_port || !attr || !attr->name || !on_connect ||
	    !on_disconnect || max_connections < 1 ||
	    (attr->n_allowed_uids && !attr->allowed_uids) ||
	    (attr->n_allowed_gids && !attr->allowed_gids) || (attr->mode & ~07777u))
		return -EINVAL;
	if (!name_valid(attr->name))
		return -EINVAL;

	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	atomic_init(&sp->obj.refs, 1);
	sp->obj.destroy = sp_destroy;
	sp->filter = filter;
	sp->listen_fd = sp->lock_fd = sp->close_efd = -1;
	pthread_mutex_init(&sp->lock, NULL);
	strcpy(sp->name, attr->name);
	sp->cookie = server_cookie;
	sp->on_connect = on_connect;
	sp->on_disconnect = on_disconnect;
	sp->on_message = on_message;
	sp->max_connections = max_connections;
	dir = filter->mgr->runtime_dir;
	if (asprintf(&sp->path, "%s/%s", dir, attr->name) < 0) {
		sp->path = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (attr->n_allowed_uids) {
		sp->uids = calloc(attr->n_allowed_uids, sizeof(uid_t));
		if (!sp->uids) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(sp->uids, attr->allowed_uids,
		       attr->n_allowed_uids * sizeof(uid_t));
		sp->n_uids = attr->n_allowed_uids;
	}
	if (attr->n_allowed_gids) {
		sp->gids = calloc(attr->n_allowed_gids, sizeof(gid_t));
		if (!sp->gids) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(sp->gids, attr->allowed_gids,
		       attr->n_allowed_gids * sizeof(gid_t));
		sp->n_gids = attr->n_allowed_gids;
	}
	sp->close_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sp->close_efd < 0) {
		r = -errno;
		goto fail;
	}

	pthread_mutex_lock(&filter->lock);
	if (filter->closing) {
		pthread_mutex_unlock(&filter->lock);
		r = -ESHUTDOWN;
		goto fail;
	}
	pthread_mutex_unlock(&filter->lock);

	r = sp_bind(sp, dir, attr->mode ? attr->mode : 0600);
	if (r < 0)
		goto fail;
	r = ht_insert(&filter->mgr->ht, HK_SERVER, &sp->obj, &handle);
	if (r < 0)
		goto fail_unlink;
	sp->handle = handle;
	r = -pthread_create(&sp->accept_thread, NULL, accept_thread, sp);
	if (r < 0) {
		ht_remove(&filter->mgr->ht, handle, HK_SERVER);
		goto fail_unlink;
	}
	sp->thread_started = true;

	pthread_mutex_lock(&filter->lock);
	sp->next = filter->ports;
	filter->ports = sp; /* the list holds the creation reference */
	pthread_mutex_unlock(&filter->lock);
	log_info(filter->mgr, "port %s: listening at %s (max %d connections)", sp->name,
		 sp->path, max_connections);
	*ret_server_port = handle;
	return 0;

fail_unlink:
	(void)unlink(sp->path);
fail:
	if (r == -EEXIST)
		log_notice(filter->mgr, "port %s: name is in use by a live port",
			   attr->name);
	else
		log_warning(filter->mgr, "port %s: cannot create: %s", attr->name,
			    strerror(-r));
	obj_unref(&sp->obj);
	return r;
}

/* Stops accepting and removes the socket file. Idempotent. */
void
sp_close(struct server_port *sp)
{
	bool was_closed;

	/* Under the port lock, which a handshake holds from its look at
	 * sp->closed to the end of its connect callback: once this is done,
	 * a callback in progress has returned and none starts (connection.c,
	 * handshake). */
	pthread_mutex_lock(&sp->filter->port_lock);
	pthread_mutex_lock(&sp->lock);
	was_closed = sp->closed;
	sp->closed = true;
	pthread_mutex_unlock(&sp->lock);
	pthread_mutex_unlock(&sp->filter->port_lock);
	if (was_closed)
		return;
	ht_remove(&sp->filter->mgr->ht, sp->handle, HK_SERVER);
	if (sp->thread_started) {
		eventfd_signal(sp->close_efd);
		pthread_join(sp->accept_thread, NULL);
	}
	(void)unlink(sp->path);
	close(sp->listen_fd);
	sp->listen_fd = -1;
	/* Releasing the lock last: until now the name was ours. */
	close(sp->lock_fd);
	sp->lock_fd = -1;
	log_info(sp->filter->mgr, "port %s: closed", sp->name);
}

void
flt_close_communication_port(flt_filter *filter, flt_port *server_port)
{
	struct server_port *sp;
	struct obj *o;
	flt_port h;
	int err;

	if (!filter || !server_port)
		return;
	pthread_mutex_lock(&filter->port_lock);
	h = *server_port;
	*server_port = FLT_PORT_NULL;
	pthread_mutex_unlock(&filter->port_lock);
	o = ht_ref(&filter->mgr->ht, h, HK_SERVER, &err);
	if (!o)
		return;
	sp = sp_of(o);
	if (sp->filter != filter) {
		obj_unref(o);
		return;
	}
	sp_close(sp);
	pthread_mutex_lock(&filter->lock);
	for (struct server_port **pp = &filter->ports; *pp; pp = &(*pp)->next) {
		if (*pp == sp) {
			*pp = sp->next;
			obj_unref(&sp->obj); /* the list's reference */
			break;
		}
	}
	pthread_mutex_unlock(&filter->lock);
	obj_unref(o);
}

void
sp_release_slot(struct server_port *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->n_slots--;
	pthread_mutex_unlock(&sp->lock);
}

/* Totals over a server port's connections. Each connection is either on
 * sp->conns or folded into sp->done, switched under sp->lock (held by the
 * caller): the sums are exact. */
static void
sp_fill_stats_locked(struct server_port *sp, struct flt_port_stats *s)
{
	lockdep_assert_held(&sp->lock);
	counters_to_stats(&sp->done, s);
	for (struct conn *c = sp->conns; c; c = c->sp_next)
		conn_fill_stats(c, s);
	s->connections_accepted = atomic_load(&sp->accepted);
	s->connections_refused = atomic_load(&sp->refused);
	s->malformed_frames = atomic_load(&sp->malformed);
}

int
port_ref_either(flt_filter *f, const flt_port *port, struct conn **ret_c,
		struct server_port **ret_sp)
{
	struct obj *o;
	int err;

	*ret_c = NULL;
	*ret_sp = NULL;
	o = ht_ref(&f->mgr->ht, *port, HK_CONN, &err);
	if (o) {
		if (conn_of(o)->filter != f) {
			obj_unref(o);
			return -EINVAL;
		}
		*ret_c = conn_of(o);
		return 0;
	}
	o = ht_ref(&f->mgr->ht, *port, HK_SERVER, &err);
	if (!o)
		return err;
	if (sp_of(o)->filter != f) {
		obj_unref(o);
		return -EINVAL;
	}
	*ret_sp = sp_of(o);
	return 0;
}

int
flt_port_get_stats(flt_filter *filter, const flt_port *port,
		   struct flt_port_stats *ret_stats)
{
	struct flt_port_stats s = { 0 };
	struct server_port *sp;
	struct conn *c;
	int r;

	if (!filter || !port || !ret_stats)
		return -EINVAL;
	r = port_ref_either(filter, port, &c, &sp);
	if (r < 0)
		return r;
	if (c) {
		conn_fill_stats(c, &s);
		s.connections_accepted = 1;
		obj_unref(&c->obj);
	} else {
		pthread_mutex_lock(&sp->lock);
		sp_fill_stats_locked(sp, &s);
		pthread_mutex_unlock(&sp->lock);
		obj_unref(&sp->obj);
	}
	*ret_stats = s;
	return 0;
}

/* Appends one entry to a growing snapshot. */
static int
info_push(struct flt_port_info **v, size_t *n, size_t *cap, struct flt_port_info *x)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct flt_port_info *nv = realloc(*v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = *x;
	return 0;
}

int
flt_filter_list_ports(flt_filter *filter, struct flt_port_info **ret_info, size_t *ret_n)
{
	struct flt_port_info *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!filter || !ret_info || !ret_n)
		return -EINVAL;
	pthread_mutex_lock(&filter->lock);
	for (struct server_port *sp = filter->ports; sp && r == 0; sp = sp->next) {
		struct flt_port_info x = { .server = sp->handle };

		memcpy(x.name, sp->name, sizeof(x.name));
		x.max_connections = sp->max_connections;
		pthread_mutex_lock(&sp->lock);
		sp_fill_stats_locked(sp, &x.stats);
		r = info_push(&v, &n, &cap, &x);
		for (struct conn *c = sp->conns; c && r == 0; c = c->sp_next) {
			struct flt_port_info y = { .server = sp->handle };
			bool live;

			pthread_mutex_lock(&c->lock);
			live = c->accepted && c->published && c->state == CONN_CONNECTED;
			pthread_mutex_unlock(&c->lock);
			if (!live)
				continue;
			memcpy(y.name, sp->name, sizeof(y.name));
			y.client = c->handle;
			y.peer = c->peer;
			conn_fill_stats(c, &y.stats);
			y.stats.connections_accepted = 1;
			r = info_push(&v, &n, &cap, &y);
		}
		pthread_mutex_unlock(&sp->lock);
	}
	pthread_mutex_unlock(&filter->lock);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret_info = v;
	*ret_n = n;
	return (int)n;
}
