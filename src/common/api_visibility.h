/* SPDX-License-Identifier: MIT */
/*
 * api_visibility.h — forced into every source of libfltmgr and libfltuser
 * (-include, src/meson.build), which are compiled with -fvisibility=hidden:
 * the public headers are read here first, inside a default-visibility
 * region, so exactly the functions they declare are visible outside the
 * library. Everything else (engine, ports, wire codec) stays internal.
 * The version scripts (src/libfltmgr.map, src/libfltuser.map) say the same
 * at link time; tests/abi-check.py checks both against the headers.
 */
#ifndef FLTMGR_API_VISIBILITY_H
#define FLTMGR_API_VISIBILITY_H

#pragma GCC visibility push(default)
#include <fltmgr/filter.h>
#include <fltmgr/user.h>
#pragma GCC visibility pop

#endif
