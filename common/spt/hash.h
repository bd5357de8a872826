#pragma once
// SHA-256 digests (lower-case hex), used for content-addressed blobs,
// result keys and the provenance of models, data and tokenizers.
#include <string>
#include <string_view>

namespace spt {

std::string sha256_hex(std::string_view bytes);
// Streams the file; throws std::runtime_error naming the path if unreadable.
std::string sha256_file(const std::string& path);

// Incremental form, for streams and multi-file digests.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  std::string hex();  // finishes; the object must not be updated afterwards
 private:
  void* ctx_;
};

}  // namespace spt
