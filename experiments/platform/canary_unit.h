#pragma once
// The numerics canary's unit, "canary-v1" (spt/canary.h): a generated GPT-2
// (no file to ship: written from a fixed spec and seed by the torch-free,
// platform-independent test-model writer) evaluated by the engine on fixed
// tokens. Torch-free header; the implementation links the engine.
//
// Thread-safety: run() loads its own model and holds nothing shared, but
// LibTorch's TF32 switches are process-global (model/precision.h), so on a
// GPU the caller runs it with no other forward in flight.
#include <cstdint>
#include <string>
#include <vector>

namespace spt::platform::canary_unit {

// The fixed token chunks: 4 rows of 48 tokens below the unit's vocab (512).
std::vector<std::vector<int32_t>> tokens();

// Writes the unit's model (config.json + model.safetensors) into `dir`;
// returns the weight file's sha256. Deterministic bytes on every platform.
std::string write_model(const std::string& dir);

struct Run {
  double value = 0;    // mean NLL per token (nats)
  std::string device;  // description of the device it ran on
};
// Writes the model under work_dir, checks its digest against the reference's
// (spt/canary.h), loads it on `device` at `precision` and returns the mean
// NLL per token. Throws std::runtime_error / std::invalid_argument on any
// failure (bad device, digest mismatch, load error).
Run run(const std::string& device, const std::string& precision, const std::string& work_dir, int threads);

}  // namespace spt::platform::canary_unit
