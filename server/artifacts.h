#pragma once
// Content-addressed blob store on disk: <root>/blobs/ab/cdef... holds the
// bytes whose sha256 is "abcdef...". Reports, figures, data files, model
// and dataset files all live here; the store's tables say what they are.
//
// Invariant: a file under blobs/ always hashes to its path. Writers fill a
// private temp file under <root>/tmp, verify the digest, then rename, so a
// crash leaves at worst a stray temp file and readers never see half a blob.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "spt/hash.h"

namespace spt::server {

class BlobError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// True for 64 lower-case hex characters.
bool valid_sha256(std::string_view s);
// "image/png" for "x.png", etc.; application/octet-stream when unknown.
std::string media_type_for(std::string_view name);

class BlobStore {
 public:
  class Writer;
  class Reader;

  // Creates <root>/blobs and <root>/tmp if needed; throws BlobError.
  explicit BlobStore(std::string root);

  bool has(const std::string& sha256) const;
  std::string path_of(const std::string& sha256) const;

  // A new upload. Nothing is visible until Writer::finish succeeds.
  std::unique_ptr<Writer> writer();
  // Opens a stored blob; throws BlobError if absent.
  std::unique_ptr<Reader> reader(const std::string& sha256) const;

 private:
  std::string root_;
};

class BlobStore::Writer {
 public:
  ~Writer();  // removes the temp file unless finished
  void append(std::string_view bytes);
  int64_t size() const { return size_; }
  // Verifies (if expected is non-empty) and publishes; returns the digest.
  // Throws BlobError on a digest mismatch or I/O failure.
  std::string finish(const std::string& expected_sha256);

 private:
  friend class BlobStore;
  Writer(const BlobStore& store, std::string tmp_path, FILE* f);
  const BlobStore& store_;
  std::string tmp_;
  FILE* f_;
  Sha256 hash_;
  int64_t size_ = 0;
  bool finished_ = false;
};

class BlobStore::Reader {
 public:
  ~Reader();
  int64_t size() const { return size_; }
  // Up to max bytes; "" at the end. Throws BlobError on a read error.
  std::string read(size_t max);

 private:
  friend class BlobStore;
  Reader(FILE* f, int64_t size) : f_(f), size_(size) {}
  FILE* f_;
  int64_t size_;
};

}  // namespace spt::server
