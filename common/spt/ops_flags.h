#pragma once
// The operations flags spt-server and spt-worker share: --log-format
// (text | json, see spt/json_log.h) and --metrics-listen (Prometheus over
// HTTP, see spt/metrics.h; env SPT_METRICS_LISTEN). Header-only over CLI11,
// like spt/cli_conventions.h.
#include <CLI/CLI.hpp>
#include <string>

#include "spt/metrics.h"

namespace spt::cli {

// Binds the two flags to `log_format` (default "text") and `metrics_listen`
// (default "", off); a bad value is a usage error at parse time.
inline void add_ops_flags(CLI::App& app, std::string& log_format, std::string& metrics_listen) {
  app.add_option("--log-format", log_format, "text | json (one JSON object per line on stdout)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus GET /metrics and /healthz over plain HTTP on [HOST:]PORT (a bare PORT binds "
                 "127.0.0.1; off by default; env SPT_METRICS_LISTEN)")
      ->envname("SPT_METRICS_LISTEN")
      ->check([](const std::string& v) -> std::string {
        try {
          spt::metrics::normalize_listen(v);
          return "";
        } catch (const std::exception& e) {
          return e.what();
        }
      });
}

}  // namespace spt::cli
