/* SPDX-License-Identifier: MIT */
/*
 * <fltmgr/filter.h> — the filter-side API of fltmgr (library libfltmgr).
 *
 * This is the Linux counterpart of the FltXxx routines a Windows minifilter
 * calls: register a filter, create named communication ports that user-mode
 * services connect to, send them messages and wait for replies.
 *
 * Conventions:
 *  - Every fallible function returns 0 (or a non-negative count) on success
 *    and a negative errno value on failure. Output parameters are named
 *    ret_* and are written only on success.
 *  - A port handle (flt_port) is a small value, never a pointer: an index
 *    into the manager's handle table plus a generation. A stale or forged
 *    handle is detected and rejected (-ENOTCONN / -EINVAL); it can never
 *    reach freed memory. See docs/ports.md.
 *  - Status codes and their Windows NTSTATUS counterparts are tabulated in
 *    docs/ports.md ("Windows mapping").
 */
#ifndef FLTMGR_FILTER_H
#define FLTMGR_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flt_manager flt_manager;
typedef struct flt_filter flt_filter;

/* Index + generation, never a pointer. The all-zero value is "no port". */
typedef struct {
	uint64_t value;
} flt_port;

#define FLT_PORT_NULL ((flt_port){ 0 })
#define FLT_INFINITE  (-1)

/* Hard limits of the port protocol (also in docs/ports.md). */
#define FLT_PORT_NAME_MAX    64    /* [A-Za-z0-9._-]{1,64} */
#define FLT_PORT_MAX_MESSAGE 65536 /* payload bytes of one message */
#define FLT_PORT_MAX_CONTEXT 4096  /* bytes of connection context */

struct flt_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/*
 * Who may connect. The socket file gets `mode` (0 means 0600). If both
 * lists are empty, the file mode alone decides; otherwise the peer (as
 * reported by SO_PEERCRED / SO_PEERGROUPS at connect time) must have one of
 * the listed uids, or one of the listed gids as its primary or a
 * supplementary group. A refused peer gets -EACCES and the connect
 * callback is never called.
 */
struct flt_port_attributes {
	const char *name;
	mode_t mode;
	const uid_t *allowed_uids;
	size_t n_allowed_uids;
	const gid_t *allowed_gids;
	size_t n_allowed_gids;
};

enum flt_log_level {
	FLT_LOG_ERROR = 3,
	FLT_LOG_WARNING = 4,
	FLT_LOG_NOTICE = 5,
	FLT_LOG_INFO = 6,
	FLT_LOG_DEBUG = 7,
};

typedef void (*flt_log_func)(void *userdata, int level, const char *message);

struct flt_manager_options {
	/* NULL: $FLTMGR_RUNTIME_DIR if set, else /run/fltmgr. Created (0755)
	 * if missing. */
	const char *runtime_dir;
	/* Messages at or below this level are logged; 0 means FLT_LOG_NOTICE,
	 * overridden by $FLTMGR_LOG_LEVEL (a number 3..7). */
	int log_level;
	/* NULL: one line per record on stderr, "fltmgr[<pid>]: <level>: ...". */
	flt_log_func log_func;
	void *log_userdata;
};

/* ---- file-system filtering (the engine, on fanotify) ---- */

/*
 * Operations. OPEN, EXEC and READ can be intercepted before they happen
 * (a pre callback: the opener waits for the verdict; fanotify permission
 * events). Every operation can be observed after it happened (a post
 * callback). A filter that registers only a post callback for OPEN, EXEC
 * or READ is fed from notification events and never makes anyone wait.
 */
enum flt_operation {
	FLT_OP_OPEN = 0, /* pre: FAN_OPEN_PERM;      post-only: FAN_OPEN */
	FLT_OP_EXEC,     /* pre: FAN_OPEN_EXEC_PERM; post-only: FAN_OPEN_EXEC */
	FLT_OP_READ,     /* pre: FAN_ACCESS_PERM;    post-only: FAN_ACCESS */
	FLT_OP_WRITE,    /* FAN_MODIFY */
	FLT_OP_CLOSE_WRITE,
	FLT_OP_CLOSE, /* closed without having been written */
	FLT_OP_ATTRIB,
	FLT_OP_CREATE,
	FLT_OP_DELETE,
	FLT_OP_RENAME,   /* path = old, new_path = new */
	FLT_OP_OVERFLOW, /* post only: events were lost (the kernel queue
			      overflowed, or FLT_EVENT_LOSS_* says why);
			      path is NULL */
	FLT_OP_COUNT_,
};

const char *flt_operation_name(enum flt_operation op);

/* What a pre callback decided (the Windows FLT_PREOP_* values). */
enum flt_preop_status {
	FLT_PREOP_SUCCESS_WITH_CALLBACK = 0, /* allow; call my post callback */
	FLT_PREOP_SUCCESS_NO_CALLBACK,       /* allow; no post callback */
	FLT_PREOP_COMPLETE,                  /* final: data->status 0 allows,
						-errno denies; lower filters
						are not asked */
	FLT_PREOP_PENDING,                   /* decided later with
						flt_complete_pended_preoperation() */
};

enum flt_instance_kind {
	FLT_INSTANCE_SUBTREE = 0, /* a directory and everything below it */
	FLT_INSTANCE_MOUNT,       /* the mount at that path */
	FLT_INSTANCE_FILESYSTEM,  /* the whole filesystem holding that path */
};

#define FLT_EVENT_PERMISSION 0x1u /* a pre operation: someone waits */
#define FLT_EVENT_DIR        0x2u /* the object is a directory */
/* A notification whose path could not be resolved (the file or its
 * directory was gone when the engine read it): path is NULL, or for a
 * RENAME path, new_path or both; op, pid, dev and ino (0 if unknown) are
 * given as usual. It is delivered to the first instance on that
 * filesystem when no instance matches by path (docs/engine.md 3.8). */
#define FLT_EVENT_PATH_UNKNOWN 0x4u
/*
 * A permission event the engine could not prove to lie outside the
 * filter's SUBTREE or MOUNT instances, so it was treated as inside (fail
 * closed): its path could not be read (longer than PATH_MAX), it was
 * reached through a mount outside the daemon's mount namespace and its
 * place could not be re-resolved, or a directory on its path was renamed
 * moments ago. path may then be NULL (with FLT_EVENT_PATH_UNKNOWN). It is
 * given to the filter's first instance on that filesystem
 * (docs/engine.md section 1.4).
 */
#define FLT_EVENT_SCOPE_UNCERTAIN 0x8u
/*
 * FLT_OP_OVERFLOW: why events were lost; exactly one is set.
 *   KERNEL      the kernel's notification queue overflowed (lost: 0, the
 *               kernel does not say how many)
 *   UNRESOLVED  `lost` records whose file system no mark has any more
 *               (detached since): neither a path nor an instance to give
 *   UNDECODABLE the rest of a read could not be decoded (lost: 0)
 *   READ        a read failed; the kernel discards the event it could not
 *               copy (lost: 0)
 */
#define FLT_EVENT_LOSS_KERNEL      0x100u
#define FLT_EVENT_LOSS_UNRESOLVED  0x200u
#define FLT_EVENT_LOSS_UNDECODABLE 0x400u
#define FLT_EVENT_LOSS_READ        0x800u
#define FLT_EVENT_LOSS_MASK        0xf00u

/* The process behind an event, resolved on first request. */
struct flt_process {
	pid_t pid;
	pid_t tid; /* 0: not known */
	uid_t uid, euid;
	gid_t gid, egid;
	const char *exe; /* NULL if it could not be read */
	const char *comm;
	int verified; /* 1: checked through a pidfd to be the process
			      that caused the event (not a recycled pid) */
};

struct flt_event_priv;

struct flt_callback_data {
	enum flt_operation op;
	uint32_t flags; /* FLT_EVENT_* */
	/* Global order: one counter for all filters, so a filter's own events
	 * have gaps; lost events are reported by FLT_OP_OVERFLOW and counted.
	 * flags: FLT_EVENT_*; for FLT_OP_OVERFLOW one FLT_EVENT_LOSS_*. */
	uint64_t sequence;
	struct timespec time; /* CLOCK_REALTIME when the event was read */
	/* Absolute path, as the daemon's mount namespace names the file;
	 * RENAME: the old path. NULL with FLT_EVENT_PATH_UNKNOWN when it
	 * cannot be known (permission events too: a file deeper than
	 * PATH_MAX, a mount of another namespace; read through fd). */
	const char *path;
	const char *new_path; /* RENAME: the new path; else NULL */
	dev_t dev;
	ino_t ino;
	pid_t pid;
	/* Permission events: a read-only descriptor of the file (reading it
	 * generates no events), valid during the callback and, if pended,
	 * until completion. Otherwise -1. Do not close it. */
	int fd;
	uint64_t lost; /* FLT_OP_OVERFLOW: events lost, if known (else 0) */
	/* Pre callbacks returning FLT_PREOP_COMPLETE: 0 allow, < 0 deny. The
	 * opener sees EPERM: fanotify permission events take no other errno. */
	int status;
	/* Pre callbacks: clear to keep this allow out of the kernel verdict
	 * cache (for verdicts that depend on the process). */
	int cacheable;
	struct flt_event_priv *priv;
};

/* The process that caused the event (resolved once, then cached). */
const struct flt_process *flt_get_process(const struct flt_callback_data *data);

/*
 * The event's path (libfltmgr 0.5): data->path, resolved first if it has
 * not been yet (a permission event given to a filter registered with
 * FLT_REGISTRATION_PATH_ON_REQUEST), then kept, so later calls and later
 * filters cost nothing. The same string the engine would have filled in
 * before the callback. NULL when the path cannot be known; data->flags
 * then has FLT_EVENT_PATH_UNKNOWN, exactly as for an eager path (read the
 * file through data->fd). From the callback, or for a pended event from
 * the thread completing it, until it is completed.
 */
const char *flt_event_path(const struct flt_callback_data *data);

/*
 * The filter whose callback is running with this event (libfltmgr 0.7):
 * in a pre or post callback, and in the FLT_OP_OVERFLOW callback, which
 * has no instance context to tell one filter from another. With
 * flt_filter_cookie(), the filter's state: an OVERFLOW callback shared by
 * several loaded copies of one filter finds its own copy's. From the
 * callback, or for a pended event from the thread completing it, until it
 * is completed. NULL for a NULL data.
 */
flt_filter *flt_event_filter(const struct flt_callback_data *data);

typedef enum flt_preop_status (*flt_pre_operation)(struct flt_callback_data *data,
						   void *instance_context,
						   void **completion_context);
typedef void (*flt_post_operation)(const struct flt_callback_data *data,
				   void *instance_context, void *completion_context);

struct flt_operation_registration {
	enum flt_operation operation;
	flt_pre_operation pre; /* OPEN, EXEC, READ only */
	flt_post_operation post;
};

typedef int (*flt_instance_setup)(flt_filter *filter, const char *path,
				  enum flt_instance_kind kind,
				  void **ret_instance_context);

/* ---- volumes: a mount, as the engine sees it (fltmc volumes) ---- */

#define FLT_VOLUME_READ_ONLY 0x1u /* mounted read-only */
#define FLT_VOLUME_BIND \
	0x2u                   /* mounts a directory of its filesystem
				     other than its root (a bind mount) */
#define FLT_VOLUME_PSEUDO 0x4u /* proc, sysfs, cgroup2, devpts, ... */

struct flt_volume {
	uint64_t mount_id;       /* as /proc/self/mountinfo and statx() say */
	dev_t dev;               /* its filesystem's device */
	const char *mount_point; /* in the daemon's mount namespace */
	const char *fs_type;     /* "ext4", "tmpfs", ... */
	const char *source;      /* "/dev/sda1", "tmpfs", ... */
	const char *root;        /* the directory of its filesystem mounted
				    there: "/" for the whole filesystem */
	uint32_t flags;          /* FLT_VOLUME_* */
	/* 0: a mount of the daemon's namespace. Else the process whose mount
	 * namespace it belongs to (flt_auto_attach.ns_pid): mount_point is
	 * as that namespace names it, and the instance's path is
	 * /proc/PID/root followed by it. */
	pid_t ns_pid;
};

/* Why an instance is being set up (FLT_INSTANCE_SETUP_FLAGS on Windows). */
enum flt_setup_reason {
	FLT_SETUP_AUTOMATIC = 1,     /* a volume present when the filter's
					automatic attachment began */
	FLT_SETUP_NEWLY_MOUNTED = 2, /* a volume mounted since */
};

/*
 * Instance setup for automatic attachment (InstanceSetup for a volume):
 * called for every volume that the filter's policy (flt_set_auto_attach)
 * selects, at the start of automatic attachment and for every volume
 * mounted later, on the engine's mount thread. *kind comes in as the
 * policy's kind; the callback may change it to FLT_INSTANCE_MOUNT or
 * FLT_INSTANCE_FILESYSTEM. Return 0 to attach (setting
 * *ret_instance_context if wanted) or a negative errno to decline. The
 * instance's teardown callback runs when the volume goes. Without this
 * callback, every selected volume is attached.
 */
typedef int (*flt_volume_setup)(flt_filter *filter, const struct flt_volume *volume,
				enum flt_setup_reason reason,
				enum flt_instance_kind *kind,
				void **ret_instance_context);
typedef void (*flt_instance_teardown)(flt_filter *filter, void *instance_context);
typedef void (*flt_filter_unload)(flt_filter *filter, void *cookie);

/* One of a filter's own counters (see flt_registration.counters). */
struct flt_counter {
	const char *name; /* [a-z0-9_]{1,63}; a string that outlives the call */
	uint64_t value;
};

#define FLT_FILTER_MAX_COUNTERS 64

/* Fills at most cap entries of out with the filter's own counters and
 * returns how many it has (it may have more than cap). */
typedef size_t (*flt_filter_counters)(void *cookie, struct flt_counter *out, size_t cap);

/* Registration flags. */
#define FLT_REGISTRATION_CACHE_VERDICTS \
	0x1u /* my allows may be cached in
						the kernel (see docs) */
/*
 * My pre callbacks read the path of a permission event only through
 * flt_event_path() (libfltmgr 0.5): the engine then does not resolve it
 * before calling them, which saves a readlink() per event. In their data
 * `path` is NULL and FLT_EVENT_PATH_UNKNOWN unset until flt_event_path()
 * is called (or an instance's scope, or another filter without this flag,
 * needed the path first). Post callbacks and notifications are not
 * affected. Without this flag `path` is filled in before every callback,
 * as always.
 */
#define FLT_REGISTRATION_PATH_ON_REQUEST 0x2u
/*
 * My pre callbacks never need flt_get_process() (libfltmgr 0.5). When
 * every filter with pre callbacks registered on the manager by the time
 * the first one starts says so, the permission group is made without
 * FAN_REPORT_PIDFD: the kernel then makes no pidfd per event (a new
 * file, and a close). flt_get_process() on those events gives the pid
 * only, unverified, as on a kernel without pidfds. A group cannot gain
 * pidfds later, so a filter with pre callbacks and without this flag
 * that starts after that is refused (-EOPNOTSUPP): register every filter
 * before starting any. Notifications are not affected.
 */
#define FLT_REGISTRATION_NO_PROCESS_DETAILS 0x4u

struct flt_registration {
	const char *name;     /* [A-Za-z0-9._-]{1,64}, not "." or "..", unique */
	const char *altitude; /* decimal string, e.g. "385100" or "385100.5" */
	const struct flt_operation_registration *operations;
	size_t n_operations;
	flt_instance_setup instance_setup;       /* may be NULL */
	flt_instance_teardown instance_teardown; /* may be NULL */
	flt_filter_unload unload;                /* may be NULL */
	void *cookie; /* passed to unload; flt_filter_cookie() */
	/* How long this filter may hold a permission event (in its pre
	 * callback, or pended); 0 means 5000 ms. When it passes, the event
	 * gets default_verdict and the filters below are not asked. */
	int deadline_ms;
	int default_verdict; /* 0 allow (the default) or -EPERM deny */
	unsigned flags;      /* FLT_REGISTRATION_* */
	/* May be NULL. The filter's own counters (records made, cache hits,
	 * ...), shown by `fltmc stats` next to the engine's. Called with
	 * cookie from whatever thread calls flt_filter_get_counters(); it
	 * must take its own locks. */
	flt_filter_counters counters;
	/* May be NULL: instance setup for automatic attachment (above). */
	flt_volume_setup volume_setup;
};

/*
 * Connect callback. Runs on the connection's own thread with the filter's
 * port lock held (the lock is recursive, so the callback may call the port
 * functions of this filter). That lock is what makes the usual pattern —
 * `g_client = client_port;` here, `flt_send_message(f, &g_client, ...)`
 * elsewhere, `flt_close_client_port(f, &g_client)` on disconnect — free of
 * data races without a lock of the filter's own. Keep it short: senders of
 * this filter wait for it. Return 0 to accept (optionally setting
 * *ret_connection_cookie) or a negative errno that the client receives as
 * the result of filter_connect_communication_port().
 */
typedef int (*flt_connect_notify)(flt_port client_port, void *server_cookie,
				  const void *context, size_t context_len,
				  const struct flt_peer *peer,
				  void **ret_connection_cookie);

/*
 * Disconnect callback. Runs exactly once per accepted connection, on the
 * connection's thread, after the connection is torn down (by the service,
 * by flt_close_client_port(), or by unregistering the filter) and after
 * every sender blocked on it has been failed with -ENOTCONN. The port lock
 * is NOT held. Its documented duty, as on Windows, is to call
 * flt_close_client_port() on the variable it stored. The connection's slot
 * (see max_connections) is released only after this returns, so with
 * max_connections == 1 the next connect callback never overlaps it.
 */
typedef void (*flt_disconnect_notify)(void *connection_cookie);

/*
 * Message callback: the service called filter_send_message(). Runs on the
 * connection's thread, port lock not held. Write at most out_cap bytes to
 * out and set *ret_out_len. A negative return is passed to the service as
 * the result of its call.
 */
typedef int (*flt_message_notify)(void *connection_cookie, const void *in, size_t in_len,
				  void *out, size_t out_cap, size_t *ret_out_len);

int flt_manager_new(const struct flt_manager_options *options, flt_manager **ret_manager);
/* Unregisters every filter still registered, then frees. NULL is a no-op. */
void flt_manager_free(flt_manager *manager);
const char *flt_manager_runtime_dir(const flt_manager *manager);

/* What the running kernel's fanotify offers (docs/engine.md 1.2), as FLT_KF_*
 * bits, for a filter or tool that adapts to an older kernel. With the
 * testing override FLTMGR_KERNEL_FEATURES set, the features it turns off
 * are absent here too. The engine's own probe once filtering runs; before,
 * a fresh probe (which logs what it finds). */
enum flt_kernel_feature {
	FLT_KF_PIDFD = 1u << 0,           /* FAN_REPORT_PIDFD (5.15) */
	FLT_KF_NAMES = 1u << 1,           /* FAN_REPORT_DFID_NAME_TARGET (5.17) */
	FLT_KF_RENAME = 1u << 2,          /* FAN_RENAME (5.17) */
	FLT_KF_EVICTABLE = 1u << 3,       /* FAN_MARK_EVICTABLE (5.19) */
	FLT_KF_MARK_IGNORE = 1u << 4,     /* FAN_MARK_IGNORE (6.0) */
	FLT_KF_PRE_CONTENT = 1u << 5,     /* FAN_CLASS_PRE_CONTENT (6.14) */
	FLT_KF_UNLIMITED_QUEUE = 1u << 6, /* FAN_UNLIMITED_QUEUE */
	FLT_KF_PIDFS = 1u << 7,           /* pidfds with their own inode (6.9) */
	FLT_KF_PIDFD_GET_INFO = 1u << 8,  /* PIDFD_GET_INFO (6.13) */
};
uint32_t flt_manager_kernel_features(flt_manager *manager);

int flt_register_filter(flt_manager *manager, const struct flt_registration *registration,
			flt_filter **ret_filter);
/* Stops its file-system events (its pended events are answered with its
 * default verdict; a completion that arrives later is ignored safely),
 * waits for its callbacks in flight, tears its instances down, closes its
 * server ports and disconnects every connection (each disconnect callback
 * runs, and may still call flt_include_process() and the port functions),
 * then calls its unload callback — after every other callback of the
 * filter has returned, so unload may free what they use — and frees. Not
 * to be called from one of the filter's own callbacks. */
void flt_unregister_filter(flt_filter *filter);

/*
 * Creates a listening port at <runtime_dir>/<attr->name>. A socket file
 * left by a dead process is replaced; a live one gives -EEXIST.
 * max_connections must be >= 1; further connects get -EUSERS.
 * Errors: -EINVAL (bad name, mode, callbacks or limit), -EEXIST,
 * -ENAMETOOLONG (runtime dir + name too long for a socket path),
 * -ESHUTDOWN (the filter is unregistering), -ENFILE (handle table full),
 * -ENOMEM, or the errno of a failed open/bind/listen/rename.
 */
int flt_create_communication_port(flt_filter *filter, flt_port *ret_server_port,
				  const struct flt_port_attributes *attr,
				  void *server_cookie, flt_connect_notify on_connect,
				  flt_disconnect_notify on_disconnect,
				  flt_message_notify on_message, int max_connections);
/*
 * Stops new connections and removes the socket file. Existing connections
 * are not affected. Sets *server_port to FLT_PORT_NULL; idempotent.
 *
 * No connect callback of this port runs after it returns (libfltmgr 0.7):
 * one in progress is waited for (it holds the filter's port lock, which
 * this call takes), and a connection still in its handshake is refused
 * with -ECONNREFUSED without a callback. So the server cookie may be
 * freed as soon as this returns (connections already accepted keep
 * running their message and disconnect callbacks with their own
 * cookies). Not to be called holding a lock a connect callback takes.
 */
void flt_close_communication_port(flt_filter *filter, flt_port *server_port);

/*
 * Sends msg to the service connected on *client_port. The variable is read
 * under the filter's port lock, so it may be closed concurrently.
 *
 * reply == NULL: no reply wanted; returns once the message is queued on the
 * connection (the socket buffer), not when a service thread has taken it.
 * reply != NULL: *reply_len is the capacity in, the reply length out; waits
 * for filter_reply_message() (*reply_len must be >= 1). timeout_ms, in
 * milliseconds, covers both queueing and the reply; FLT_INFINITE (-1)
 * waits forever (bundled filters never use it); any other negative value
 * is -EINVAL, which catches Windows-style negative relative timeouts.
 *
 * Returns 0, or:
 *   -ENOTCONN   no client on that variable, a stale handle, or the client
 *               disconnected (blocked senders are woken at once)
 *   -ETIMEDOUT  the timeout passed (the service's late reply gets -ENOENT)
 *   -EMSGSIZE   msg_len > FLT_PORT_MAX_MESSAGE, or the service's buffer
 *               was too small for the message (answered by its library)
 *   -EINVAL     bad arguments, a forged handle, or a server-port handle
 *   -EBADF      options->fd is not -1 and not a descriptor
 *   -EDEADLK    called from this connection's own callback thread while
 *               the connection is still being set up
 *   < 0         a negative status the service passed to filter_reply_message
 */
int flt_send_message(flt_filter *filter, const flt_port *client_port, const void *msg,
		     size_t msg_len, void *reply, size_t *reply_len, int timeout_ms);

struct flt_send_options {
	/* A descriptor sent along with the message (SCM_RIGHTS); the service
	 * receives its own duplicate. -1 for none. Not consumed. */
	int fd;
	/* Sequence number shown to the service; 0 = the connection's own
	 * counter (1, 2, 3, ...). Engines put event sequence numbers here so
	 * services can see gaps. */
	uint64_t sequence;
};

int flt_send_message_ex(flt_filter *filter, const flt_port *client_port, const void *msg,
			size_t msg_len, void *reply, size_t *reply_len, int timeout_ms,
			const struct flt_send_options *options);

/* One message of flt_send_message_batch(). */
struct flt_batch_message {
	const void *msg;
	size_t len;        /* at most FLT_PORT_MAX_MESSAGE */
	uint64_t sequence; /* as in flt_send_options; 0: the connection's own */
};

/*
 * Queues messages that want no reply, as many of the leading msgs[0..n)
 * as travel in one frame, and returns how many that was (1..n); none on
 * an error, which is one of flt_send_message()'s without a reply
 * (-ETIMEDOUT when the service's queue stayed full, -ENOTCONN, -EINVAL,
 * -EMSGSIZE when msgs[0] is longer than FLT_PORT_MAX_MESSAGE). The caller
 * sends the rest with another call.
 *
 * To a service that connected with FILTER_CONNECT_BATCHES the frame holds
 * every leading message whose 16-byte entry header and bytes fit in
 * FLT_PORT_MAX_MESSAGE (at most 511 messages); to any other service, and
 * for a message too long for an entry, it holds msgs[0] alone as a plain
 * message. Each message gets its own id and sequence number, as with
 * flt_send_message(), and counts once in messages_sent. No descriptors.
 */
int flt_send_message_batch(flt_filter *filter, const flt_port *client_port,
			   const struct flt_batch_message *msgs, size_t n,
			   int timeout_ms);

/*
 * Non-blocking delivery: flt_post_message() queues a message that wants no
 * reply on the connection's post queue and returns at once; the
 * connection's own thread sends what is queued, packing it into batch
 * frames for a service that takes them (as flt_send_message_batch() does),
 * so a filter needs no thread of its own per service. Posted messages
 * leave in the order they were posted; there is no order between them and
 * flt_send_message() calls on the same connection.
 *
 * The completion, if given, runs once for every message whose post
 * returned 0, on the connection's thread and never from inside
 * flt_post_message(), in posting order: status 0 once the message is
 * queued on the connection's socket (it counts in messages_sent), or
 * -ENOTCONN when the connection ended first (the message was not sent; it
 * counts in disconnect_failures). Every completion of a connection runs
 * before its disconnect callback. connection_cookie is the connect
 * callback's cookie (NULL for a connection that was never accepted). A
 * completion may post again (to any connection) but should not block: the
 * connection's thread serves the service's calls too.
 */
typedef void (*flt_post_complete)(void *connection_cookie, void *context, int status);

/* A post queue holds at most this many messages, and at most this many
 * bytes of them (borrowed ones included); a post past either bound gets
 * -EAGAIN. */
#define FLT_POST_QUEUE_MESSAGES 4096
#define FLT_POST_QUEUE_BYTES    (4u << 20)

enum flt_post_flags {
	/* The bytes are not copied: msg stays valid and unchanged until the
	 * completion runs (which must be given). Saves a copy per message
	 * for filters that keep their records reference counted. */
	FLT_POST_BORROW = 1u << 0,
};

struct flt_post_options {
	/* Sequence number shown to the service; 0 = the connection's own
	 * counter, taken at the post (so posting order is numbering order). */
	uint64_t sequence;
	flt_post_complete complete; /* NULL: none (not with FLT_POST_BORROW) */
	void *context;              /* passed to complete */
	uint32_t flags;             /* FLT_POST_* */
	/* Coalescing: the thread may hold the message up to this many
	 * microseconds (at most 100000) for more to share its frame, unless
	 * a full frame is waiting. 0: sent as soon as the thread runs. */
	uint32_t coalesce_us;
};

/*
 * Queues msg (msg_len <= FLT_PORT_MAX_MESSAGE) for the service on
 * *client_port without blocking. options may be NULL (no completion, the
 * bytes copied, the connection's own numbering). Returns 0, or:
 *   -EAGAIN     the post queue is full (the service is not reading, or
 *               is slower than the filter): counted in posts_refused;
 *               nothing was queued and no completion will run
 *   -ENOTCONN   no client on that variable, a stale handle, or the
 *               connection is closing
 *   -EMSGSIZE   msg_len > FLT_PORT_MAX_MESSAGE
 *   -EINVAL     bad arguments (FLT_POST_BORROW without a completion,
 *               unknown flags, coalesce_us too large), a forged handle,
 *               or a server-port handle
 *   -ENOMEM     no memory for the copy or the queue
 * A post from the connect callback is queued and sent once the connection
 * is up.
 */
int flt_post_message(flt_filter *filter, const flt_port *client_port, const void *msg,
		     size_t msg_len, const struct flt_post_options *options);

/* Post-queue counters of a client port (its connection) or a server port
 * (all its connections, past and present). */
struct flt_post_stats {
	uint64_t posted;       /* posts that returned 0 */
	uint64_t refused;      /* posts that got -EAGAIN (queue full) */
	uint64_t sent;         /* completed with 0 */
	uint64_t cancelled;    /* completed with -ENOTCONN */
	uint64_t frames;       /* frames the posted messages travelled in */
	uint32_t queued;       /* messages in the queue now */
	uint32_t queued_bytes; /* their bytes */
};

/* Fills the first `size` bytes of *ret_stats (pass sizeof(*ret_stats);
 * fields added later go at the end). 0, -EINVAL or -ENOTCONN. */
int flt_port_get_post_stats(flt_filter *filter, const flt_port *port,
			    struct flt_post_stats *ret_stats, size_t size);

/* Tears the connection down (senders get -ENOTCONN, the service sees the
 * disconnect, the disconnect callback runs on the connection's thread) and
 * sets *client_port to FLT_PORT_NULL under the port lock. Idempotent; safe
 * concurrently with senders using the same variable or a copy of it. */
void flt_close_client_port(flt_filter *filter, flt_port *client_port);

/*
 * Counters. For a server port: totals over all its connections, past and
 * present, plus connection counts. For a client port: that connection.
 */
struct flt_port_stats {
	uint64_t connections_accepted; /* connect callback said yes */
	uint64_t connections_refused;  /* uid/gid, limit, callback, no or
					    bad CONNECT, setup failure */
	uint64_t messages_sent;        /* queued on the socket */
	uint64_t replies_received;     /* answered a waiting sender */
	uint64_t timeouts;             /* senders that got -ETIMEDOUT */
	uint64_t disconnect_failures;  /* sends that got -ENOTCONN from a
					    connection that was closing */
	uint64_t late_replies;         /* replies refused with -ENOENT: the
					    sender gave up, or an unknown id */
	uint64_t malformed_frames;     /* connections dropped for a bad frame
					    or for not reading acks/results
					    (server ports only) */
	uint64_t service_messages;     /* filter_send_message calls served */
	uint32_t connections_current;
	uint32_t pending_replies; /* sent, waiting for a reply now */
	uint32_t blocked_senders; /* waiting for room in the queue now */
	uint32_t queued_bytes;    /* unread by the service (SIOCOUTQ) */
};

int flt_port_get_stats(flt_filter *filter, const flt_port *port,
		       struct flt_port_stats *ret_stats);

/* Peer of a client port (as captured at connect time). */
int flt_port_get_peer(flt_filter *filter, const flt_port *client_port,
		      struct flt_peer *ret_peer);

/*
 * Starts delivering events to the filter (its instances begin to see
 * them). The first call in a manager starts the fanotify event source;
 * -EPERM without CAP_SYS_ADMIN, -EOPNOTSUPP when the kernel lacks what
 * the filter's operations need (see the engine's startup log).
 */
int flt_start_filtering(flt_filter *filter);

/* Attaches an instance at path (-EEXIST if already attached there). The
 * instance setup callback may refuse (its error is returned). */
int flt_attach(flt_filter *filter, const char *path, enum flt_instance_kind kind);

/*
 * Automatic attachment, as volumes arrive on Windows: the filter gets an
 * instance on every volume the policy selects, now and whenever one is
 * mounted, and loses it when the volume is unmounted (docs/engine.md
 * section 1.6). Applied once the filter is filtering. NULL turns it off
 * and detaches the automatic instances. Instances attached by path
 * (flt_attach) live beside automatic ones. -EINVAL for a bad policy.
 */
struct flt_auto_attach {
	/* File-system types ("ext4", "xfs", ...), or "*" for any but pseudo
	 * file systems (proc, sysfs, ...), which are taken only when named.
	 * NULL-terminated; NULL or empty: none (off). */
	const char *const *fs_types;
	/* fnmatch(3) patterns a mount point must match (NULL: any), and
	 * patterns of mount points never attached. NULL-terminated. */
	const char *const *mount_points;
	const char *const *exclude;
	/* FLT_INSTANCE_FILESYSTEM (one instance per filesystem, whichever of
	 * its mounts comes first) or FLT_INSTANCE_MOUNT (one per mount). */
	enum flt_instance_kind kind;
	/* 0: the daemon's mount namespace. Else the mount namespace of this
	 * process (a container's init, say): its volumes, reached through
	 * /proc/PID/root; when the process exits, they are gone. One policy
	 * per filter: for several namespaces, load the filter once per
	 * namespace. -ESRCH if no such process. */
	pid_t ns_pid;
};
int flt_set_auto_attach(flt_filter *filter, const struct flt_auto_attach *policy);

/* Every mount of the daemon's mount namespace, then those of the
 * namespaces policies watch (ns_pid set), as a snapshot: one malloc'ed
 * block (free() it). Returns the count (0 before the engine runs). */
int flt_manager_list_volumes(flt_manager *manager, struct flt_volume **ret_volumes,
			     size_t *ret_n);
int flt_detach(flt_filter *filter, const char *path);

/* Finishes a pended pre operation, from any thread: status and error as a
 * pre callback would return them (FLT_PREOP_PENDING is not allowed).
 * After this, data must not be used. Late completions (the deadline
 * already answered it) are counted and ignored. */
void flt_complete_pended_preoperation(struct flt_callback_data *data,
				      enum flt_preop_status status, int error);

/*
 * Events caused by the process pid never reach this filter (for a
 * connected service, flt_exclude_connection_process() does it for the
 * connection's lifetime, with nothing to undo). The exclusion follows that process, not the number: it
 * ends by itself when the process exits, so a later process given the
 * same pid is never excluded. -ESRCH if no such process. Excluding a
 * process twice is harmless; flt_include_process() ends it (-ENOENT if
 * there was none).
 */
int flt_exclude_process(flt_filter *filter, pid_t pid);
/* Ends what flt_exclude_process() began; a process that connections still
 * exclude (flt_exclude_connection_process) stays excluded until they end
 * (the call still returns 0). -ENOENT if flt_exclude_process() had not
 * excluded pid. */
int flt_include_process(flt_filter *filter, pid_t pid);

/*
 * Events caused by the process on the other end of this connection never
 * reach the filter while the connection lasts (libfltmgr 0.7): a
 * service's own file accesses, which a filter that reports or scans them
 * would otherwise see (and, for a pre callback waiting on that same
 * service, deadlock on). The process is the one that connected, followed
 * through the connection's pidfd, not its pid number: its children are
 * not excluded, and a later process given the same pid never is. When
 * the connection ends (closed by either side, its process exited, or the
 * filter unregistering) the exclusion is dropped before the disconnect
 * callback runs, with nothing for the filter to undo. A process with
 * several such connections stays excluded until the last one ends; one
 * excluded by flt_exclude_process() too stays so until
 * flt_include_process().
 *
 * Call it from the connect callback (the usual place: the peer is alive
 * and waiting) or later, with the client port that callback got. Calling
 * it again for the same connection does nothing. Returns 0, or:
 *   -ENOTCONN   no such connection, or it is closing
 *   -ESRCH      its process has exited, or has no pid in the daemon's pid
 *               namespace (connected from another namespace)
 *   -EINVAL     bad arguments, a forged handle, or another filter's port
 *   -ENOMEM
 */
int flt_exclude_connection_process(flt_filter *filter, const flt_port *client_port);

/* Forgets every cached verdict (e.g. when a filter's rules change). */
int flt_flush_verdict_cache(flt_manager *manager);

struct flt_filter_stats {
	uint64_t seen;      /* events in this filter's instances */
	uint64_t delivered; /* callbacks called */
	uint64_t allowed;
	uint64_t denied;
	uint64_t pended;
	uint64_t deadline_defaults; /* answered by the deadline */
	uint64_t late_completions;  /* verdicts that came after the deadline */
	uint64_t excluded;          /* skipped: excluded process */
	/* flt_send_message() calls from this filter's pre callbacks whose
	 * timeout (FLT_INFINITE included) outlasted the event's deadline and
	 * was cut to it */
	uint64_t timeouts_capped;
};

struct flt_engine_stats {
	uint64_t permission_events; /* read from the kernel */
	uint64_t notification_events;
	uint64_t self_events; /* caused by this process: allowed at once */
	uint64_t allowed;
	uint64_t denied;
	uint64_t deadline_defaults;
	uint64_t overflows;     /* kernel queue overflows */
	uint64_t dropped;       /* events that could not be decoded */
	uint64_t cache_inserts; /* allows cached in the kernel */
	uint64_t cache_flushes;
	uint64_t emergency_answers; /* all readers stuck: answered unseen */
	uint32_t pending;           /* permission events waiting right now */
	uint32_t readers;           /* permission reader threads */
	/* Notification records read (notification_events) end as exactly
	 * one of these four: */
	uint64_t notif_ignored;    /* no filter wanted them (own ones too) */
	uint64_t notif_resolved;   /* delivered with their paths */
	uint64_t notif_unresolved; /* delivered with FLT_EVENT_PATH_UNKNOWN */
	uint64_t notif_lost;       /* reported lost: FLT_EVENT_LOSS_UNRESOLVED */
	uint64_t read_errors;      /* failed reads, reported FLT_EVENT_LOSS_READ */
	/* flt_get_process(): details from the engine's process cache, read
	 * from /proc, cache entries dropped because the process had exec'd,
	 * entries evicted to make room (docs/engine.md section 2.3). */
	uint64_t process_cache_hits;
	uint64_t process_cache_misses;
	uint64_t process_cache_invalidations;
	uint64_t process_cache_evictions;
	/* Permission events treated as inside a SUBTREE/MOUNT instance
	 * because the engine could not prove them outside
	 * (FLT_EVENT_SCOPE_UNCERTAIN). */
	uint64_t scope_uncertain;
	/* Allows left out of the kernel verdict cache because the cache
	 * could not be kept true for that file (writable by others, a
	 * filesystem whose writes it cannot follow, a filter not asked). */
	uint64_t cache_refused;
	/* Changes of the mount table seen, and instances moved to another
	 * filesystem because their path came to name it. */
	uint64_t mount_changes;
	uint64_t instance_reattaches;
	/* Automatic attachment (flt_set_auto_attach): instances set up on a
	 * volume, removed with it, and volumes a filter declined. */
	uint64_t volumes_attached;
	uint64_t volumes_detached;
	uint64_t volumes_declined;
};

int flt_filter_get_stats(flt_filter *filter, struct flt_filter_stats *ret_stats);

/* The filter's own counters (flt_registration.counters): at most cap
 * entries into out, their number in *ret_n (0 if it registered none).
 * Names are checked: a bad one is replaced by "invalid". Not to be called
 * concurrently with flt_unregister_filter() of the same filter. */
int flt_filter_get_counters(flt_filter *filter, struct flt_counter *out, size_t cap,
			    size_t *ret_n);
int flt_manager_get_stats(flt_manager *manager, struct flt_engine_stats *ret_stats);

/* ---- introspection (what fltmc shows) ---- */

/* Where an instance stands against the machine's mounts (the engine
 * watches the mount table; docs/engine.md section 1.5). */
enum flt_instance_state {
	FLT_INSTANCE_ATTACHED = 0, /* its path names the filesystem it was
				      attached to */
	FLT_INSTANCE_REATTACHED,   /* its path came to name another
				      filesystem (unmount + mount, a mount
				      on top): attached to that one at
				      state_time */
	FLT_INSTANCE_STALE,        /* its path names nothing now; it keeps
				      the filesystem it had until the path
				      comes back */
};

struct flt_instance_info {
	const char *path; /* canonical attach point (points into the block) */
	enum flt_instance_kind kind;
	uint64_t events; /* events in this instance given to the filter */
	uint64_t denied; /* permission events it denied here */
	enum flt_instance_state state;
	struct timespec state_time; /* CLOCK_REALTIME of the last change of
				       state (the attach, at first) */
	uint32_t reattaches;        /* times it moved to another filesystem */
	uint64_t mount_id;          /* the mount at its path (0: unknown) */
	dev_t dev;                  /* its filesystem */
	int automatic;              /* 1: attached by the auto-attach policy */
};

/* A snapshot of the filter's instances, newest first: one malloc'ed block
 * (free() it). Returns the count. */
int flt_filter_list_instances(flt_filter *filter, struct flt_instance_info **ret_info,
			      size_t *ret_n);

struct flt_port_info {
	char name[FLT_PORT_NAME_MAX + 1]; /* the server port's name */
	flt_port server;                  /* the server port */
	flt_port client;                  /* FLT_PORT_NULL for a server port */
	struct flt_peer peer;             /* client ports only */
	int max_connections;              /* server ports only */
	struct flt_port_stats stats;      /* as flt_port_get_stats() */
};

/* A snapshot of the filter's open server ports, each followed by its live
 * connections (free() *ret_info). Returns the count. */
int flt_filter_list_ports(flt_filter *filter, struct flt_port_info **ret_info,
			  size_t *ret_n);

/* Registered filters, newest first; returns how many there are
 * (at most n are stored). Valid until one of them is unregistered. */
size_t flt_manager_list_filters(flt_manager *manager, flt_filter **ret, size_t n);

/*
 * Batching of notification events for a steady trickle: after a read of
 * notification events that did not fill the reader's buffer, the reader
 * waits up to hold_us microseconds before it reads again, so that the
 * events meanwhile are read, resolved and delivered together (fewer
 * reads, process lookups and wake-ups per event), each at most hold_us
 * later than it would have been. Under load reads are full and nothing
 * waits. Permission events are never held. 0, the library's default,
 * reads at once; at most 100000 (100 ms). Takes effect at the next read.
 * Returns 0 or -EINVAL.
 */
int flt_manager_set_notification_hold(flt_manager *manager, unsigned hold_us);

/*
 * Whether the engine is making progress: 0, or -ETIMEDOUT when an
 * unanswered permission event is more than grace_ms past its deadline (the
 * watchdog that answers them is stuck) or every reader has been inside
 * one callback for longer than that. A manager that never started
 * filtering is healthy. Meant for service watchdogs (sd_notify WATCHDOG=1).
 */
int flt_manager_check_progress(flt_manager *manager, int grace_ms);

/*
 * Re-resolves every instance's path against the mount table now (the
 * engine also does it on every change of the mount table and once a
 * second): an instance whose path names another filesystem moves to it,
 * one whose path is gone becomes stale (docs/engine.md section 1.5).
 * 0, or -EINVAL. A manager that never started filtering has nothing to
 * do.
 */
int flt_manager_recheck_instances(flt_manager *manager);

/* ---- filters as shared objects (the DriverEntry counterpart) ---- */

/*
 * A filter shipped as a shared object exports one function with this name
 * and type. fltmgrd calls it after loading the object, with the filter's
 * name and altitude and its param.* settings from the configuration; the
 * entry registers the filter (using config->name and config->altitude),
 * creates its ports, and returns the registered filter. fltmgrd then
 * attaches the configured instances and starts filtering. A negative
 * return refuses the load; the daemon logs it with the config line.
 */
#define FLT_FILTER_ENTRY_SYMBOL "fltmgr_filter_entry"

struct flt_filter_config {
	const char *name;
	const char *altitude;
	int deadline_ms;     /* from the configuration; 0: default */
	int default_verdict; /* 0 or -EPERM */
	size_t n_params;
	const char *const *param_keys; /* "queue_size", ... (no "param.") */
	const char *const *param_values;
};

typedef int (*flt_filter_entry_fn)(flt_manager *manager,
				   const struct flt_filter_config *config,
				   flt_filter **ret_filter);

/* The value of a parameter, or NULL. */
const char *flt_config_param(const struct flt_filter_config *config, const char *key);

/* Logs one line through the manager's log function (fltmgrd: stderr, the
 * journal or syslog, at the daemon's level), so a filter's messages go
 * where the daemon's go. */
void flt_manager_log(flt_manager *manager, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* As flt_manager_log(), the line led by "filter NAME: " (libfltmgr 0.7),
 * as the library's own lines about the filter are. */
void flt_filter_log(flt_filter *filter, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A rate limit for a filter's log lines (libfltmgr 0.7), the one the
 * library's own lines use: for a condition that can recur thousands of
 * times a second, at most one line per interval, telling how many it
 * stands for. Zero-initialise it (static, or in a calloc'ed state) and
 * leave its fields alone. flt_log_ratelimit() returns 1 if a line may be
 * written now (the first call always may), with *ret_held (may be NULL)
 * the number of calls refused since the last line, else 0 (counted).
 * interval_ms <= 0 means one second. Lock-free, from any thread.
 */
struct flt_log_limit {
	int64_t next_ns; /* flt_monotonic_ns() from which a line may go */
	uint64_t held;   /* refused since the last line */
};
int flt_log_ratelimit(struct flt_log_limit *limit, int interval_ms, uint64_t *ret_held);

/* CLOCK_MONOTONIC in nanoseconds (libfltmgr 0.7): the clock of the
 * engine's deadlines and of struct flt_log_limit, for a filter's own
 * deadlines and timings. */
int64_t flt_monotonic_ns(void);

const char *flt_filter_name(const flt_filter *filter);
const char *flt_filter_altitude(const flt_filter *filter);

/*
 * The registration's cookie (flt_registration.cookie; libfltmgr 0.7): a
 * filter's state, reached from every callback without a registry of its
 * own (one shared object may be loaded as several filters, so a global
 * of the object, as a Windows driver keeps its filter data, is not
 * enough). Instance setup, volume setup,
 * teardown and unload are given the filter; an event callback gets it
 * from flt_event_filter(); a port callback gets the server cookie it
 * passed to flt_create_communication_port(). NULL for a NULL filter. The
 * cookie is the filter's until its unload callback has returned.
 */
void *flt_filter_cookie(const flt_filter *filter);

/* ---- decisions the operator should see ----
 *
 * Every permission event denied by a filter's verdict, and every answer
 * given without one (a deadline's default, the engine's emergency answer,
 * a filter's own fail-open such as a scan timeout), is logged as a
 * decision: one record with these fields, written after the kernel has
 * its answer, at most one a second per filter and kind with the number
 * held back. Allowed events by a filter's verdict are never logged.
 */
struct flt_decision {
	const char *filter;       /* the filter, or NULL: the engine (no filter asked) */
	enum flt_operation op;    /* OPEN, EXEC or READ */
	const char *path;         /* NULL: unknown */
	pid_t pid;                /* the process that made the access */
	const char *exe;          /* NULL: unknown */
	int verdict;              /* 0 allowed, < 0 denied (-errno) */
	const char *reason;       /* a short stable token: "verdict", "deadline", ... */
	const char *detail;       /* NULL, or a sentence for people */
	unsigned long suppressed; /* like records not logged since the last one */
};

/* Receives each decision with the line flt_manager_log would write for it
 * (fltmgrd: the journal with one field per member, or stderr). Without
 * one, the line goes to the manager's log function. */
typedef void (*flt_decision_func)(void *userdata, int level,
				  const struct flt_decision *decision,
				  const char *message);
void flt_manager_set_decision_log(flt_manager *manager, flt_decision_func func,
				  void *userdata);

/* For a filter that decides without a verdict of its own (a scanner's
 * fail-open default): logs d as the engine logs its decisions. The caller
 * rate-limits and counts d->suppressed. */
void flt_log_decision(flt_manager *manager, int level, const struct flt_decision *d);

#ifdef __cplusplus
}
#endif

#endif /* FLTMGR_FILTER_H */
