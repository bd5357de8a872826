#pragma once
// Shared gRPC client plumbing for spt-client and spt-worker (torch-free):
// channel setup, bearer-token loading and metadata, status formatting, and
// blob upload/download over either service's PutBlob/FetchBlob.
//
// Every call made through these helpers carries `authorization: Bearer <t>`
// when a token is configured, and a deadline.
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include <grpcpp/grpcpp.h>

#include "spt/v1/spt.grpc.pb.h"

namespace spt::rpc {

// The token to send. Precedence: `token`, then the file `token_file`, then
// $SPT_TOKEN, then the file named by $SPT_TOKEN_FILE; "" when none is set.
// Surrounding whitespace is stripped. Throws std::runtime_error if a named
// file cannot be read or holds no token.
std::string load_token(const std::string& token, const std::string& token_file);

// TLS for a channel (issue 12). A CA file turns TLS on; the rest is optional.
struct TlsOptions {
  std::string ca_file;      // PEM CA bundle that signed the server's certificate
  std::string cert_file;    // client certificate, for servers started with --tls-client-ca
  std::string key_file;     // its PEM private key
  std::string server_name;  // name checked instead of the address's host (IP-addressed labs)
  bool enabled() const { return !ca_file.empty(); }
};

// Fills the fields still empty from $SPT_TLS_CA, $SPT_TLS_CERT, $SPT_TLS_KEY
// and $SPT_TLS_SERVER_NAME (flags and config files fill them first).
void tls_from_env(TlsOptions& tls);

// Plaintext when !tls.enabled(). Throws std::runtime_error naming the file
// and its flag when a file is unreadable or empty, or cert/key lack a CA or
// each other.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsOptions& tls);

// A channel with quick reconnects (so a restarted server is found within
// seconds) and no receive-size cap (reduce jobs can carry many inputs).
// Throws as channel_credentials().
std::shared_ptr<grpc::Channel> make_channel(const std::string& address, const TlsOptions& tls = {});

// After an UNAVAILABLE call: connects to `address` once more with OpenSSL
// (blocking, up to timeout_s; it sends no token) to tell TLS problems apart, and returns a
// sentence naming the cause and the flag that fixes it (server speaks TLS
// but no CA given, certificate not signed by the CA file, name mismatch,
// client certificate missing or refused, server not speaking TLS), or ""
// when the transport looks fine or the server cannot be reached at all.
std::string diagnose_tls(const std::string& address, const TlsOptions& tls, double timeout_s = 3);

// Adds the bearer token (if any) and a deadline `timeout_s` from now.
// `wait_for_ready`: while the server is unreachable the call waits (until
// the deadline) instead of failing at once with UNAVAILABLE. Daemons want
// this: a waiting call drives the reconnection, so it goes through as soon
// as the server is back, whereas fail-fast calls leave reconnection to
// gRPC's 5 s backup poller. Interactive commands want to fail fast.
void prepare(grpc::ClientContext& ctx, const std::string& token, double timeout_s, bool wait_for_ready = false);

// "UNAVAILABLE: <message>"; code names as in the gRPC spec.
const char* code_name(grpc::StatusCode code);
std::string status_text(const grpc::Status& s);

// A failed RPC, carrying its status.
class RpcError : public std::runtime_error {
 public:
  RpcError(const std::string& what, grpc::Status s)
      : std::runtime_error(what + ": " + status_text(s)), status_(std::move(s)) {}
  const grpc::Status& status() const { return status_; }

 private:
  grpc::Status status_;
};

// Writer/reader factories, so one implementation serves both services.
using BlobWriterFactory = std::function<std::unique_ptr<grpc::ClientWriter<v1::BlobChunk>>(
    grpc::ClientContext*, v1::PutBlobResponse*)>;
using BlobReaderFactory = std::function<std::unique_ptr<grpc::ClientReader<v1::BlobChunk>>(
    grpc::ClientContext*, const v1::FetchBlobRequest&)>;

// Uploads the file at `path` under `name` (its base name if empty), with its
// sha256 declared up front so the server can verify it. Throws RpcError or
// std::runtime_error (unreadable file).
v1::Artifact put_blob(const BlobWriterFactory& open, const std::string& token, const std::string& path,
                      const std::string& name);

// Downloads a blob by sha256 or registered name. `choose_path(first)` sees
// the first chunk (digest, name, size) and returns where to write it, or ""
// to skip the download (already present). The file is written to
// "<path>.part", checked against the announced digest, then renamed. Returns
// the artifact described by the stream (sha256 as received or computed) and
// the path in `*path_out`. Throws RpcError or std::runtime_error.
v1::Artifact fetch_blob(const BlobReaderFactory& open, const std::string& token, const v1::FetchBlobRequest& req,
                        const std::function<std::string(const v1::BlobChunk&)>& choose_path,
                        std::string* path_out);

// Factories bound to a stub of either service.
template <typename Stub>
BlobWriterFactory blob_writer(Stub* stub) {
  return [stub](grpc::ClientContext* c, v1::PutBlobResponse* r) { return stub->PutBlob(c, r); };
}
template <typename Stub>
BlobReaderFactory blob_reader(Stub* stub) {
  return [stub](grpc::ClientContext* c, const v1::FetchBlobRequest& q) { return stub->FetchBlob(c, q); };
}

}  // namespace spt::rpc
