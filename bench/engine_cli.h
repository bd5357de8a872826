#pragma once
// Shared bits of the spt-engine CLI (engine_main.cc, engine_bench.cc):
// a strict --key value parser and the common model options. No CLI11 here:
// spt-engine must build on machines that have only LibTorch.
#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "spt/gpt2.h"

namespace spt::engine_cli {

// "--key value" and "--flag" arguments; finish() rejects any key never read,
// so a typo is an error rather than a silent default.
class Args {
 public:
  Args(int argc, char** argv, int first, const std::set<std::string>& flags) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + a + "'");
      a = a.substr(2);
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        kv_[a.substr(0, eq)] = a.substr(eq + 1);
      } else if (flags.count(a)) {
        kv_[a] = "1";
      } else {
        if (i + 1 >= argc) throw std::invalid_argument("--" + a + " needs a value");
        kv_[a] = argv[++i];
      }
    }
  }
  bool has(const std::string& k) {
    used_.insert(k);
    return kv_.count(k) != 0;
  }
  std::string str(const std::string& k, const std::string& def = "") {
    used_.insert(k);
    auto it = kv_.find(k);
    return it == kv_.end() ? def : it->second;
  }
  std::string need(const std::string& k) {
    if (!has(k)) throw std::invalid_argument("--" + k + " is required");
    return str(k);
  }
  long long integer(const std::string& k, long long def) {
    const std::string v = str(k);
    if (v.empty()) return def;
    try {
      size_t n = 0;
      const long long x = std::stoll(v, &n);
      if (n != v.size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw std::invalid_argument("--" + k + " must be an integer, got '" + v + "'");
    }
  }
  bool flag(const std::string& k) { return has(k) && str(k) != "0" && str(k) != "false"; }
  void finish() const {
    for (const auto& [k, v] : kv_)
      if (!used_.count(k)) throw std::invalid_argument("unknown option --" + k);
  }

 private:
  std::map<std::string, std::string> kv_;
  std::set<std::string> used_;
};

// --device, --precision, --threads (default: all cores), --no-processing, --memory-mb, --fast-attention.
inline gpt2::LoadOptions load_options(Args& a) {
  gpt2::LoadOptions o;
  o.device = a.str("device", "cpu");
  o.precision = gpt2::parse_precision(a.str("precision", "fp32"));
  // Debian's LibTorch starts single-threaded: default to every core.
  o.threads = static_cast<int>(a.integer("threads", std::max(1u, std::thread::hardware_concurrency())));
  o.memory_budget_mb = a.integer("memory-mb", 0);
  o.fast_attention = a.flag("fast-attention");
  if (a.flag("no-processing")) o.processing = gpt2::Processing{false, false, false, false};
  return o;
}

// Subcommand entry points.
int bench_main(Args& a);

}  // namespace spt::engine_cli
