/* SPDX-License-Identifier: MIT */
/*
 * output.c — the output stream: stdout, or --output FILE opened for
 * appending. Lines are fully buffered and session.c flushes whenever the
 * port has nothing more to read, so a burst costs few writes while a
 * reader (`tail -f`, a pipe, a log shipper) still sees every event as soon
 * as it has been received.
 *
 * Log rotation: on SIGHUP session.c calls spy_output_reopen(), which opens
 * the file again by name *before* closing the old stream, so a failed
 * reopen (a full disk, a missing directory) keeps writing where it did.
 * The stream (and its descriptor) is owned here and nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spy.h"

#define OUTPUT_MODE   0640 /* file activity is sensitive: not world-readable */
#define OUTPUT_BUFFER 65536

struct spy_output {
	char *path; /* NULL: stdout */
	FILE *f;
};

static int
open_append(const char *path, FILE **ret)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
		      OUTPUT_MODE);
	FILE *f;

	if (fd < 0)
		return -errno;
	f = fdopen(fd, "a");
	if (!f) {
		int r = -errno;

		close(fd);
		return r;
	}
	setvbuf(f, NULL, _IOFBF, OUTPUT_BUFFER);
	*ret = f;
	return 0;
}

int
spy_output_open(const char *path, struct spy_output **ret)
{
	struct spy_output *out = calloc(1, sizeof(*out));
	int r;

	if (!out)
		return -ENOMEM;
	if (!path) {
		out->f = stdout;
		setvbuf(stdout, NULL, _IOFBF, OUTPUT_BUFFER);
		*ret = out;
		return 0;
	}
	out->path = strdup(path);
	if (!out->path) {
		free(out);
		return -ENOMEM;
	}
	r = open_append(path, &out->f);
	if (r < 0) {
		free(out->path);
		free(out);
		return r;
	}
	*ret = out;
	return 0;
}

FILE *
spy_output_stream(struct spy_output *out)
{
	return out->f;
}

int
spy_output_flush(struct spy_output *out)
{
	errno = 0;
	if (fflush(out->f) == 0 && !ferror(out->f))
		return 0;
	clearerr(out->f);
	return errno ? -errno : -EIO;
}

int
spy_output_reopen(struct spy_output *out)
{
	FILE *f = NULL; /* set by open_append(); gcc -O3 cannot tell */
	int r, flushed;

	if (!out->path)
		return spy_output_flush(out);
	r = open_append(out->path, &f);
	if (r < 0)
		return r;
	flushed = spy_output_flush(out);
	fclose(out->f);
	out->f = f;
	return flushed;
}

void
spy_output_close(struct spy_output *out)
{
	if (!out)
		return;
	if (out->path)
		fclose(out->f);
	else
		fflush(out->f);
	free(out->path);
	free(out);
}
