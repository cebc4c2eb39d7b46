/* SPDX-License-Identifier: MIT */
/*
 * test_failclosed_changes.c — a file changed after it was scanned clean
 * and cached, by every way of writing a file without a plain write()
 * (mmap, truncate, fallocate, copy_file_range, splice, sendfile,
 * io_uring, aio...), or while it is being scanned; and a scan that must
 * not move the file's atime (docs/security.md section 11: rows 3 and 10).
 *
 * An unprivileged user (uid/gid 65534, in a forked child) must not get a
 * marked file past a filter whose verdict is deny; root only. The test
 * filter, the attacker's children and each test's setup:
 * failclosed_fixture.h.
 */
#include "failclosed_fixture.h"

/* ---- file contents ---- */

static int
file_has_marker(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = tu_fd_contains(fd, MARKER, SCAN_MAX);
	close(fd);
	return r;
}

/* ---- children (failclosed_fixture.h) ---- */

/* Opens and closes without reading: only the filter reads the file. */
static int
kid_open_only(void *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return R_ERRNO(errno);
	close(fd);
	return 0;
}

/* ---- an ext4 image ---- */

static bool
ext4_mount(const char *dir)
{
	return image_mount("ext4", "-q -F", "64M", dir);
}

/* ==== 4. a cached clean file changed afterwards ==== */

enum change {
	CH_WRITE,
	CH_PWRITE,
	CH_WRITEV,
	CH_MMAP_KEEP,
	CH_MMAP_UNMAP,
	CH_TRUNCATE_WRITE,
	CH_FTRUNCATE,
	CH_OTRUNC_WRITE,
	CH_PUNCH_HOLE,
	CH_ZERO_RANGE,
	CH_COLLAPSE,
	CH_INSERT,
	CH_COPY_FILE_RANGE,
	CH_SPLICE,
	CH_SENDFILE,
	CH_IO_URING,
	CH_AIO,
};

static const struct change_spec {
	const char *what;
	bool ext4;           /* needs an ext4 image (tmpfs lacks the mode) */
	bool marker;         /* MARKER appears: expect denial; else: asked again */
	enum content before; /* the clean content */
} specs[] = {
	[CH_WRITE] = { "write()", false, true, C_PROG },
	[CH_PWRITE] = { "pwrite()", false, true, C_PROG },
	[CH_WRITEV] = { "writev()", false, true, C_PROG },
	[CH_MMAP_KEEP] = { "a MAP_SHARED store, mapping held", false, true, C_PROG },
	[CH_MMAP_UNMAP] = { "a MAP_SHARED store, then munmap and close", false, true,
			    C_PROG },
	[CH_TRUNCATE_WRITE] = { "truncate() then write()", false, true, C_PROG },
	[CH_FTRUNCATE] = { "ftruncate()", false, false, C_PROG },
	[CH_OTRUNC_WRITE] = { "an O_TRUNC open then write()", false, true, C_PROG },
	[CH_PUNCH_HOLE] = { "fallocate(PUNCH_HOLE)", false, false, C_PROG },
	[CH_ZERO_RANGE] = { "fallocate(ZERO_RANGE) on ext4", true, false, C_PROG },
	[CH_COLLAPSE] = { "fallocate(COLLAPSE_RANGE) on ext4", true, true, C_PROG_SPLIT },
	[CH_INSERT] = { "fallocate(INSERT_RANGE) on ext4", true, false, C_PROG },
	[CH_COPY_FILE_RANGE] = { "copy_file_range()", false, true, C_PROG },
	[CH_SPLICE] = { "splice() from a pipe", false, true, C_PROG },
	[CH_SENDFILE] = { "sendfile()", false, true, C_PROG },
	[CH_IO_URING] = { "an io_uring IORING_OP_WRITE", false, true, C_PROG },
	[CH_AIO] = { "an AIO IOCB_CMD_PWRITE (io_submit)", false, true, C_PROG },
};

struct change_job {
	enum change ch;
	char path[PATH_MAX];
	char src[PATH_MAX]; /* holds exactly MARKER */
	off_t spare;        /* prog_spare() */
};

/* One write through a raw io_uring (no liburing). */
static int
uring_write(int fd, const void *buf, size_t len, off_t off)
{
	struct io_uring_params p;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	size_t sq_sz, cq_sz;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	unsigned tail, idx, head;
	char *sq, *cq;
	int ring, res, r;

	memset(&p, 0, sizeof(p));
	ring = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return errno == ENOSYS || errno == EPERM || errno == EOPNOTSUPP
			       ? KID_UNSUPPORTED
			       : R_ERRNO(errno);
	sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_sz = cq_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
	sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		  IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return R_ERRNO(errno);
	cq = (p.features & IORING_FEAT_SINGLE_MMAP)
		     ? sq
		     : mmap(NULL, cq_sz, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (cq == MAP_FAILED || sqes == MAP_FAILED)
		return R_ERRNO(errno);
	sq_tail = (unsigned *)(sq + p.sq_off.tail);
	sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	sq_array = (unsigned *)(sq + p.sq_off.array);
	tail = *sq_tail;
	idx = tail & *sq_mask;
	memset(&sqes[idx], 0, sizeof(sqes[idx]));
	sqes[idx].opcode = IORING_OP_WRITE;
	sqes[idx].fd = fd;
	sqes[idx].addr = (uint64_t)(uintptr_t)buf;
	sqes[idx].len = (uint32_t)len;
	sqes[idx].off = (uint64_t)off;
	sq_array[idx] = idx;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return R_ERRNO(errno);
	cq_head = (unsigned *)(cq + p.cq_off.head);
	cq_tail = (unsigned *)(cq + p.cq_off.tail);
	cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	head = *cq_head;
	if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE))
		return R_ERRNO(EIO);
	res = cqes[head & *cq_mask].res;
	__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
	close(ring);
	if (res == -EINVAL || res == -EOPNOTSUPP)
		return KID_UNSUPPORTED;
	r = res == (int)len ? 0 : res < 0 ? R_ERRNO(-res) : R_ERRNO(EIO);
	return r;
}

/* One write through Linux AIO (io_setup/io_submit, no libaio). */
static int
aio_write_once(int fd, const void *buf, size_t len, off_t off)
{
	aio_context_t ctx = 0;
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	int r;

	if (syscall(SYS_io_setup, 1, &ctx) < 0)
		return errno == ENOSYS || errno == EAGAIN ? KID_UNSUPPORTED
							  : R_ERRNO(errno);
	memset(&cb, 0, sizeof(cb));
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_fildes = (uint32_t)fd;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = len;
	cb.aio_offset = off;
	if (syscall(SYS_io_submit, ctx, 1, cbs) != 1)
		r = R_ERRNO(errno);
	else if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1)
		r = R_ERRNO(errno);
	else
		r = ev.res == (int64_t)len ? 0
		    : ev.res < 0           ? R_ERRNO((int)-ev.res)
					   : R_ERRNO(EIO);
	syscall(SYS_io_destroy, ctx);
	return r;
}

static int
whole(ssize_t n, size_t want)
{
	if (n < 0)
		return R_ERRNO(errno);
	return (size_t)n == want ? 0 : R_ERRNO(EIO);
}

/* The attacker's change, as uid 65534 (it owns the file). */
static int
atk_change(void *arg)
{
	struct change_job *j = arg;
	const off_t mk = j->spare + 100;
	struct iovec iov[2] = { { MARKER, 12 }, { &MARKER[12], MARKER_LEN - 12 } };
	unsigned char *b;
	size_t n = 0;
	char *map;
	int fd = -1, src = -1, pp[2], r = 0;
	loff_t in = 0, out = mk;
	off_t sin = 0;

#define TRY(x)                              \
	do {                                \
		if ((x) < 0) {              \
			r = R_ERRNO(errno); \
			goto out;           \
		}                           \
	} while (0)

	switch (j->ch) {
	case CH_WRITE:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(lseek(fd, mk, SEEK_SET));
		r = whole(write(fd, MARKER, MARKER_LEN), MARKER_LEN);
		break;
	case CH_PWRITE:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = whole(pwrite(fd, MARKER, MARKER_LEN, mk), MARKER_LEN);
		break;
	case CH_WRITEV:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(lseek(fd, mk, SEEK_SET));
		r = whole(writev(fd, iov, 2), MARKER_LEN);
		break;
	case CH_MMAP_KEEP:
	case CH_MMAP_UNMAP:
		TRY(fd = open(j->path, O_RDWR | O_CLOEXEC));
		map = mmap(NULL, prog_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			r = R_ERRNO(errno);
			break;
		}
		memcpy(map + mk, MARKER, MARKER_LEN);
		if (j->ch == CH_MMAP_KEEP) {
			kid_rendezvous(); /* root opens while it is mapped */
		} else {
			munmap(map, prog_size());
			close(fd);
			fd = -1;
		}
		break;
	case CH_TRUNCATE_WRITE:
	case CH_OTRUNC_WRITE:
		b = prog_content(true, false, &n);
		if (!b)
			return R_ERRNO(ENOMEM);
		if (j->ch == CH_TRUNCATE_WRITE) {
			TRY(truncate(j->path, 0));
			TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		} else {
			TRY(fd = open(j->path, O_WRONLY | O_TRUNC | O_CLOEXEC));
		}
		r = whole(write(fd, b, n), n);
		content_free(b, n);
		break;
	case CH_FTRUNCATE:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(ftruncate(fd, (off_t)prog_size() - 4096));
		break;
	case CH_PUNCH_HOLE:
	case CH_ZERO_RANGE:
	case CH_COLLAPSE:
	case CH_INSERT: {
		static const int modes[] = {
			[CH_PUNCH_HOLE] = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			[CH_ZERO_RANGE] = FALLOC_FL_ZERO_RANGE,
			[CH_COLLAPSE] = FALLOC_FL_COLLAPSE_RANGE,
			[CH_INSERT] = FALLOC_FL_INSERT_RANGE,
		};
		/* COLLAPSE removes the junk block between the two halves of
		 * MARKER (C_PROG_SPLIT); the others work on the first spare
		 * block. */
		off_t where = j->ch == CH_COLLAPSE ? j->spare + 4096 : j->spare;

		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		if (fallocate(fd, modes[j->ch], where, 4096) < 0)
			r = errno == EOPNOTSUPP ? KID_UNSUPPORTED : R_ERRNO(errno);
		break;
	}
	case CH_COPY_FILE_RANGE:
		TRY(src = open(j->src, O_RDONLY | O_CLOEXEC));
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = whole(copy_file_range(src, &in, fd, &out, MARKER_LEN, 0), MARKER_LEN);
		break;
	case CH_SPLICE:
		TRY(pipe2(pp, O_CLOEXEC));
		if ((r = whole(write(pp[1], MARKER, MARKER_LEN), MARKER_LEN)) == 0) {
			fd = open(j->path, O_WRONLY | O_CLOEXEC);
			r = fd < 0 ? R_ERRNO(errno)
				   : whole(splice(pp[0], NULL, fd, &out, MARKER_LEN, 0),
					   MARKER_LEN);
		}
		close(pp[0]);
		close(pp[1]);
		break;
	case CH_SENDFILE:
		TRY(src = open(j->src, O_RDONLY | O_CLOEXEC));
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(lseek(fd, mk, SEEK_SET));
		r = whole(sendfile(fd, src, &sin, MARKER_LEN), MARKER_LEN);
		break;
	case CH_IO_URING:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = uring_write(fd, MARKER, MARKER_LEN, mk);
		break;
	case CH_AIO:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = aio_write_once(fd, MARKER, MARKER_LEN, mk);
		break;
	}
#undef TRY
out:
	if (fd >= 0)
		close(fd);
	if (src >= 0)
		close(src);
	return r;
}

static void
change_case(enum change ch)
{
	static struct change_job job; /* static: see new_ns_job() */
	const struct change_spec *s = &specs[ch];
	struct change_job *j = &job;
	char base[256];
	int o, e, n0, n1, n2, n3, r;
	bool cached;
	struct kid k;

	memset(j, 0, sizeof(*j));
	snprintf(base, sizeof(base), "%s", at("watched"));
	if (s->ext4) {
		if (!ext4_mount(at("e4"))) {
			print_message("skipped: cannot make and loop-mount an ext4 image "
				      "here (no loop device or mkfs.ext4)\n");
			skip();
		}
		snprintf(base, sizeof(base), "%s", at("e4/watched"));
		mkdir_mode(base, 0777, 0);
	}
	j->ch = ch;
	j->spare = prog_spare();
	snprintf(j->path, PATH_MAX, "%s/prog", base);
	/* The marked source lies outside the subtree in a directory only root
	 * can write, so the engine can prove the attacker's open of it is
	 * outside (in side/, a fresh file in a user-writable directory, it
	 * would rightly be treated as inside and denied). */
	mkdir_mode(at("rsrc"), 0755, 0);
	snprintf(j->src, PATH_MAX, "%s", at("rsrc/src"));
	put(j->path, s->before, NOBODY);
	assert_int_equal(write_at(AT_FDCWD, j->src, MARKER, MARKER_LEN, 0644), 0);
	assert_int_equal(chown(j->src, NOBODY, NOBODY), 0);
	marker_filter(base, FLT_INSTANCE_SUBTREE);

	/* Clean: allowed, opened and run; then again, maybe from the cache. */
	assert_int_equal(root_open(j->path), R_CLEAN);
	assert_int_equal(root_exec(j->path), R_WIN);
	n0 = asked(j->path);
	assert_true(n0 > 0);
	assert_int_equal(root_open(j->path), R_CLEAN);
	assert_int_equal(root_exec(j->path), R_WIN);
	n1 = asked(j->path);
	cached = n1 == n0;

	k = kid_start(true, atk_change, j);
	if (ch == CH_MMAP_KEEP) {
		if (!kid_wait_ready(&k, KID_WAIT_MS)) {
			r = kid_finish(&k, KID_WAIT_MS);
			fail_msg("uid %d could not map and store: %s", NOBODY,
				 code_str(r));
		}
	} else {
		r = kid_finish(&k, KID_WAIT_MS);
		if (r == KID_UNSUPPORTED) {
			print_message("skipped: %s is not supported here\n", s->what);
			skip();
		}
		if (r != 0)
			fail_msg("uid %d could not change the file by %s: %s", NOBODY,
				 s->what, code_str(r));
	}
	if (s->marker)
		assert_int_equal(file_has_marker(j->path), 1); /* the change is real */
	n2 = asked(j->path);
	o = root_open(j->path);
	e = root_exec(j->path);
	n3 = asked(j->path);
	if (ch == CH_MMAP_KEEP) {
		kid_go(&k);
		assert_int_equal(kid_finish(&k, KID_WAIT_MS), 0);
	}
	print_message("%s: clean verdict cached: %s; after the change root's open %s, "
		      "exec %s; filter asked %d time(s) after the change (%d before)\n",
		      s->what, cached ? "yes" : "no", code_str(o), code_str(e), n3 - n2,
		      n1);
	if (s->marker) {
		assert_true(denied(o));
		assert_true(e != R_WIN);
	} else {
		assert_true(n3 > n2);
	}
}

#define CHANGE_TEST(name, ch)                                                        \
	static void cached_clean_file_changed_by_##name##_is_rescanned(void **state) \
	{                                                                            \
		(void)state;                                                         \
		NEED_ROOT();                                                         \
		change_case(ch);                                                     \
	}

CHANGE_TEST(write, CH_WRITE)

CHANGE_TEST(pwrite, CH_PWRITE)

CHANGE_TEST(writev, CH_WRITEV)

CHANGE_TEST(mmap_store, CH_MMAP_KEEP)

CHANGE_TEST(mmap_store_then_unmap, CH_MMAP_UNMAP)

CHANGE_TEST(truncate_then_write, CH_TRUNCATE_WRITE)

CHANGE_TEST(ftruncate, CH_FTRUNCATE)

CHANGE_TEST(o_trunc_open_then_write, CH_OTRUNC_WRITE)

CHANGE_TEST(fallocate_punch_hole, CH_PUNCH_HOLE)

CHANGE_TEST(fallocate_zero_range, CH_ZERO_RANGE)

CHANGE_TEST(fallocate_collapse_range, CH_COLLAPSE)

CHANGE_TEST(fallocate_insert_range, CH_INSERT)

CHANGE_TEST(copy_file_range, CH_COPY_FILE_RANGE)

CHANGE_TEST(splice, CH_SPLICE)

CHANGE_TEST(sendfile, CH_SENDFILE)

CHANGE_TEST(io_uring, CH_IO_URING)

CHANGE_TEST(aio, CH_AIO)

/* A write that lands while the filter is still scanning: the clean verdict
 * it then gives must not be cached for the new content. */
struct scan_race_job {
	char path[PATH_MAX];
	off_t at;
	int go_r, done_w;
};

static int
atk_write_during_scan(void *arg)
{
	struct scan_race_job *j = arg;
	struct pollfd p = { .fd = j->go_r, .events = POLLIN };
	char c;
	int fd, r;

	if (poll(&p, 1, 20000) != 1 || read(j->go_r, &c, 1) != 1)
		return R_ERRNO(ETIMEDOUT);
	fd = open(j->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return R_ERRNO(errno);
	r = whole(pwrite(fd, MARKER, MARKER_LEN, j->at), MARKER_LEN);
	close(fd);
	if (write(j->done_w, "d", 1) != 1 && r == 0)
		r = R_ERRNO(errno);
	return r;
}

static void
write_during_scan_is_not_cached_as_clean(void **state)
{
	struct scan_race_job j = { .at = prog_spare() + 100 };
	int *go = hook_pipes, *done = hook_pipes + 2, o1, o2, e2, n1, n2, r;
	struct stat st;
	struct kid k;

	(void)state;
	NEED_ROOT();
	snprintf(j.path, sizeof(j.path), "%s", at("watched/prog"));
	put(j.path, C_PROG, NOBODY);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(done, O_CLOEXEC), 0);
	j.go_r = go[0];
	j.done_w = done[1];
	atomic_store(&hook_go_w, go[1]);
	atomic_store(&hook_done_r, done[0]);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	k = kid_start(true, atk_write_during_scan, &j);
	assert_int_equal(stat(j.path, &st), 0);
	atomic_store(&hook_ino, (unsigned long)st.st_ino);

	o1 = root_open(j.path); /* scanned clean; the write lands meanwhile */
	r = kid_finish(&k, KID_WAIT_MS);
	assert_int_equal(r, 0);
	assert_int_equal(atomic_load(&hook_fired), 1);
	assert_int_equal(file_has_marker(j.path), 1);
	n1 = asked(j.path);
	o2 = root_open(j.path);
	e2 = root_exec(j.path);
	n2 = asked(j.path);
	print_message(
		"open during the write: %s; the next open %s, exec %s; filter asked "
		"%d time(s) after the write\n",
		code_str(o1), code_str(o2), code_str(e2), n2 - n1);
	assert_true(denied(o2));
	assert_true(e2 != R_WIN);
}

/* ==== the filter's read leaves atime alone ==== */

/*
 * The filter reads the file through the event's descriptor; that read
 * must not move the file's atime, or the file's owner learns when a scan
 * is under way, the moment to rewrite the file (the exec rewrite race).
 */
static void
scan_through_the_event_descriptor_leaves_atime(void **state)
{
	const char *path = at("watched/doc");
	struct timespec ts[2] = { { .tv_sec = 1577836800 }, { .tv_nsec = UTIME_OMIT } };
	struct stat before, after;
	int r;

	(void)state;
	NEED_ROOT();
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	put(path, C_TEXT, NOBODY);
	/* An atime older than the mtime: relatime would update it on a read. */
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_int_equal(stat(path, &before), 0);
	r = run_kid(false, kid_open_only, (void *)path);
	assert_int_equal(stat(path, &after), 0);
	print_message("open: %s; filter asked %d time(s); atime %lld -> %lld\n",
		      r == 0 ? "opened" : code_str(r), asked(path),
		      (long long)before.st_atime, (long long)after.st_atime);
	assert_int_equal(r, 0);
	assert_true(asked(path) > 0);
	assert_int_equal(after.st_atim.tv_sec, before.st_atim.tv_sec);
	assert_int_equal(after.st_atim.tv_nsec, before.st_atim.tv_nsec);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(scan_through_the_event_descriptor_leaves_atime),
		T(cached_clean_file_changed_by_write_is_rescanned),
		T(cached_clean_file_changed_by_pwrite_is_rescanned),
		T(cached_clean_file_changed_by_writev_is_rescanned),
		T(cached_clean_file_changed_by_mmap_store_is_rescanned),
		T(cached_clean_file_changed_by_mmap_store_then_unmap_is_rescanned),
		T(cached_clean_file_changed_by_truncate_then_write_is_rescanned),
		T(cached_clean_file_changed_by_ftruncate_is_rescanned),
		T(cached_clean_file_changed_by_o_trunc_open_then_write_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_punch_hole_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_zero_range_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_collapse_range_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_insert_range_is_rescanned),
		T(cached_clean_file_changed_by_copy_file_range_is_rescanned),
		T(cached_clean_file_changed_by_splice_is_rescanned),
		T(cached_clean_file_changed_by_sendfile_is_rescanned),
		T(cached_clean_file_changed_by_io_uring_is_rescanned),
		T(cached_clean_file_changed_by_aio_is_rescanned),
		T(write_during_scan_is_not_cached_as_clean),
#undef T
	};
	int r;

	if (argc == 2) /* a pattern: run only the tests it matches */
		cmocka_set_test_filter(argv[1]);
	r = failclosed_fixture_init("test_failclosed_changes");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("failclosed", tests, NULL, NULL);
}
