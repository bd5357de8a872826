#include "blob_cache.h"

#include <filesystem>
#include <stdexcept>

namespace spt::worker {

namespace fs = std::filesystem;

namespace {

bool is_sha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Names come from the server; keep them to one safe path component.
std::string safe_name(std::string name) {
  const auto slash = name.find_last_of('/');
  if (slash != std::string::npos) name = name.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") return "blob";
  return name;
}

}  // namespace

BlobCache::BlobCache(std::string dir, v1::WorkerService::Stub* stub, std::string token)
    : dir_(std::move(dir)), stub_(stub), token_(std::move(token)) {}

std::string BlobCache::present(const std::string& sha) const {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / sha, ec)) {
    const std::string p = e.path().string();
    if (e.is_regular_file() && p.size() > 5 && p.compare(p.size() - 5, 5, ".part") != 0) return p;
  }
  return "";
}

std::string BlobCache::fetch(const std::string& sha_or_name) {
  if (sha_or_name.empty()) throw std::runtime_error("fetch_blob: empty digest or name");
  std::lock_guard<std::mutex> lock(mu_);
  const bool by_sha = is_sha256(sha_or_name);
  if (by_sha)
    if (auto p = present(sha_or_name); !p.empty()) return p;
  v1::FetchBlobRequest req;
  if (by_sha)
    req.set_sha256(sha_or_name);
  else
    req.set_name(sha_or_name);
  std::string existing;
  auto choose = [&](const v1::BlobChunk& first) -> std::string {
    const std::string sha = first.sha256().empty() ? (by_sha ? sha_or_name : "") : first.sha256();
    if (!is_sha256(sha))
      throw std::runtime_error("fetch_blob " + sha_or_name + ": server announced no valid sha256");
    if (existing = present(sha); !existing.empty()) return "";
    fs::create_directories(fs::path(dir_) / sha);
    return (fs::path(dir_) / sha / safe_name(first.name().empty() ? sha_or_name : first.name())).string();
  };
  std::string path;
  rpc::fetch_blob(rpc::blob_reader(stub_), token_, req, choose, &path);
  return path.empty() ? existing : path;
}

}  // namespace spt::worker
