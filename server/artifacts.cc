#include "artifacts.h"

#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace spt::server {

namespace fs = std::filesystem;

bool valid_sha256(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string media_type_for(std::string_view name) {
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  std::string ext(name.substr(dot + 1));
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::pair<const char*, const char*> kTypes[] = {
      {"png", "image/png"},       {"svg", "image/svg+xml"},   {"md", "text/markdown"},
      {"txt", "text/plain"},      {"csv", "text/csv"},        {"tsv", "text/tab-separated-values"},
      {"json", "application/json"}, {"jsonl", "application/jsonl"}, {"html", "text/html"},
      {"pdf", "application/pdf"}, {"gz", "application/gzip"}, {"safetensors", "application/octet-stream"},
  };
  for (const auto& [e, t] : kTypes)
    if (ext == e) return t;
  return "application/octet-stream";
}

BlobStore::BlobStore(std::string root) : root_(std::move(root)) {
  std::error_code ec;
  fs::create_directories(root_ + "/blobs", ec);
  if (!ec) fs::create_directories(root_ + "/tmp", ec);
  if (ec) throw BlobError("cannot create blob store under " + root_ + ": " + ec.message());
}

std::string BlobStore::path_of(const std::string& sha256) const {
  return root_ + "/blobs/" + sha256.substr(0, 2) + "/" + sha256.substr(2);
}

bool BlobStore::has(const std::string& sha256) const {
  if (!valid_sha256(sha256)) return false;
  struct stat st;
  return ::stat(path_of(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::unique_ptr<BlobStore::Writer> BlobStore::writer() {
  unsigned char r[8];
  if (RAND_bytes(r, sizeof r) != 1) throw BlobError("RAND_bytes failed");
  char name[32];
  std::snprintf(name, sizeof name, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                r[7]);
  std::string tmp = root_ + "/tmp/upload-" + name;
  FILE* f = std::fopen(tmp.c_str(), "wbx");
  if (!f) throw BlobError("cannot create " + tmp + ": " + std::strerror(errno));
  return std::unique_ptr<Writer>(new Writer(*this, std::move(tmp), f));
}

std::unique_ptr<BlobStore::Reader> BlobStore::reader(const std::string& sha256) const {
  if (!valid_sha256(sha256)) throw BlobError("not a sha256 digest: '" + sha256 + "'");
  const std::string p = path_of(sha256);
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) throw BlobError("no blob " + sha256);
  struct stat st;
  if (::fstat(fileno(f), &st) != 0) {
    std::fclose(f);
    throw BlobError("cannot stat " + p);
  }
  return std::unique_ptr<Reader>(new Reader(f, static_cast<int64_t>(st.st_size)));
}

BlobStore::Writer::Writer(const BlobStore& store, std::string tmp_path, FILE* f)
    : store_(store), tmp_(std::move(tmp_path)), f_(f) {}

BlobStore::Writer::~Writer() {
  if (f_) std::fclose(f_);
  if (!finished_) std::remove(tmp_.c_str());
}

void BlobStore::Writer::append(std::string_view bytes) {
  if (!f_) throw BlobError("blob writer already finished");
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f_) != bytes.size())
    throw BlobError("cannot write " + tmp_ + ": " + std::strerror(errno));
  hash_.update(bytes);
  size_ += static_cast<int64_t>(bytes.size());
}

std::string BlobStore::Writer::finish(const std::string& expected_sha256) {
  if (!f_) throw BlobError("blob writer already finished");
  const bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
  std::fclose(f_);
  f_ = nullptr;
  if (!ok) throw BlobError("cannot write " + tmp_ + ": " + std::strerror(errno));
  const std::string sha = hash_.hex();
  if (!expected_sha256.empty() && sha != expected_sha256)
    throw BlobError("upload corrupted: content hashes to " + sha + ", sender said " + expected_sha256);
  const std::string dest = store_.path_of(sha);
  if (store_.has(sha)) return sha;  // same content already stored; temp file is removed
  std::error_code ec;
  fs::create_directories(fs::path(dest).parent_path(), ec);
  if (ec || std::rename(tmp_.c_str(), dest.c_str()) != 0)
    throw BlobError("cannot store blob at " + dest + ": " + (ec ? ec.message() : std::strerror(errno)));
  finished_ = true;
  return sha;
}

BlobStore::Reader::~Reader() {
  if (f_) std::fclose(f_);
}

std::string BlobStore::Reader::read(size_t max) {
  std::string buf(max, '\0');
  const size_t n = std::fread(buf.data(), 1, max, f_);
  if (n < max && std::ferror(f_)) throw BlobError("blob read error");
  buf.resize(n);
  return buf;
}

}  // namespace spt::server
