#include "connection.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "spt/hash.h"
#include "spt/util.h"

namespace spt::rpc {

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string token_from_file(const std::string& path, const char* origin) {
  std::string t;
  try {
    t = trim(read_file(path));
  } catch (const std::exception&) {
    throw std::runtime_error(std::string("cannot read token file ") + path + " (" + origin + ")");
  }
  if (t.empty()) throw std::runtime_error(std::string("token file ") + path + " (" + origin + ") is empty");
  return t;
}

constexpr size_t kChunk = 1 << 20;      // well under the server's message cap
constexpr int kConnectTimeoutMs = 10000;  // a handshake over a slow, far link (satellite, TLS)
constexpr double kBlobTimeoutS = 3600;  // model files can be gigabytes

std::string base_name(const std::string& path) {
  const auto p = path.find_last_of('/');
  return p == std::string::npos ? path : path.substr(p + 1);
}

}  // namespace

std::string load_token(const std::string& token, const std::string& token_file) {
  if (!token.empty()) return trim(token);
  if (!token_file.empty()) return token_from_file(token_file, "--token-file");
  if (const char* t = std::getenv("SPT_TOKEN"); t && *t) return trim(t);
  if (const char* f = std::getenv("SPT_TOKEN_FILE"); f && *f) return token_from_file(f, "$SPT_TOKEN_FILE");
  return "";
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& address, const TlsOptions& tls) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // gRPC's defaults back off up to two minutes between connection attempts;
  // a worker must find a restarted coordinator within seconds.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // gRPC also takes MIN_RECONNECT_BACKOFF as the time one connection attempt
  // (TCP, TLS, HTTP/2 SETTINGS) may take. 100 ms failed every call over a
  // 100 ms one-way link (issue 12). A refused connect (server down) still
  // fails at once and is retried on the backoff above; only a handshake
  // that hangs (a stopped server, a black-holed link) waits this long.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kConnectTimeoutMs);
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::CreateCustomChannel(address, channel_credentials(tls), args);
}

void prepare(grpc::ClientContext& ctx, const std::string& token, double timeout_s, bool wait_for_ready) {
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_wait_for_ready(wait_for_ready);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}

const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::UNKNOWN: return "UNKNOWN";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::INTERNAL: return "INTERNAL";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN_CODE";
  }
}

std::string status_text(const grpc::Status& s) {
  std::string out = code_name(s.error_code());
  if (!s.error_message().empty()) out += ": " + s.error_message();
  return out;
}

v1::Artifact put_blob(const BlobWriterFactory& open, const std::string& token, const std::string& path,
                      const std::string& name) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw std::runtime_error("cannot upload " + path + ": not a readable regular file");
  const std::string sha = sha256_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);

  grpc::ClientContext ctx;
  prepare(ctx, token, kBlobTimeoutS);
  v1::PutBlobResponse resp;
  auto writer = open(&ctx, &resp);
  v1::BlobChunk chunk;
  chunk.set_sha256(sha);
  chunk.set_name(name.empty() ? base_name(path) : name);
  chunk.set_total_size(static_cast<int64_t>(st.st_size));
  std::string buf(kChunk, '\0');
  bool first = true, write_ok = true;
  while (write_ok) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<size_t>(in.gcount());
    if (got == 0 && !first) break;
    chunk.set_data(buf.data(), got);
    write_ok = writer->Write(chunk);  // false: the server ended the stream (its status says why)
    chunk.Clear();
    first = false;
    if (got < buf.size()) break;
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) throw RpcError("upload of " + path + " failed", s);
  return resp.artifact();
}

v1::Artifact fetch_blob(const BlobReaderFactory& open, const std::string& token, const v1::FetchBlobRequest& req,
                        const std::function<std::string(const v1::BlobChunk&)>& choose_path,
                        std::string* path_out) {
  const std::string what = req.sha256().empty() ? "'" + req.name() + "'" : req.sha256();
  grpc::ClientContext ctx;
  prepare(ctx, token, kBlobTimeoutS);
  auto reader = open(&ctx, req);
  v1::BlobChunk chunk;
  v1::Artifact art;
  std::string path, part;
  std::ofstream out;
  Sha256 hasher;
  int64_t size = 0;
  bool first = true, skipped = false;
  while (reader->Read(&chunk)) {
    if (first) {
      first = false;
      art.set_sha256(chunk.sha256());
      art.set_name(chunk.name().empty() ? req.name() : chunk.name());
      try {
        path = choose_path(chunk);
      } catch (...) {
        ctx.TryCancel();
        reader->Finish();
        throw;
      }
      if (path.empty()) {  // caller has it already
        skipped = true;
        ctx.TryCancel();
        break;
      }
      part = path + ".part";
      out.open(part, std::ios::binary | std::ios::trunc);
      if (!out) {
        ctx.TryCancel();
        reader->Finish();
        throw std::runtime_error("cannot write " + part);
      }
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    hasher.update(chunk.data());
    size += static_cast<int64_t>(chunk.data().size());
  }
  grpc::Status s = reader->Finish();
  if (skipped) {
    if (path_out) *path_out = "";
    return art;
  }
  if (!s.ok()) {
    if (!part.empty()) std::remove(part.c_str());
    throw RpcError("download of " + what + " failed", s);
  }
  if (first) throw std::runtime_error("download of " + what + ": the server sent no data");
  out.close();
  if (!out) {
    std::remove(part.c_str());
    throw std::runtime_error("short write to " + part);
  }
  const std::string got = hasher.hex();
  if (!art.sha256().empty() && art.sha256() != got) {
    std::remove(part.c_str());
    throw std::runtime_error("download of " + what + " is corrupt: sha256 " + got + " != announced " + art.sha256());
  }
  art.set_sha256(got);
  art.set_size(size);
  if (std::rename(part.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + part + " to " + path);
  if (path_out) *path_out = path;
  return art;
}

}  // namespace spt::rpc
