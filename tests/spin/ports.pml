/* SPDX-License-Identifier: MIT */
/*
 * ports.pml — a Promela model of the filter side of a communication port:
 * flt_send_message() with and without a reply, flt_close_client_port(),
 * the connection thread (handshake, serve loop, conn_disconnect, the
 * disconnect callback), the leader/follower reading of R, REPLY_ACK, the
 * handle table with generations and slot reuse, and reference counts.
 *
 * It models the CODE in src/ports/ (send.c, connection.c, handle_table.c,
 * server_port.c), statement order and locks included. docs/ports.md,
 * section 10 ("Model"), maps every process, variable and label here to the
 * function, lock or field it stands for; changing one without the other is
 * a bug. tests/spin/run-spin.sh verifies it and its mutants.
 *
 * Scenario (the seed's): one server port, max_connections 1. The connect
 * callback stores the client port in a global (g_client) with a plain
 * store; the disconnect callback calls flt_close_client_port(&g_client).
 * NS sender threads each take a copy of g_client without any lock (the
 * seed's second variable), send once with a reply through &g_client and
 * once without a reply through their copy. A closer thread calls
 * flt_close_client_port(&g_client) once, at any moment. The service
 * connects, reads messages, replies at once, later or never, and
 * disconnects at any point; then it connects again, and the new connection
 * may reuse the first one's handle-table slot with the next generation.
 *
 * Checked: assertions (below, "ASSERT:"), and no invalid end state (every
 * thread finishes; a sender with an infinite timeout must be woken).
 *
 * Mutants (-DBUG_...) put known bugs back; run-spin.sh requires spin to
 * find a counterexample for each of them.
 */

#ifndef NS
#define NS 2            /* sender threads (2 or 3) */
#endif
#define NSA 3           /* request arrays: room for 3 senders */
#ifndef NC
#define NC 2            /* connections over the run (the service reconnects once) */
#endif
#define MAXC 1          /* max_connections, as in the seed and the samples */
#ifndef MCAP
#define MCAP 2          /* M's socket buffer, in records */
#endif
#define RCAP 2          /* R toward the filter, in records */
#define ACAP 1          /* R toward the service (REPLY_ACKs), in records */
#define NSLOT 2         /* handle-table slots */

/* enum conn_state */
#define HANDSHAKE 0
#define CONNECTED 1
#define CLOSING 2
/* enum reader_role */
#define R_NONE 0
#define R_SENDER 1
#define R_THREAD 2      /* the connection thread is reading R */
#define R_IDLE 3        /* READER_THREAD_IDLE: the thread watches R (armed) */
/* enum request_state */
#define WAITING 0
#define ANSWERED 1
#define FAILED 2
/* results (negative errnos in the code) */
#define OK 0
#define ENOTCONN 1
#define ETIMEDOUT 2
#define EAGAIN 3
#define ENOENT 4
#define ACKED 9  /* dispatch_reply: the ack already went, under the lock */
/* frames on M, filter -> service */
#define T_CREPLY 1      /* CONNECT_REPLY, status 0, with R and C */
#define T_ABORT 2       /* CONNECT_REPLY -ECONNABORTED */
#define T_MSG 3         /* MESSAGE */

/* ---- the objects ---- */

/* flt_filter.port_lock (recursive in the code; never re-entered here) */
byte port_lock;

/* the handle table (handle_table.c); its mutex is a leaf: atomic blocks */
byte ht_gen[NSLOT];
bool ht_used[NSLOT];    /* kind == HK_CONN (else HK_FREE) */
byte ht_obj[NSLOT];

/* flt_port values: (slot << 4) | gen, 0 = FLT_PORT_NULL */
byte g_client;          /* the filter's global, as in the seed */

/* struct conn, one per connection; index = connection number */
byte cn_lock[NC];        /* conn->lock: 0 free, else holder's _pid + 1 */
byte cn_refs[NC];        /* conn->obj.refs */
bool cn_freed[NC];       /* conn_destroy() ran */
byte cn_state[NC];       /* conn->state */
bool cn_published[NC];
bool cn_accepted[NC];
byte cn_handle[NC];      /* conn->handle */
byte cn_reader[NC];      /* conn->reader */
byte cn_next_id[NC];     /* conn->next_id */
byte cn_cancelled[NC];   /* conn->cancelled, as a bit set of ids */
bool cn_close_efd[NC];   /* conn->close_efd readable */
bool cn_serving[NC];     /* conn->serving: R is in the thread's epoll set */
bool cn_shut[NC];        /* shutdown(M/R/C) done by the filter side */
byte n_slots;           /* server_port->n_slots */

/* the sockets */
chan M[NC] = [MCAP] of { byte, byte, bit };    /* type, id, reply wanted */
chan R[NC] = [RCAP] of { byte };               /* REPLY: id; 0: malformed */
chan A[NC] = [ACAP] of { byte, byte };         /* REPLY_ACK: id, status */
bool svc_connect[NC];   /* the service connected and sent CONNECT */
bool svc_closed[NC];    /* the service closed its ends (or died) */

/* struct request, one per sender (it lives on the sender's stack) */
bool req_on[NSA];             /* on conn->waiting */
byte req_conn[NSA];
byte req_id[NSA];
byte req_state[NSA];
bool req_in_wait[NSA];
bool req_cv[NSA];        /* blocked in pthread_cond_wait(&req.cond) */
bool req_live[NSA];      /* the stack frame exists */
byte req_got[NSA];       /* id of the REPLY copied into its buffer */

/* ghosts: not in the code, only for the assertions */
byte users[NC];         /* threads inside a region that dereferences conn k */
byte disc[NC];          /* disconnect callbacks run for conn k */

/* ---- helpers ---- */

#define LOCK(l)   atomic { (l == 0) -> l = _pid + 1 }
#define UNLOCK(l) assert(l == _pid + 1); l = 0
/* ASSERT: no access to a freed connection */
#define USE(k)    assert(!cn_freed[k])

#ifdef BUG_NO_GEN
/* Mutant: the table checks the index but not the generation. */
#define GEN_OK(h, s) true
#else
#define GEN_OK(h, s) (((h) & 15) == ht_gen[s])
#endif

#ifdef BUG_IDLE_R_UNWATCHED
/* Mutant, the old rule: the connection thread watches R only while a late
 * reply (a cancelled id) may come. */
#define IDLE_WATCH(k) (cn_cancelled[k] != 0)
#else
#define IDLE_WATCH(k) true
#endif

#ifdef BUG_NO_REF
/* Mutant, the seed's crash: the handle is turned into a pointer without a
 * reference (FltSendMessage referencing an object through a handle that
 * was closed under it). */
#define TAKE_REF(k) skip
#define PUT_REF(k)  users[k]--
#else
#define TAKE_REF(k) cn_refs[k]++
#define PUT_REF(k)  users[k]--; obj_unref(k)
#endif

/* obj_unref(): the last reference frees.
 * ASSERT: nobody is still using the object when it is freed. */
inline obj_unref(k) {
	atomic {
		assert(cn_refs[k] > 0);
		cn_refs[k]--;
		if
		:: cn_refs[k] == 0 -> cn_freed[k] = true; assert(users[k] == 0)
		:: else
		fi
	}
}

/* ht_ref() (handle_table.c): validate under the table lock, take a
 * reference before the lock is dropped. res = OK with k, or ENOTCONN. */
inline ht_ref(h, k, res) {
	atomic {
		if
		:: h == 0 -> res = ENOTCONN
		:: else ->
			slot = h >> 4;
			if
			:: ht_used[slot] && GEN_OK(h, slot) ->
				k = ht_obj[slot];
				USE(k);
				/* ASSERT: a handle reaches only the object it was issued for */
				assert(cn_handle[k] == h);
				TAKE_REF(k);
				users[k]++;
				res = OK
			:: else -> res = ENOTCONN
			fi;
			slot = 0
		fi
	}
}

/* ht_insert(): any free slot (the code's free list is LIFO, fresh slots
 * only when it is empty: a subset of this choice). */
inline ht_insert(k) {
	atomic {
		if
		:: !ht_used[0] -> slot = 0
		:: !ht_used[1] -> slot = 1
		fi;
		ht_used[slot] = true;
		ht_obj[slot] = k;
		cn_handle[k] = (slot << 4) | ht_gen[slot];
		cn_refs[k]++;
		slot = 0
	}
}

/* ht_remove(): generation-checked; bumps the generation; the table's
 * reference is dropped after its lock. */
inline ht_remove(k) {
	atomic {
		slot = cn_handle[k] >> 4;
		if
		:: ht_used[slot] && GEN_OK(cn_handle[k], slot) ->
			assert(ht_obj[slot] == k);
			ht_used[slot] = false;
			ht_gen[slot]++;
			obj_unref(k)                     /* after the table lock, same step */
		:: else
		fi;
		slot = 0
	}
}

/* conn_disconnect() (connection.c): enter CLOSING once, under the lock fail
 * every waiting request; then close eventfd, shutdown, unpublish. */
inline conn_disconnect(k) {
	atomic {
	LOCK(cn_lock[k]);
	USE(k);
	if
	:: cn_state[k] == CLOSING ->
		UNLOCK(cn_lock[k]);
		entered = false
	:: else ->
		cn_state[k] = CLOSING;
		pub = cn_published[k];
		d_step {
			i = 0;
			do
			:: i < NS ->
				if
				:: req_on[i] && req_conn[i] == k ->
					assert(req_live[i]);
					req_state[i] = FAILED;
					req_cv[i] = false;      /* pthread_cond_signal */
					req_on[i] = false
				:: else
				fi;
				i++
			:: else -> break
			od;
			i = 0
		}
		UNLOCK(cn_lock[k]);
		entered = true
	fi
	}
	if
	:: entered ->
		atomic {
			cn_close_efd[k] = true;          /* eventfd_signal(close_efd) */
			cn_shut[k] = true                /* shutdown(M, R, C) */
		}
		if
		:: pub -> pub = false; ht_remove(k)
		:: else
		fi
	:: else
	fi
}

/* Signal the first sender on the waiting list that is in its wait loop
 * (which one is first in the list is left open: any of them). */
inline signal_one_in_wait(k) {
	if
	:: req_on[0] && req_conn[0] == k && req_in_wait[0] -> req_cv[0] = false; found = true
	:: req_on[1] && req_conn[1] == k && req_in_wait[1] -> req_cv[1] = false; found = true
#if NS > 2
	:: req_on[2] && req_conn[2] == k && req_in_wait[2] -> req_cv[2] = false; found = true
#endif
	:: else -> found = false
	fi
}

/* conn_pass_reader_role_locked() (send.c), caller holds conn->lock: to a
 * sender in its wait loop, else back to the connection thread (R armed in
 * its epoll set: modelled by cn_reader == R_IDLE) */
inline pass_reader_role(k) {
	if
	:: cn_reader[k] != R_NONE
	:: else ->
		signal_one_in_wait(k);
		if
		:: !found && cn_serving[k] && cn_state[k] != CLOSING && IDLE_WATCH(k) ->
			cn_reader[k] = R_IDLE
		:: else
		fi;
		found = false
	fi
}

/* dispatch_reply() (connection.c) */
inline dispatch_reply(k, rid) {
	atomic {
	LOCK(cn_lock[k]);
	USE(k);
	d_step {
		i = 0;
		do
		:: i < NS && !(req_on[i] && req_conn[i] == k && req_id[i] == rid) -> i++
		:: else -> break
		od
	}
	if
	:: i < NS ->
		/* ASSERT: never write into a dead stack frame */
		assert(req_live[i] && req_state[i] == WAITING);
		req_got[i] = rid;
		req_state[i] = ANSWERED;
		req_on[i] = false;                      /* conn_unlink_request_locked */
		/* the ack before the sender can run: frame_send under the lock */
		if
		:: svc_closed[k] || cn_shut[k] -> ast = ACKED     /* EPIPE, ignored */
		:: else ->
			if
			:: len(A[k]) < ACAP -> A[k]!rid,OK; ast = ACKED
			:: else -> ast = EAGAIN
			fi
		fi;
		req_cv[i] = false                       /* pthread_cond_signal */
	:: else ->
		cn_cancelled[k] = cn_cancelled[k] & ~(1 << rid);  /* take_cancelled */
		ast = ENOENT
	fi;
	i = 0;
	UNLOCK(cn_lock[k])
	}
	/* frame_send(r_fd, ack, MSG_DONTWAIT), unless sent under the lock */
	atomic {
		USE(k);
		if
		:: ast == ACKED -> ast = 0
		:: ast == EAGAIN -> skip
		:: ast != ACKED && ast != EAGAIN && (svc_closed[k] || cn_shut[k]) ->
			ast = 0                                    /* EPIPE, ignored */
		:: else ->
			if
			:: len(A[k]) < ACAP -> A[k]!rid,ast; ast = 0
			:: else -> ast = EAGAIN
			fi
		fi
	}
	if
	:: ast == EAGAIN -> ast = 0; conn_disconnect(k)   /* conn_malformed */
	:: else
	fi
}

/* conn_drain_replies() (connection.c). until: the caller is sender s. */
inline drain(until) {
	do
	:: atomic {
		USE(k);
		if
		:: len(R[k]) > 0 -> R[k]?rid; rr = 1
		:: len(R[k]) == 0 && (svc_closed[k] || cn_shut[k]) -> rr = 2   /* EOF */
		:: else -> rr = 0                                              /* EAGAIN */
		fi
	   }
		if
		:: rr == 0 -> r = OK; break
		:: rr == 2 -> rr = 0; conn_disconnect(k); entered = false; r = ENOTCONN; break
		:: rr == 1 && rid == 0 ->
			/* recv_checked(): a malformed frame (garbage, a
			 * descriptor): conn_malformed */
			rr = 0; conn_disconnect(k); entered = false; r = ENOTCONN; break
		:: rr == 1 && rid != 0 ->
			rr = 0;
			dispatch_reply(k, rid);
			rid = 0;
			if
			:: until ->
				atomic {
				LOCK(cn_lock[k]);
				USE(k);
				done = (req_state[s] != WAITING);
				UNLOCK(cn_lock[k])
				}
				if
				:: done -> done = false; r = OK; break
				:: else
				fi
			:: else
			fi
		fi
	od
}

/* flt_close_client_port() (send.c) on the variable var */
inline flt_close_client_port(var) {
	atomic {
	LOCK(port_lock);
	h2 = var;
	var = 0;
	ht_ref(h2, k2, res2);
	UNLOCK(port_lock);
	h2 = 0
	}
	if
	:: res2 == OK ->
		conn_disconnect(k2);
#ifdef BUG_CLOSE_NOTIFIES
		/* Mutant: the closer also runs the disconnect callback when it
		 * was the one that moved the connection to CLOSING. */
		if
		:: entered -> disc[k2]++
		:: else
		fi;
#endif
		entered = false;
		PUT_REF(k2);
		k2 = 0
	:: else -> res2 = 0
	fi
}

/* ---- the sender threads: flt_send_message() (send.c) ---- */

/* queue_message() -> conn_queue_frame(): frame_sendv(M, MSG_DONTWAIT),
 * poll for room. flt_send_message_batch() (send_batch.c) is a send
 * without a reply through the same steps: its ids are taken in one locked
 * step and its one record (MESSAGE or MESSAGE_BATCH) queued here, so the
 * model's T_MSG with want == 0 stands for it; a batch adds no state. */
inline queue_message(id, want) {
	do
	:: atomic {
		USE(k);
		if
		:: svc_closed[k] || cn_shut[k] -> r = ENOTCONN  /* EPIPE, ECONNRESET */
		:: else ->
			if
			:: len(M[k]) < MCAP -> M[k]!T_MSG,id,want; r = OK
			:: else -> r = EAGAIN
			fi
		fi
	   }
		if
		:: r != EAGAIN -> break
		:: else ->
			/* poll(M POLLOUT, close_efd, deadline) */
			if
			:: atomic {
				(len(M[k]) < MCAP || svc_closed[k] || cn_shut[k] || cn_close_efd[k]) ->
				if
				:: cn_close_efd[k] -> r = ENOTCONN
				:: else
				fi
			   }
			:: timed -> r = ETIMEDOUT
			fi;
			if
			:: r != EAGAIN -> break
			:: else
			fi
		fi
	od
}

/* read_as_leader(): holds the reader role */
inline read_as_leader() {
	do
	:: if
	   :: timed -> r = ETIMEDOUT; break
	   :: atomic {
			(len(R[k]) > 0 || svc_closed[k] || cn_shut[k] || cn_close_efd[k]) ->
			USE(k);
			pc = cn_close_efd[k]
	      }
		if
		:: pc -> pc = false; r = ENOTCONN; break
		:: else ->
			drain(true);
			atomic {
			LOCK(cn_lock[k]);
			USE(k);
			done = (req_state[s] != WAITING);
			UNLOCK(cn_lock[k])
			}
			if
			:: done -> done = false; r = OK; break
			:: !done && r != OK -> break
			:: else
			fi
		fi
	   fi
	od
}

/* conn_send(). Each stretch with conn->lock held is one atomic step. */
inline conn_send(want) {
	atomic {
	LOCK(cn_lock[k]);
	USE(k);
	/* ASSERT: HANDSHAKE is never seen here. A handle reaches a variable
	 * only in the connect callback, under the port lock, and the state is
	 * CONNECTED before that lock is released; lookups take the port lock.
	 * So the wait on state_cond (send.c:173) is not modelled. */
	assert(cn_state[k] != HANDSHAKE);
	if
	:: cn_state[k] == CLOSING -> UNLOCK(cn_lock[k]); res = ENOTCONN
	:: else ->
		cn_next_id[k]++;
		id = cn_next_id[k];
		if
		:: want ->
			/* registered before the message leaves */
			req_id[s] = id;
			req_conn[s] = k;
			req_state[s] = WAITING;
			req_in_wait[s] = false;
			req_live[s] = true;
			req_on[s] = true
		:: else
		fi;
		UNLOCK(cn_lock[k]);
		res = EAGAIN                    /* "go on" */
	fi
	}
	if
	:: res == EAGAIN ->
		queue_message(id, want);
		atomic {
		LOCK(cn_lock[k]);
		USE(k);
		if
		:: r != OK ->
			if
			:: want && req_state[s] == WAITING -> req_on[s] = false
			:: else
			fi;
			if
			:: (want && req_state[s] == FAILED) || cn_state[k] == CLOSING -> r = ENOTCONN
			:: else
			fi;
			if
			:: want -> pass_reader_role(k)
			:: else
			fi;
			UNLOCK(cn_lock[k]);
			res = r
		:: else ->
			if
			:: !want -> UNLOCK(cn_lock[k]); res = OK
			:: else -> req_in_wait[s] = true  /* the lock stays held */
			fi
		fi
		}
		if
		:: res == EAGAIN ->
			/* the wait loop; conn->lock is held at the top */
			do
			:: atomic {
				if
				:: req_state[s] != WAITING -> break
				:: else ->
					if
					:: cn_reader[k] == R_NONE || cn_reader[k] == R_IDLE ->
						/* from the idle thread: disarm R in its
						 * epoll set (no wake-up) */
						cn_reader[k] = R_SENDER;
						UNLOCK(cn_lock[k]);
						lead = true
					:: else ->
						/* pthread_cond_wait: unlock and sleep, atomically */
						UNLOCK(cn_lock[k]);
						req_cv[s] = true;
						lead = false
					fi
				fi
			   }
				if
				:: lead ->
					lead = false;
					read_as_leader();
					atomic {
						LOCK(cn_lock[k]);
						USE(k);
						cn_reader[k] = R_NONE
					}
					if
					:: r == ETIMEDOUT -> break
					:: else
					fi
				:: else ->
					if
					:: !req_cv[s] -> skip                       /* signalled */
					:: timed -> req_cv[s] = false; tmo = true   /* deadline */
					fi;
					atomic { LOCK(cn_lock[k]); USE(k) }
					if
					:: tmo -> tmo = false; break
					:: else
					fi
				fi
			od;
			atomic {
			if
			:: req_state[s] == ANSWERED ->
				/* ASSERT: OK only with its own reply */
				assert(req_got[s] == req_id[s]);
				res = OK
			:: req_state[s] == FAILED -> res = ENOTCONN
			:: req_state[s] == WAITING ->
#ifndef BUG_NO_UNLINK
				req_on[s] = false;
#endif
				cn_cancelled[k] = cn_cancelled[k] | (1 << id);
				res = ETIMEDOUT
			fi;
#ifndef BUG_NO_HANDOFF
			pass_reader_role(k);
#endif
			UNLOCK(cn_lock[k])
			}
		:: else
		fi;
		if
		:: want ->
			/* ASSERT: the request is off the list before its frame dies */
			assert(!req_on[s]);
			d_step {
				req_live[s] = false;
				req_in_wait[s] = false;
				req_state[s] = 0; req_id[s] = 0; req_conn[s] = 0; req_got[s] = 0
			}
		:: else
		fi
	:: else
	fi;
	id = 0; r = 0
}

/* flt_send_message_ex(): lookup_conn() then conn_send() */
inline flt_send(var, want) {
	atomic {
	LOCK(port_lock);
	h = var;
	ht_ref(h, k, res);
	UNLOCK(port_lock);
	h = 0
	}
	if
	:: res == OK ->
		conn_send(want);
		PUT_REF(k);
		k = 0
	:: else
	fi
}

proctype Sender(byte s) {
	byte copy, h, k, id, r, res, rid, rr, ast, slot, i;
	bool timed, done, tmo, pc, found, entered, pub, rm, lead;

	atomic {
		/* the seed's second variable: a copy taken without any lock */
		copy = g_client;
#ifdef TIMED_ALL
		if
		:: timed = true         /* a finite timeout: it may fire at any wait */
		:: timed = false        /* FLT_INFINITE */
		fi
#else
		/* sender 0 has a finite timeout, which may fire at any wait; the
		 * others wait forever (FLT_INFINITE), so that a lost wake-up is a
		 * deadlock, not a timeout */
		timed = (s == 0)
#endif
	}
send_reply:
#ifndef NO_REPLY_SEND
	flt_send(g_client, 1);
#endif
	/* ASSERT: one of the documented results for this path */
	assert(res == OK || res == ENOTCONN || (res == ETIMEDOUT && timed));
	res = 0;
send_copy:
#ifndef NO_COPY_SEND
	flt_send(copy, 0);
#endif
	assert(res == OK || res == ENOTCONN || (res == ETIMEDOUT && timed));
	res = 0;
	copy = 0
}

/* ---- the closer thread ---- */

proctype Closer() {
	byte h2, k2, res2, slot, i;
	bool entered, pub, rm;
	/* It acts once a client is connected (before that the close is a
	 * no-op on FLT_PORT_NULL); it may also never act. */
end_idle:
	g_client != 0;
close:
	flt_close_client_port(g_client)
}

/* ---- the connection thread: conn_thread() (connection.c) ---- */

proctype ConnThread(byte k) {
	byte h2, k2, res2, slot, i, r, rid, rr, ast, s;
	bool entered, pub, rm, done, found, take, pc, pm, pr;

handshake:
	atomic {
	svc_connect[k];                         /* poll(M), frame_recv(CONNECT) */
	ht_insert(k);                           /* nobody else can see it before */
	LOCK(cn_lock[k]);
	cn_published[k] = true;
	/* only flt_unregister_filter() (not modelled) could close it here */
	assert(cn_state[k] == HANDSHAKE);
	UNLOCK(cn_lock[k])
	}
	atomic {
	LOCK(port_lock);
	g_client = cn_handle[k];                 /* on_connect: the seed's plain store */
	LOCK(cn_lock[k]);
	cn_accepted[k] = true;
	if
	:: cn_state[k] == HANDSHAKE ->
		cn_state[k] = CONNECTED;
		M[k]!T_CREPLY,0,0                /* reply_status(0, R, C) */
	:: else ->
		M[k]!T_ABORT,0,0
	fi;
	UNLOCK(cn_lock[k]);
	UNLOCK(port_lock)
	}

serve:
	atomic {
		LOCK(cn_lock[k]);
		USE(k);
		cn_serving[k] = true;               /* epoll set made, R in it */
		UNLOCK(cn_lock[k])
	}
	do
	:: atomic {
		LOCK(cn_lock[k]);
		USE(k);
		if
		:: cn_state[k] == CLOSING -> UNLOCK(cn_lock[k]); break
		:: else
		fi;
		/* nobody reads R: the thread watches it */
		if
		:: cn_reader[k] == R_NONE && IDLE_WATCH(k) &&
		   !((req_on[0] && req_conn[0] == k && req_in_wait[0]) ||
		     (req_on[1] && req_conn[1] == k && req_in_wait[1])
#if NS > 2
		     || (req_on[2] && req_conn[2] == k && req_in_wait[2])
#endif
		    ) -> cn_reader[k] = R_IDLE
		:: else
		fi;
		UNLOCK(cn_lock[k])
		}
		/* epoll_wait(close_efd, M, C, R if armed, pidfd); C is not
		 * modelled, the pidfd is the service's death (svc_closed) */
		atomic {
			(cn_close_efd[k] || svc_closed[k] || cn_shut[k] ||
			 (cn_reader[k] == R_IDLE && len(R[k]) > 0)) ->
			USE(k);
			pc = cn_close_efd[k];
			pm = svc_closed[k] || cn_shut[k];     /* M: EPOLLIN/HUP, EOF */
			pr = cn_reader[k] == R_IDLE && (len(R[k]) > 0 || svc_closed[k] || cn_shut[k])
		}
		if
		:: pc -> pc = false; pm = false; pr = false; break
		:: else
		fi;
		if
		:: pr ->
			/* serve_replies(): only if no sender took R meanwhile */
			atomic {
			LOCK(cn_lock[k]);
			USE(k);
			take = (cn_reader[k] == R_IDLE);
			if
			:: take -> cn_reader[k] = R_THREAD
			:: else
			fi;
			UNLOCK(cn_lock[k])
			}
			if
			:: take ->
				take = false;
				drain(false); entered = false; r = 0;
				atomic {
				LOCK(cn_lock[k]);
				USE(k);
				cn_reader[k] = R_NONE;
				/* take_cancelled(c, 0): the 30 s expiry is not modelled */
				pass_reader_role(k);
				UNLOCK(cn_lock[k])
				}
			:: else
			fi;
			pr = false
		:: else
		fi;
		if
		:: pm -> pm = false; conn_disconnect(k); entered = false   /* recv() == 0 */
		:: else
		fi
	od;

	conn_disconnect(k);                     /* "connection refused": idempotent */
	entered = false;
	if
	:: cn_accepted[k] ->
on_disconnect:
		/* ASSERT: every sender blocked on it has been failed */
		assert(cn_state[k] == CLOSING && !(req_on[0] && req_conn[0] == k) &&
		       !(req_on[1] && req_conn[1] == k)
#if NS > 2
		       && !(req_on[2] && req_conn[2] == k)
#endif
		      );
		disc[k]++;
		flt_close_client_port(g_client)     /* the callback's documented duty */
	:: else
	fi;
	atomic { n_slots-- }                    /* sp_release_slot */
	atomic { users[k]--; obj_unref(k) }     /* the thread's reference */
}

/* ---- the accept thread: accept_one() (server_port.c) ---- */

proctype Acceptor() {
	byte k;
	do
	:: k < NC ->
		atomic {
			svc_connect[k] && n_slots < MAXC ->
			n_slots++;
			cn_refs[k] = 1;          /* conn_new + conn_start: the thread's */
			users[k] = 1;
			run ConnThread(k);
			k++
		}
	:: else -> break
	od
}

/* ---- the service: libfltuser, one thread ---- */

proctype Service() {
	byte k, t, id, aid, ast, pend;
	bit want;
	bool waitack;

	do
	:: k < NC ->
		svc_connect[k] = true;          /* filter_connect_communication_port */
		atomic {
			M[k]?t,id,want;
			/* ASSERT: CONNECT_REPLY comes before every MESSAGE */
			assert(t == T_CREPLY || t == T_ABORT)
		}
		if
		:: t == T_CREPLY ->
			t = 0;
			do
			:: atomic {
				M[k]?t,id,want ->          /* filter_get_message */
				assert(t == T_MSG);
				if
				:: want -> pend = pend | (1 << id)
				:: else
				fi;
				t = 0; id = 0; want = 0
			   }
			:: atomic { len(M[k]) == 0 && cn_shut[k] } -> break   /* EOF */
			:: atomic { pend != 0 ->       /* filter_reply_message, now or late */
				if
				:: pend & 2 -> id = 1
				:: pend & 4 -> id = 2
				:: pend & 8 -> id = 3
				:: pend & 16 -> id = 4
				:: pend & 32 -> id = 5
				:: pend & 64 -> id = 6
				fi;
				pend = pend & ~(1 << id);
				if
				:: cn_shut[k] -> break      /* EPIPE: -ENOTCONN */
				:: else ->
					assert(len(R[k]) < RCAP);
					R[k]!id
				fi;
				if
				:: waitack = true
				:: waitack = false         /* dies before reading its ack */
				fi
			   };
				if
				:: !waitack -> break
				:: else ->
					if
					:: atomic { A[k]?aid,ast ->
						assert(aid == id && (ast == OK || ast == ENOENT));
						id = 0; aid = 0; ast = 0; waitack = false }
					:: atomic { len(A[k]) == 0 && cn_shut[k] } -> break
					fi
				fi
#ifdef STRAY
			:: atomic { !cn_shut[k] && len(R[k]) < RCAP ->
				/* a raw client writes a malformed frame (or one
				 * with a descriptor: its own sockets) on R and
				 * keeps its ends open (or they stay in flight):
				 * only the filter side can end the connection */
				R[k]!0 };
				atomic { cn_shut[k] } -> break
#endif
			:: break                       /* filter_close_port, exit or kill */
			od
		:: else
		fi;
		atomic {
			svc_closed[k] = true;
			t = 0; id = 0; aid = 0; ast = 0; pend = 0; want = 0; waitack = false;
			k++
		}
	:: else -> break
	od
}

init {
	byte k;
	atomic {
		ht_gen[0] = 1;
		ht_gen[1] = 1;
		run Acceptor();
		run Service();
#ifndef NO_CLOSER
		run Closer();
#endif
		run Sender(0);
#if NS > 1
		run Sender(1);
#endif
#if NS > 2
		run Sender(2);
#endif
	}
	/* when nothing else can move: every other process has ended, or the
	 * closer is idle (valid), or something is stuck (an invalid end state,
	 * reported as such once this process ends) */
	timeout;
	/* A stuck thread fails the checks below (its connection is not
	 * freed, or its callback did not run) or, if they pass, remains in an
	 * invalid end state once this process ends. */
final:
	do
	:: k < NC ->
		/* ASSERT: exactly one disconnect callback per accepted connection */
		assert(cn_accepted[k] -> disc[k] == 1 : disc[k] == 0);
		/* ASSERT: every connection was freed, nobody still uses it */
		assert(cn_freed[k] && cn_refs[k] == 0 && users[k] == 0);
		k++
	:: else -> break
	od;
	assert(!ht_used[0] && !ht_used[1] && n_slots == 0 && g_client == 0)
}
