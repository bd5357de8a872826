#pragma once
// One JSON object per log line, for log collectors (--log-format json on
// spt-server and spt-worker):
//   {"time":"2026-11-30T08:53:11.123Z","level":"info","logger":"spt-server","message":"...", <extra>}
// time is UTC with milliseconds; message is the formatted spdlog payload,
// escaped by nlohmann::json (quotes, newlines and control characters stay
// inside the string; invalid UTF-8 becomes U+FFFD), so every line parses.
// `extra` adds constant string fields (e.g. the worker's name).
#include <map>
#include <memory>
#include <string>

#include <spdlog/formatter.h>

namespace spt::log {

std::unique_ptr<spdlog::formatter> json_formatter(std::string logger, std::map<std::string, std::string> extra = {});

// Installs json_formatter on spdlog's default logger (and every sink of it).
void use_json_format(const std::string& logger, std::map<std::string, std::string> extra = {});

}  // namespace spt::log
