#include "exp7/arrays.h"

#include <cstring>
#include <stdexcept>

#include "spt/util.h"

namespace spt::exp7 {

namespace {
constexpr char kMagic[] = "SPTF32\n";
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the array files are little-endian");
}  // namespace

int64_t F32Array::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

void write_f32(const std::string& path, const F32Array& a) {
  if (a.numel() != static_cast<int64_t>(a.data.size()))
    throw std::runtime_error(path + ": shape holds " + std::to_string(a.numel()) + " values, data " +
                             std::to_string(a.data.size()));
  const nlohmann::json header = {{"shape", a.shape}, {"meta", a.meta}};
  std::string bytes = kMagic + header.dump() + "\n";
  const size_t off = bytes.size();
  bytes.resize(off + a.data.size() * sizeof(float));
  std::memcpy(bytes.data() + off, a.data.data(), a.data.size() * sizeof(float));
  write_file_atomic(path, bytes);
}

F32Array read_f32(const std::string& path) {
  const std::string bytes = read_file(path);
  const size_t magic = sizeof(kMagic) - 1;
  if (bytes.compare(0, magic, kMagic) != 0) throw std::runtime_error(path + ": not an SPTF32 array file");
  const size_t eol = bytes.find('\n', magic);
  if (eol == std::string::npos) throw std::runtime_error(path + ": truncated header");
  F32Array a;
  try {
    const auto h = nlohmann::json::parse(bytes.substr(magic, eol - magic));
    a.shape = h.at("shape").get<std::vector<int64_t>>();
    a.meta = h.value("meta", nlohmann::json::object());
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": bad header: " + e.what());
  }
  const size_t n = bytes.size() - eol - 1;
  if (a.numel() < 0 || n != static_cast<size_t>(a.numel()) * sizeof(float))
    throw std::runtime_error(path + ": " + std::to_string(n) + " data bytes do not match the shape");
  a.data.resize(static_cast<size_t>(a.numel()));
  std::memcpy(a.data.data(), bytes.data() + eol + 1, n);
  return a;
}

}  // namespace spt::exp7
