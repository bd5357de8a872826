#pragma once
// The worker's local copy of blobs from the coordinator's artifact store
// (models, datasets), behind ExecContext::fetch_blob.
//
// Layout: <dir>/<sha256>/<name>. A file is only ever placed there whole and
// verified against its digest, so presence means valid; asking again for a
// digest that is present costs no network.
#include <mutex>
#include <string>

#include "client/connection.h"

namespace spt::worker {

class BlobCache {
 public:
  // `stub` must outlive the cache; `token` is sent with each fetch.
  BlobCache(std::string dir, v1::WorkerService::Stub* stub, std::string token);

  // Local path of the blob with this sha256 (64 hex digits) or registered
  // name, fetching it if needed. Thread-safe. Throws std::runtime_error
  // (including spt::rpc::RpcError) with a message naming the blob.
  std::string fetch(const std::string& sha_or_name);

 private:
  std::string present(const std::string& sha) const;  // path or ""

  const std::string dir_;
  v1::WorkerService::Stub* const stub_;
  const std::string token_;
  std::mutex mu_;  // one download at a time; a second asker then finds it present
};

}  // namespace spt::worker
