/* SPDX-License-Identifier: MIT */
/*
 * fsop.c — a child process for the engine tests: performs one file
 * operation, optionally as another uid, then (with --hold) waits until
 * its stdin closes, so the test can check the pid, uid and exe the events
 * carry while the process still exists. Exit status: 0, or the errno of
 * the operation.
 *
 * With --go, it first waits for one byte on stdin (so the test can act on
 * its pid before the operation happens).
 *
 * usage: fsop [--uid N] [--go] [--hold] OP ARGS...
 *   open PATH | read PATH | write PATH TEXT | create PATH | mkdir PATH
 *   unlink PATH | rmdir PATH | rename OLD NEW | chmod PATH OCTAL | exec PATH
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
run(int argc, char **argv)
{
	const char *op = argv[0];
	char buf[256];
	int fd;

	if (!strcmp(op, "open") && argc == 2) {
		fd = open(argv[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	}
	if (!strcmp(op, "read") && argc == 2) {
		fd = open(argv[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno;
		if (read(fd, buf, sizeof(buf)) < 0) {
			close(fd);
			return errno;
		}
		close(fd);
		return 0;
	}
	if (!strcmp(op, "write") && argc == 3) {
		fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return errno;
		if (write(fd, argv[2], strlen(argv[2])) < 0) {
			close(fd);
			return errno;
		}
		close(fd);
		return 0;
	}
	if (!strcmp(op, "create") && argc == 2) {
		fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	}
	if (!strcmp(op, "mkdir") && argc == 2)
		return mkdir(argv[1], 0755) < 0 ? errno : 0;
	if (!strcmp(op, "unlink") && argc == 2)
		return unlink(argv[1]) < 0 ? errno : 0;
	if (!strcmp(op, "rmdir") && argc == 2)
		return rmdir(argv[1]) < 0 ? errno : 0;
	if (!strcmp(op, "rename") && argc == 3)
		return rename(argv[1], argv[2]) < 0 ? errno : 0;
	if (!strcmp(op, "chmod") && argc == 3)
		return chmod(argv[1], (mode_t)strtol(argv[2], NULL, 8)) < 0 ? errno : 0;
	if (!strcmp(op, "exec") && argc == 2) {
		char *args[] = { argv[1], NULL };

		execv(argv[1], args);
		return errno;
	}
	fprintf(stderr, "fsop: bad operation\n");
	return 100;
}

int
main(int argc, char **argv)
{
	int hold = 0, go = 0, r, i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--hold")) {
			hold = 1;
		} else if (!strcmp(argv[i], "--go")) {
			go = 1;
		} else if (!strcmp(argv[i], "--uid") && i + 1 < argc) {
			uid_t uid = (uid_t)atoi(argv[++i]);

			if (setgid((gid_t)uid) < 0 || setuid(uid) < 0)
				return 101;
		} else {
			return 100;
		}
	}
	if (i >= argc)
		return 100;
	if (go) {
		char c;

		if (read(STDIN_FILENO, &c, 1) != 1)
			return 102;
	}
	r = run(argc - i, argv + i);
	if (hold) {
		char c;

		while (read(STDIN_FILENO, &c, 1) > 0)
			;
	}
	return r;
}
