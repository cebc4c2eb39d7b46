/* SPDX-License-Identifier: MIT */
/*
 * ctl_table.h — aligned text tables for fltmc's human output. Columns
 * widen to their longest cell (nothing is ever truncated), and control
 * characters in cells are escaped so a name cannot break a line.
 */
#ifndef FLTMGR_CTL_TABLE_H
#define FLTMGR_CTL_TABLE_H

#include <stddef.h>
#include <stdio.h>

enum ctl_align {
	CTL_ALIGN_LEFT,
	CTL_ALIGN_RIGHT,
	CTL_ALIGN_CENTER,
};

struct ctl_column {
	const char *header;          /* title over the column, NULL for none */
	const char *label;           /* printed before every cell ("pid 42"), or NULL */
	const char *suffix;          /* printed after every cell ("0 bytes"), or NULL */
	enum ctl_align align;        /* of the cells */
	enum ctl_align header_align; /* of the title */
	size_t min_width;
};

struct ctl_table;

/* A table with n_cols columns; cols must outlive it. -ENOMEM. */
int ctl_table_new(const struct ctl_column *cols, size_t n_cols,
		  struct ctl_table **ret_table);
/* Accepts NULL. */
void ctl_table_free(struct ctl_table *t);

/* Appends a row of n_cols cells (copied, escaped; NULL prints as "-").
 * -ENOMEM leaves the table as it was. */
int ctl_table_add_row(struct ctl_table *t, const char *const *cells);
size_t ctl_table_rows(const struct ctl_table *t);

/* The title line and the dashes under it, each line after indent. */
void ctl_table_print_header(const struct ctl_table *t, FILE *out, const char *indent);
void ctl_table_print_row(const struct ctl_table *t, size_t row, FILE *out,
			 const char *indent);
/* Header (if any column has one) and every row. */
void ctl_table_print(const struct ctl_table *t, FILE *out);

/* A copy of s with control characters written as \xNN (free() it), or
 * NULL on ENOMEM. */
char *ctl_escape(const char *s);
/* Columns s takes on a terminal (multibyte aware in a UTF-8 locale). */
size_t ctl_text_width(const char *s);

#endif
