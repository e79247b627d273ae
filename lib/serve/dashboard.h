/* SPDX-License-Identifier: MIT */
#ifndef TIERMEM_SERVE_DASHBOARD_H
#define TIERMEM_SERVE_DASHBOARD_H

/* GET /: one page that polls /metrics and /props and plots tok/s and per-tier GB/s. */
extern const char dashboard_html[];

#endif
