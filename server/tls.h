#pragma once
// Transport security for spt-server (issue 12): which listen addresses only
// this machine can reach, and the gRPC server credentials built from PEM
// files. Torch-free, stateless; every function is thread-safe.
#include <memory>
#include <string>

namespace grpc {
class ServerCredentials;
}

namespace spt::server {

// True when the address `listen` is reachable from this machine only:
// host 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or "localhost", with or
// without a port ("host:port", "[v6]:port", "host"), and unix: sockets.
// Wildcards (0.0.0.0, [::], ":7070"), other IPs and other host names are
// not (a name may resolve to anything).
bool is_loopback_listen(const std::string& listen);

struct ServerTls {
  std::string cert_file;       // PEM certificate (chain); "" = plaintext
  std::string key_file;        // PEM private key of cert_file
  std::string client_ca_file;  // PEM CA bundle; set = require client certificates (mTLS)
  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !client_ca_file.empty(); }
};

// Reads and checks the files (readable, PEM, key matches certificate, not
// expired) and builds the credentials. Throws std::runtime_error naming the
// file and the problem. Plaintext (not enabled()) gives insecure credentials.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const ServerTls& tls);

// Throws std::runtime_error, naming --tls-cert/--tls-key and --insecure as
// the two ways out, when plaintext would be served on a non-loopback address.
void check_listen_policy(const std::string& listen, bool tls, bool insecure);

}  // namespace spt::server
