#pragma once
// The safetensors file format, read and written without any dependency but
// nlohmann_json: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw little-endian tensor bytes (offsets relative to that data
// section).
//
// Reading memory-maps the file and validates the whole header before any
// tensor is touched: every entry has a known dtype, non-negative shape,
// end − begin == numel · itemsize, and lies inside the file; entries do not
// overlap. A truncated or corrupt file is a std::runtime_error naming the
// file and what is wrong with it. Torch-free.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spt::st {

// Bytes per element of a safetensors dtype ("F32", "F16", ...); 0 if unknown.
size_t dtype_size(const std::string& dtype);

struct TensorInfo {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", "F64", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data section
  int64_t numel() const;
};

class File {
 public:
  // Maps and validates `path`; throws std::runtime_error on any problem.
  static std::shared_ptr<const File> open(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's raw bytes (not necessarily aligned).
  const uint8_t* data(const TensorInfo& t) const { return data_ + t.begin; }
  // The tensor as float32, converting F32/F16/BF16/F64; throws for other dtypes.
  std::vector<float> to_f32(const TensorInfo& t) const;
  // As to_f32 but into caller memory of t.numel() floats.
  void to_f32(const TensorInfo& t, float* out) const;

 private:
  File() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: `bytes` must hold numel · dtype_size(dtype) bytes.
struct OutTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
// Writes tensors in the given order (header keys sorted, as the reference
// writer does; data laid out in the given order); header padded with spaces
// to a multiple of 8. Throws std::runtime_error on I/O errors or bad sizes.
void write(const std::string& path, const std::vector<OutTensor>& tensors,
           const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// IEEE half and bfloat16 conversions (round to nearest even on the way down).
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);
uint16_t float_to_half(float f);
uint16_t float_to_bf16(float f);

// float32 values encoded as `dtype` ("F32", "F16", "BF16") bytes, little-endian.
std::string encode_f32(const std::vector<float>& v, const std::string& dtype);

}  // namespace spt::st
