/* SPDX-License-Identifier: MIT */
/*
 * ctl_table.c — aligned text tables (see ctl_table.h). A table owns copies
 * of its cells; widths grow as rows are added, so printing needs no second
 * pass. Columns are separated by two spaces; a left-aligned last column is
 * not padded, so lines carry no trailing blanks and a long path simply
 * runs on. Write errors stay in the stream's error flag, which fltmc checks
 * once before it exits.
 */
#include "ctl/ctl_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define COLUMN_GAP "  "

struct ctl_table {
	const struct ctl_column *cols;
	size_t n_cols;
	size_t *widths;
	char **cells; /* row-major, n_rows * n_cols */
	size_t n_rows, cap_rows;
};

char *
ctl_escape(const char *s)
{
	size_t n = 0, i;
	char *out, *p;

	for (i = 0; s[i]; i++)
		n += ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? 4 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	p = out;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			static const char hex[] = "0123456789abcdef";

			*p++ = '\\';
			*p++ = 'x';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0xf];
		} else {
			*p++ = (char)c;
		}
	}
	*p = '\0';
	return out;
}

size_t
ctl_text_width(const char *s)
{
	size_t len = strlen(s), width = 0;
	mbstate_t st;

	memset(&st, 0, sizeof(st));
	while (len > 0) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, s, len, &st);
		int w;

		if (n == (size_t)-1 || n == (size_t)-2) {
			/* not valid in this locale: one byte, one column */
			memset(&st, 0, sizeof(st));
			width++;
			s++;
			len--;
			continue;
		}
		if (n == 0)
			break;
		w = wcwidth(wc);
		width += w >= 0 ? (size_t)w : 1;
		s += n;
		len -= n;
	}
	return width;
}

int
ctl_table_new(const struct ctl_column *cols, size_t n_cols, struct ctl_table **ret_table)
{
	struct ctl_table *t;

	if (!cols || n_cols == 0)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->widths = calloc(n_cols, sizeof(*t->widths));
	if (!t->widths) {
		free(t);
		return -ENOMEM;
	}
	t->cols = cols;
	t->n_cols = n_cols;
	for (size_t c = 0; c < n_cols; c++) {
		size_t w = cols[c].header ? ctl_text_width(cols[c].header) : 0;

		t->widths[c] = w > cols[c].min_width ? w : cols[c].min_width;
	}
	*ret_table = t;
	return 0;
}

void
ctl_table_free(struct ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->widths);
	free(t);
}

size_t
ctl_table_rows(const struct ctl_table *t)
{
	return t->n_rows;
}

int
ctl_table_add_row(struct ctl_table *t, const char *const *cells)
{
	size_t c, base;

	if (t->n_rows == t->cap_rows) {
		size_t cap = t->cap_rows ? t->cap_rows * 2 : 8;
		char **grown;

		if (cap > SIZE_MAX / sizeof(char *) / t->n_cols)
			return -ENOMEM;
		grown = realloc(t->cells, cap * t->n_cols * sizeof(char *));
		if (!grown)
			return -ENOMEM;
		t->cells = grown;
		t->cap_rows = cap;
	}
	base = t->n_rows * t->n_cols;
	for (c = 0; c < t->n_cols; c++) {
		t->cells[base + c] = ctl_escape(cells[c] ? cells[c] : "-");
		if (!t->cells[base + c]) {
			while (c-- > 0)
				free(t->cells[base + c]);
			return -ENOMEM;
		}
	}
	for (c = 0; c < t->n_cols; c++) {
		size_t w = ctl_text_width(t->cells[base + c]);

		if (w > t->widths[c])
			t->widths[c] = w;
	}
	t->n_rows++;
	return 0;
}

static void
pad(FILE *out, size_t n)
{
	while (n-- > 0)
		fputc(' ', out);
}

/* Prints text in a field of width columns; a left-aligned last field is
 * not padded. */
static void
field(FILE *out, const char *text, size_t width, enum ctl_align align, bool last)
{
	size_t w = ctl_text_width(text), space = width > w ? width - w : 0;

	switch (align) {
	case CTL_ALIGN_RIGHT:
		pad(out, space);
		fputs(text, out);
		break;
	case CTL_ALIGN_CENTER:
		pad(out, space / 2);
		fputs(text, out);
		if (!last)
			pad(out, space - space / 2);
		break;
	case CTL_ALIGN_LEFT:
	default:
		fputs(text, out);
		if (!last)
			pad(out, space);
		break;
	}
}

static bool
has_header(const struct ctl_table *t)
{
	for (size_t c = 0; c < t->n_cols; c++)
		if (t->cols[c].header)
			return true;
	return false;
}

void
ctl_table_print_header(const struct ctl_table *t, FILE *out, const char *indent)
{
	size_t c;

	fputs(indent, out);
	for (c = 0; c < t->n_cols; c++) {
		if (c > 0)
			fputs(COLUMN_GAP, out);
		field(out, t->cols[c].header ? t->cols[c].header : "", t->widths[c],
		      t->cols[c].header_align, c + 1 == t->n_cols);
	}
	fputc('\n', out);
	fputs(indent, out);
	for (c = 0; c < t->n_cols; c++) {
		if (c > 0)
			fputs(COLUMN_GAP, out);
		for (size_t i = 0; i < t->widths[c]; i++)
			fputc('-', out);
	}
	fputc('\n', out);
}

void
ctl_table_print_row(const struct ctl_table *t, size_t row, FILE *out, const char *indent)
{
	const struct ctl_column *col;

	if (row >= t->n_rows)
		return;
	fputs(indent, out);
	for (size_t c = 0; c < t->n_cols; c++) {
		bool last = c + 1 == t->n_cols;

		col = &t->cols[c];
		if (c > 0)
			fputs(COLUMN_GAP, out);
		if (col->label) {
			fputs(col->label, out);
			fputc(' ', out);
		}
		field(out, t->cells[row * t->n_cols + c], t->widths[c], col->align,
		      last && !col->suffix);
		if (col->suffix) {
			fputc(' ', out);
			fputs(col->suffix, out);
		}
	}
	fputc('\n', out);
}

void
ctl_table_print(const struct ctl_table *t, FILE *out)
{
	if (has_header(t))
		ctl_table_print_header(t, out, "");
	for (size_t r = 0; r < t->n_rows; r++)
		ctl_table_print_row(t, r, out, "");
}
