#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace spt::st {
namespace {

// Headers of real checkpoints are tens of KB; anything near this is corrupt.
constexpr uint64_t kMaxHeader = 100ull << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("safetensors file " + path + ": " + what);
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  uint8_t b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

}  // namespace

size_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::shared_ptr<const File> File::open(const std::string& path) {
  if (!host_is_little_endian()) fail(path, "big-endian hosts are not supported");
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat stt{};
  if (::fstat(fd, &stt) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  const uint64_t size = static_cast<uint64_t>(stt.st_size);
  std::shared_ptr<File> f(new File());
  f->path_ = path;
  if (size < 8) {
    ::close(fd);
    fail(path, "truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail(path, std::string("cannot map: ") + std::strerror(errno));
  f->map_ = m;
  f->map_size_ = size;
  const auto* base = static_cast<const uint8_t*>(m);

  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  if (n > kMaxHeader) fail(path, "corrupt: header length " + std::to_string(n) + " is implausible");
  if (8 + n > size)
    fail(path, "truncated: header says " + std::to_string(n) + " header bytes but the file has only " +
                   std::to_string(size - 8) + " after the length");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(base + 8, base + 8 + n);
  } catch (const std::exception& e) {
    fail(path, std::string("corrupt JSON header: ") + e.what());
  }
  if (!h.is_object()) fail(path, "corrupt: header is not a JSON object");
  f->data_ = base + 8 + n;
  const uint64_t data_size = size - 8 - n;

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const auto& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, "corrupt: __metadata__ is not an object");
      for (auto m2 = e.begin(); m2 != e.end(); ++m2)
        f->metadata_[m2.key()] = m2.value().is_string() ? m2.value().get<std::string>() : m2.value().dump();
      continue;
    }
    TensorInfo t;
    t.name = name;
    try {
      t.dtype = e.at("dtype").get<std::string>();
      for (const auto& s : e.at("shape")) {
        int64_t v = s.get<int64_t>();
        if (v < 0) fail(path, "corrupt: negative dimension in tensor " + name);
        t.shape.push_back(v);
      }
      const auto& off = e.at("data_offsets");
      if (!off.is_array() || off.size() != 2) fail(path, "corrupt: data_offsets of " + name + " is not [begin, end]");
      t.begin = off[0].get<uint64_t>();
      t.end = off[1].get<uint64_t>();
    } catch (const nlohmann::json::exception& ex) {
      fail(path, "corrupt header entry for tensor " + name + ": " + ex.what());
    }
    const size_t isz = dtype_size(t.dtype);
    if (isz == 0) fail(path, "tensor " + name + " has unknown dtype " + t.dtype);
    if (t.end < t.begin) fail(path, "corrupt: tensor " + name + " ends before it begins");
    if (t.end - t.begin != static_cast<uint64_t>(t.numel()) * isz)
      fail(path, "corrupt: tensor " + name + " has " + std::to_string(t.end - t.begin) + " bytes but its shape needs " +
                     std::to_string(static_cast<uint64_t>(t.numel()) * isz));
    if (t.end > data_size)
      fail(path, "truncated: tensor " + name + " needs data bytes up to " + std::to_string(t.end) +
                     " but the file holds only " + std::to_string(data_size));
    f->tensors_.push_back(std::move(t));
  }
  // Overlapping entries would alias one another: reject.
  std::vector<const TensorInfo*> by_off;
  for (const auto& t : f->tensors_) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end && by_off[i - 1]->end > by_off[i - 1]->begin)
      fail(path, "corrupt: tensors " + by_off[i - 1]->name + " and " + by_off[i]->name + " overlap");
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

File::~File() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<float> File::to_f32(const TensorInfo& t) const {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  to_f32(t, out.data());
  return out;
}

void File::to_f32(const TensorInfo& t, float* out) const {
  const uint8_t* p = data(t);
  const size_t n = static_cast<size_t>(t.numel());
  if (t.dtype == "F32") {
    std::memcpy(out, p, n * 4);
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    const bool half = t.dtype == "F16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = half ? half_to_float(v) : bf16_to_float(v);
    }
  } else if (t.dtype == "F64") {
    for (size_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = static_cast<float>(v);
    }
  } else {
    throw std::runtime_error("safetensors file " + path_ + ": tensor " + t.name + " has dtype " + t.dtype +
                             ", expected a float type (F32, F16, BF16)");
  }
}

void write(const std::string& path, const std::vector<OutTensor>& tensors,
           const std::map<std::string, std::string>& metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (int64_t s : t.shape) numel *= s;
    const size_t isz = dtype_size(t.dtype);
    if (isz == 0) throw std::runtime_error("safetensors write: unknown dtype " + t.dtype);
    if (t.bytes.size() != static_cast<size_t>(numel) * isz)
      throw std::runtime_error("safetensors write: tensor " + t.name + " has the wrong number of bytes");
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string header = h.dump();
  while (header.size() % 8) header.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  const uint64_t n = header.size();
  char len[8];
  std::memcpy(len, &n, 8);
  out.write(len, 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& t : tensors) out.write(t.bytes.data(), static_cast<std::streamsize>(t.bytes.size()));
  if (!out) throw std::runtime_error("short write to " + path);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((x >> 16) | 0x40);
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);  // inf / nan
  if (ax >= 0x477ff000u) return sign | 0x7c00u;                                     // overflow → inf
  if (ax < 0x38800000u) {                                                            // subnormal or zero
    if (ax < 0x33000000u) return sign;                                               // below half the min subnormal
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t r = ((ax >> 13) - (112u << 10));  // rebias exponent 127 → 15
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return sign | static_cast<uint16_t>(r);
}

std::string encode_f32(const std::vector<float>& v, const std::string& dtype) {
  std::string out;
  if (dtype == "F32") {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
  } else if (dtype == "F16" || dtype == "BF16") {
    out.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = dtype == "F16" ? float_to_half(v[i]) : float_to_bf16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  } else {
    throw std::invalid_argument("encode_f32: unsupported dtype " + dtype + " (F32, F16, BF16)");
  }
  return out;
}

}  // namespace spt::st
