#pragma once
// The numerics canary's judgement, shared by the coordinator (which decides
// quarantine) and the worker (which records the verdict in each result's
// provenance). Torch-free; the unit itself runs on the worker
// (experiments/platform/canary.h).
//
// Unit "canary-v1": mean NLL per token (nats) of a fixed generated GPT-2
// (2 layers, 4 heads, d_model 64, vocab 512, seed 20240917, std 0.1) on
// fixed token chunks, computed by the engine on the worker's device at one
// precision. The reference is the CPU fp32-or-better value computed once by
// an independent PyTorch forward (scripts/golden/make_canary_reference.py,
// float64) from the same weight file, whose digest it also records.
//
// Tolerances on |value − reference| (nats/token), per precision:
//   fp32  2e-4   CPU fp32 here (OpenBLAS) differs from the float64
//                reference by 2e-8; honest fp32 anywhere is far inside.
//   tf32  1e-2   10-bit mantissa products (~5e-4 relative each).
//   bf16  5e-2   8-bit mantissa matrix products (CPU bf16 here: 1.9e-4).
// A drift beyond these is a device or kernel computing wrong numbers, not
// round-off. Thread-safe (pure functions).
#include <string>

namespace spt::canary {

inline constexpr const char* kUnit = "canary-v1";

struct Verdict {
  double reference = 0, abs_diff = 0, tolerance = 0;
  bool pass = false;
  std::string why;  // when !pass: one line for logs and the dashboard
};

// The reference value of kUnit and the weight digest it belongs to.
double reference_value();
const char* reference_weights_sha256();
// Allowed |diff| for a precision; throws std::invalid_argument for another.
double tolerance(const std::string& precision);

// Judges one canary run. A run that reported an error, of another unit, of
// an unknown precision or with a non-finite value fails.
Verdict judge(const std::string& unit, const std::string& precision, double value, const std::string& error);

}  // namespace spt::canary
