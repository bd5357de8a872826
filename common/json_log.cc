#include "spt/json_log.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace spt::log {

namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  JsonFormatter(std::string logger, std::map<std::string, std::string> extra)
      : logger_(std::move(logger)), extra_(std::move(extra)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json j;
    j["time"] = iso_time(msg.time);
    const auto lvl = spdlog::level::to_string_view(msg.level);
    j["level"] = std::string(lvl.data(), lvl.size());
    j["logger"] = msg.logger_name.size() ? std::string(msg.logger_name.data(), msg.logger_name.size()) : logger_;
    j["message"] = std::string(msg.payload.data(), msg.payload.size());
    for (const auto& [k, v] : extra_) j[k] = v;
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(logger_, extra_);
  }

 private:
  static std::string iso_time(spdlog::log_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t s = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[40];
    const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
    return buf;
  }

  std::string logger_;
  std::map<std::string, std::string> extra_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> json_formatter(std::string logger, std::map<std::string, std::string> extra) {
  return std::make_unique<JsonFormatter>(std::move(logger), std::move(extra));
}

void use_json_format(const std::string& logger, std::map<std::string, std::string> extra) {
  spdlog::set_formatter(json_formatter(logger, std::move(extra)));
}

}  // namespace spt::log
