#pragma once
// The selftest executor: deterministic CPU-only jobs that exercise the whole
// runner (leasing, retries, timeouts, fan-in) without any science.
//
//   selftest.map    params {n, work, fail, stall, stall_s, seed, i}
//                   -> {"i": i, "value": i, "digest": "<16 hex>"}
//                   With probability `fail` (a pure function of seed, i and
//                   attempt) a retryable failure; with probability `stall`,
//                   on attempt 1 only, it first sleeps stall_s seconds,
//                   returning early (as a retryable failure) on should_stop.
//                   Test hooks (no plan sets them): "fetch": <sha or name>
//                   fetches that blob and reports "fetched_sha256";
//                   "artifact_bytes": k writes a k-byte file and returns it
//                   as an OutputFile, reporting "artifact_sha256".
//                   With "exclusive_every": k (plan param; every k-th map
//                   job is exclusive) it also reports "worker" (the
//                   ExecContext's worker_name), "t0"/"t1" (monotonic_s()
//                   at its start and end) and "exclusive".
//   selftest.reduce inputs: every map result. Checks that each i in 0..n-1
//                   appears exactly once and sum(value) == n(n-1)/2 (and the
//                   digests, when that is cheap); -> {"n","sum","expected",
//                   "ok": true} or a non-retryable failure saying what is wrong.
#include <cstdint>
#include <memory>
#include <string>

#include "spt/job.h"

namespace spt::selftest {

// splitmix64's finaliser: a bijective 64-bit mix.
uint64_t mix64(uint64_t x);
// The digest map job i reports: a chain of `work` mixes seeded by (seed, i).
uint64_t digest(uint64_t seed, uint64_t i, int64_t work);
// A number in [0, 1) decided by (seed, i, attempt, salt); salts keep the
// fail and stall decisions independent.
double unit(uint64_t seed, uint64_t i, uint64_t attempt, uint64_t salt);
// 16 lower-case hex digits.
std::string hex64(uint64_t v);

std::unique_ptr<Executor> make_executor();

}  // namespace spt::selftest
