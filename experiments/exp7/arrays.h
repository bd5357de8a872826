#pragma once
// Float32 arrays as files: how exp7 units hand Δφ captures and PCA bases to
// the units that consume them (as artifacts in the coordinator's blob store,
// never inside job-result JSON).
//
// Format: "SPTF32\n", one line of JSON {"shape": [...], "meta": {...}},
// then prod(shape) little-endian IEEE float32 values, row-major.
// Errors: std::runtime_error naming the file (unreadable, bad magic or
// header, size not matching the shape). Thread-safe (no shared state).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace spt::exp7 {

struct F32Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
  nlohmann::json meta = nlohmann::json::object();
  int64_t numel() const;
};

// Writes atomically (temporary file, then rename).
void write_f32(const std::string& path, const F32Array& a);
F32Array read_f32(const std::string& path);

}  // namespace spt::exp7
