/* SPDX-License-Identifier: MIT */
/*
 * <fltmgr/bytes.h> — fixed-width fields in a message buffer, the one way
 * fltmgr's protocols store and load them: the port frames
 * (src/common/wire.h), the scanner's messages (<fltmgr/scanner.h>) and
 * minispy's records (filters/minispy/minispy_record.h). A field is
 * copied at its offset with memcpy (never through a cast pointer: a
 * buffer need not be aligned), in host byte order: these messages travel over AF_UNIX and
 * never leave the machine.
 *
 * Header-only, so that filters, services and both libraries share it
 * without linking anything.
 */
#ifndef FLTMGR_BYTES_H
#define FLTMGR_BYTES_H

#include <stdint.h>
#include <string.h>

static inline void
flt_put16(void *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
flt_put32(void *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
flt_put64(void *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline uint16_t
flt_get16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t
flt_get32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
flt_get64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

#endif /* FLTMGR_BYTES_H */
