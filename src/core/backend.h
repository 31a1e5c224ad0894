/* SPDX-License-Identifier: MIT */
/*
 * backend.h - a white-box look at how `auto` picks a backend, for tests
 * (tests/test_fallback.c). A hidden symbol: only code linked against the
 * static library reaches it. Nothing here is API.
 */
#ifndef EVQ_CORE_BACKEND_H
#define EVQ_CORE_BACKEND_H

#include "evq.h"

/* The order `auto` tries the backends in, best first (src/core/backend.c):
 * up to max ids into ids[]; returns how many. */
__attribute__((visibility("hidden")))
int evq__backend_order(enum evq_backend *ids, int max);

#endif /* EVQ_CORE_BACKEND_H */
