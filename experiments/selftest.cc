// The selftest executor (contract in spt/selftest.h).
#include "spt/selftest.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "spt/hash.h"
#include "spt/util.h"

namespace spt::selftest {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t digest(uint64_t seed, uint64_t i, int64_t work) {
  uint64_t h = mix64(mix64(seed) ^ i);
  for (int64_t k = 0; k < work; ++k) h = mix64(h);
  return h;
}

double unit(uint64_t seed, uint64_t i, uint64_t attempt, uint64_t salt) {
  const uint64_t h = mix64(mix64(mix64(mix64(seed) ^ i) ^ attempt) ^ salt);
  return static_cast<double>(h >> 11) * 0x1.0p-53;  // 53 random bits
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

namespace {

constexpr uint64_t kFailSalt = 0xfa11;
constexpr uint64_t kStallSalt = 0x57a11;
// The reduce re-derives every digest only when that costs well under a second.
constexpr double kMaxCheckedMixes = 5e7;

// Reads a required numeric param or throws a message naming it.
template <typename T>
T need(const nlohmann::json& p, const char* key) {
  auto it = p.find(key);
  if (it == p.end() || !it->is_number()) throw std::invalid_argument(std::string("param '") + key + "' missing or not a number");
  return it->get<T>();
}

Outcome run_map(const JobSpec& job, ExecContext& ctx) {
  int64_t i, work;
  uint64_t seed;
  double fail, stall, stall_s;
  try {
    i = need<int64_t>(job.params, "i");
    work = need<int64_t>(job.params, "work");
    seed = need<uint64_t>(job.params, "seed");
    fail = need<double>(job.params, "fail");
    stall = need<double>(job.params, "stall");
    stall_s = need<double>(job.params, "stall_s");
  } catch (const std::exception& e) {
    return Outcome::failure("selftest.map: " + std::string(e.what()), false);
  }
  const double t0 = monotonic_s();
  const auto attempt = static_cast<uint64_t>(job.attempt);
  if (job.attempt == 1 && unit(seed, i, attempt, kStallSalt) < stall) {
    using clock = std::chrono::steady_clock;
    const auto end = clock::now() + std::chrono::duration<double>(stall_s);
    while (clock::now() < end) {
      if (ctx.should_stop()) return Outcome::failure("selftest.map: stopped while stalling");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const uint64_t d = digest(seed, static_cast<uint64_t>(i), work);
  if (unit(seed, i, attempt, kFailSalt) < fail)
    return Outcome::failure("selftest.map: injected failure on attempt " + std::to_string(job.attempt));
  nlohmann::json result = {{"i", i}, {"value", i}, {"digest", hex64(d)}};
  // Plans with exclusive_every (tests of exclusive leasing) record where and
  // when each job ran: steady-clock seconds, comparable across processes
  // on one machine.
  if (auto it = job.params.find("exclusive_every"); it != job.params.end() && it->is_number_integer()) {
    const int64_t k = it->get<int64_t>();
    result["worker"] = ctx.worker_name;
    result["t0"] = t0;
    result["t1"] = monotonic_s();
    result["exclusive"] = k > 0 && (i + 1) % k == 0;
  }
  std::vector<OutputFile> files;
  // Test hooks for the worker's blob paths; plans never set these.
  if (auto it = job.params.find("fetch"); it != job.params.end() && it->is_string()) {
    try {
      result["fetched_sha256"] = sha256_file(ctx.fetch_blob(it->get<std::string>()));
    } catch (const std::exception& e) {
      return Outcome::failure("selftest.map: fetch_blob: " + std::string(e.what()));
    }
  }
  if (auto it = job.params.find("artifact_bytes"); it != job.params.end() && it->is_number_integer()) {
    std::string bytes;
    for (int64_t k = 0, n = it->get<int64_t>(); k < n; ++k) bytes.push_back(static_cast<char>(mix64(d + k)));
    const std::string name = "selftest-" + std::to_string(i) + ".bin";
    const std::string path = ctx.scratch_dir + "/" + name;
    try {
      write_file_atomic(path, bytes);
    } catch (const std::exception& e) {
      return Outcome::failure("selftest.map: " + std::string(e.what()));
    }
    result["artifact_sha256"] = sha256_hex(bytes);
    files.push_back({name, path, "application/octet-stream"});
  }
  return Outcome::success(std::move(result), std::move(files));
}

Outcome run_reduce(const JobSpec& job) {
  int64_t n, work;
  uint64_t seed;
  try {
    n = need<int64_t>(job.params, "n");
    work = need<int64_t>(job.params, "work");
    seed = need<uint64_t>(job.params, "seed");
  } catch (const std::exception& e) {
    return Outcome::failure("selftest.reduce: " + std::string(e.what()), false);
  }
  if (n < 0) return Outcome::failure("selftest.reduce: n < 0", false);
  const bool check_digests = static_cast<double>(n) * static_cast<double>(work) <= kMaxCheckedMixes;
  std::vector<int> seen(static_cast<size_t>(n), 0);
  int64_t sum = 0;
  for (const auto& in : job.inputs) {
    const auto& r = in.result;
    const auto it = r.find("i"), vt = r.find("value"), dt = r.find("digest");
    if (!r.is_object() || it == r.end() || !it->is_number_integer() || vt == r.end() || !vt->is_number_integer())
      return Outcome::failure("selftest.reduce: input " + in.name + " has no integer i/value: " + r.dump(), false);
    const int64_t i = it->get<int64_t>();
    if (i < 0 || i >= n)
      return Outcome::failure("selftest.reduce: input " + in.name + " has i=" + std::to_string(i) +
                                  " outside [0, " + std::to_string(n) + ")", false);
    if (++seen[static_cast<size_t>(i)] > 1)
      return Outcome::failure("selftest.reduce: i=" + std::to_string(i) + " appears more than once", false);
    if (check_digests) {
      const std::string want = hex64(digest(seed, static_cast<uint64_t>(i), work));
      if (dt == r.end() || !dt->is_string() || dt->get<std::string>() != want)
        return Outcome::failure("selftest.reduce: input " + in.name + " has a wrong digest (want " + want + ")", false);
    }
    sum += vt->get<int64_t>();
  }
  int64_t missing = 0, first_missing = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!seen[static_cast<size_t>(i)] && missing++ == 0) first_missing = i;
  if (missing)
    return Outcome::failure("selftest.reduce: " + std::to_string(missing) + " of " + std::to_string(n) +
                                " results missing (first: i=" + std::to_string(first_missing) + ")", false);
  const int64_t expected = n * (n - 1) / 2;
  if (sum != expected)
    return Outcome::failure("selftest.reduce: sum of values " + std::to_string(sum) + " != expected " +
                                std::to_string(expected), false);
  return Outcome::success(
      {{"n", n}, {"sum", sum}, {"expected", expected}, {"ok", true}, {"digests_checked", check_digests}});
}

class SelftestExecutor : public Executor {
 public:
  std::vector<std::string> kinds() const override { return {"selftest.map", "selftest.reduce"}; }

  // Jobs run one after another; there is nothing to fuse.
  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) override {
    for (size_t k = 0; k < jobs.size(); ++k) {
      const JobSpec& job = jobs[k];
      if (job.kind == "selftest.map")
        done(k, run_map(job, ctx));
      else if (job.kind == "selftest.reduce")
        done(k, run_reduce(job));
      else
        done(k, Outcome::failure("selftest: unknown kind " + job.kind, false));
    }
  }
};

}  // namespace

std::unique_ptr<Executor> make_executor() { return std::make_unique<SelftestExecutor>(); }

}  // namespace spt::selftest
