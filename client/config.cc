#include "config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

namespace spt::client {

namespace {

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string expand_home(const std::string& v) {
  if (v.rfind("~/", 0) == 0 && !env("HOME").empty()) return env("HOME") + v.substr(1);
  return v;
}

}  // namespace

std::string config_path() {
  if (!env("SPT_CONFIG").empty()) return env("SPT_CONFIG");
  if (!env("XDG_CONFIG_HOME").empty()) return env("XDG_CONFIG_HOME") + "/spt/config";
  if (!env("HOME").empty()) return env("HOME") + "/.config/spt/config";
  return "";
}

ClientConfig read_config(const std::string& path) {
  static const std::set<std::string> kKeys = {"server",  "token_file", "timeout_s",      "tls_ca",
                                              "tls_cert", "tls_key",    "tls_server_name"};
  ClientConfig c;
  if (path.empty() || !std::filesystem::exists(path)) return c;
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read");
  c.path = path;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    const auto eq = line.find('=');
    const std::string where = path + ":" + std::to_string(n) + ": ";
    if (eq == std::string::npos) throw std::runtime_error(where + "expected key = value, got '" + line + "'");
    const std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
    if (!kKeys.count(k)) throw std::runtime_error(where + "unknown key '" + k +
                                                  "' (known: server, token_file, timeout_s, tls_ca, tls_cert, tls_key, "
                                                  "tls_server_name)");
    c.values[k] = expand_home(v);
  }
  return c;
}

}  // namespace spt::client
