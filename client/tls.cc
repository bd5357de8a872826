// TLS half of connection.h: channel credentials from PEM files, and the
// OpenSSL probe that turns a bare UNAVAILABLE into a cause a researcher can
// act on (gRPC reports failed handshakes only as "failed to connect").
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "connection.h"

namespace spt::rpc {

namespace {

std::string pem_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || in.bad()) throw std::runtime_error(std::string("cannot read ") + what + " " + path);
  if (ss.str().find("-----BEGIN ") == std::string::npos)
    throw std::runtime_error(std::string(what) + " " + path + " holds no PEM data");
  return ss.str();
}

// host and port of "host:port", "[v6]:port", "dns:///host:port", "ipv4:a.b.c.d:port".
bool split_address(std::string a, std::string* host, std::string* port) {
  for (const char* p : {"dns:///", "dns:", "ipv4:", "ipv6:"})
    if (a.rfind(p, 0) == 0) a = a.substr(std::string(p).size());
  if (!a.empty() && a[0] == '[') {
    const auto close = a.find("]:");
    if (close == std::string::npos) return false;
    *host = a.substr(1, close - 1);
    *port = a.substr(close + 2);
  } else {
    const auto colon = a.rfind(':');
    if (colon == std::string::npos || a.find(':') != colon) return false;
    *host = a.substr(0, colon);
    *port = a.substr(colon + 1);
  }
  return !host->empty() && !port->empty();
}

// A connected TCP socket with send/receive timeouts, or -1.
int connect_tcp(const std::string& host, const std::string& port, double timeout_s) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  const int ms = static_cast<int>(timeout_s * 1000);
  for (addrinfo* r = res; r && fd < 0; r = r->ai_next) {
    fd = socket(r->ai_family, r->ai_socktype | SOCK_NONBLOCK, r->ai_protocol);
    if (fd < 0) continue;
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    const bool ok = (connect(fd, r->ai_addr, r->ai_addrlen) == 0 ||
                     (errno == EINPROGRESS && poll(&p, 1, ms) == 1 &&
                      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0));
    if (!ok) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

std::string ssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    out = r ? r : "unknown";
  }
  return out.empty() ? "connection closed" : out;
}

bool is_ip(const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

void tls_from_env(TlsOptions& tls) {
  auto fill = [](std::string& field, const char* var) {
    if (const char* v = std::getenv(var); field.empty() && v && *v) field = v;
  };
  fill(tls.ca_file, "SPT_TLS_CA");
  fill(tls.cert_file, "SPT_TLS_CERT");
  fill(tls.key_file, "SPT_TLS_KEY");
  fill(tls.server_name, "SPT_TLS_SERVER_NAME");
}

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsOptions& tls) {
  if (!tls.enabled()) {
    if (!tls.cert_file.empty() || !tls.key_file.empty())
      throw std::runtime_error("a client certificate (--tls-cert/--tls-key) needs --tls-ca too (the CA that signed "
                               "the server's certificate)");
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert_file.empty() != tls.key_file.empty())
    throw std::runtime_error("--tls-cert and --tls-key go together (the client certificate and its key)");
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = pem_file(tls.ca_file, "TLS CA file (--tls-ca / SPT_TLS_CA)");
  if (!tls.cert_file.empty()) {
    o.pem_cert_chain = pem_file(tls.cert_file, "client certificate (--tls-cert / SPT_TLS_CERT)");
    o.pem_private_key = pem_file(tls.key_file, "client key (--tls-key / SPT_TLS_KEY)");
  }
  return grpc::SslCredentials(o);
}

std::string diagnose_tls(const std::string& address, const TlsOptions& tls, double timeout_s) {
  std::string host, port;
  if (!split_address(address, &host, &port)) return "";
  const int fd = connect_tcp(host, port, timeout_s);
  if (fd < 0) return "";  // not a TLS problem: nothing listens there
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(ctx ? SSL_new(ctx.get()) : nullptr, SSL_free);
  if (!ssl) {
    close(fd);
    return "";
  }
  const std::string name = tls.server_name.empty() ? host : tls.server_name;
  if (tls.enabled()) {
    SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr);
    if (!tls.cert_file.empty()) {
      SSL_use_certificate_chain_file(ssl.get(), tls.cert_file.c_str());
      SSL_use_PrivateKey_file(ssl.get(), tls.key_file.c_str(), SSL_FILETYPE_PEM);
    }
    X509_VERIFY_PARAM* vp = SSL_get0_param(ssl.get());
    if (is_ip(name))
      X509_VERIFY_PARAM_set1_ip_asc(vp, name.c_str());
    else
      X509_VERIFY_PARAM_set1_host(vp, name.c_str(), 0);
  }
  if (!is_ip(name)) SSL_set_tlsext_host_name(ssl.get(), name.c_str());
  static const unsigned char kH2[] = {2, 'h', '2'};  // gRPC servers speak HTTP/2 only
  SSL_set_alpn_protos(ssl.get(), kH2, sizeof kH2);
  bool cert_requested = false;  // the server asked for a client certificate we do not have
  SSL_set_app_data(ssl.get(), &cert_requested);
  SSL_CTX_set_client_cert_cb(ctx.get(), [](SSL* s, X509**, EVP_PKEY**) {
    *static_cast<bool*>(SSL_get_app_data(s)) = true;
    return 0;
  });
  SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);  // verify, but look at the result ourselves
  SSL_set_fd(ssl.get(), fd);
  ERR_clear_error();
  const bool shook = SSL_connect(ssl.get()) == 1;
  std::string out;
  if (!shook) {
    const std::string why = ssl_reason();
    if (tls.enabled() && why.find("certificate") != std::string::npos)
      out = "the server at " + address + " refused this client's certificate (" + why +
            "): it was started with --tls-client-ca; pass --tls-cert/--tls-key (SPT_TLS_CERT/SPT_TLS_KEY) for a "
            "certificate signed by that CA";
    else if (tls.enabled())
      out = "the server at " + address + " does not complete a TLS handshake (" + why +
            "): it may be serving plaintext; drop --tls-ca / SPT_TLS_CA, or restart it with --tls-cert/--tls-key";
  } else if (!tls.enabled()) {
    out = "the server at " + address +
          " speaks TLS: pass --tls-ca FILE (or set SPT_TLS_CA) with the CA that signed its certificate (ca.pem from "
          "spt-certs.sh)";
  } else if (const long v = SSL_get_verify_result(ssl.get()); v != X509_V_OK) {
    const std::string why = X509_verify_cert_error_string(v);
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
      out = "the server's certificate is not valid for the name '" + name + "' (" + why +
            "): pass --tls-server-name (SPT_TLS_SERVER_NAME) with a name it holds, or remake it with "
            "spt-certs.sh OUTDIR " + name;
    else
      out = "the server's certificate cannot be verified with the CA file " + tls.ca_file + " (" + why +
            "): is that the CA that signed the server's certificate (ca.pem next to it from spt-certs.sh)?";
  } else {
    // TLS 1.3 checks the client certificate after the handshake: a server
    // that refuses it closes the connection instead of sending HTTP/2
    // SETTINGS (a read that times out means it is merely slow).
    char b;
    errno = 0;
    const int got = SSL_peek(ssl.get(), &b, 1);
    const int err = got > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl.get(), got);
    const bool closed = got <= 0 && err != SSL_ERROR_WANT_READ && errno != EAGAIN && errno != EWOULDBLOCK;
    ERR_clear_error();
    if (closed && !tls.cert_file.empty())
      out = "the server at " + address + " closed the connection after the handshake: it refused the client "
            "certificate " + tls.cert_file + " (it must be signed by the CA given to the server with --tls-client-ca)";
    else if (closed && cert_requested)
      out = "the server at " + address + " requires a client certificate (it was started with --tls-client-ca): "
            "pass --tls-cert FILE --tls-key FILE (or set SPT_TLS_CERT/SPT_TLS_KEY)";
  }
  SSL_shutdown(ssl.get());
  close(fd);
  return out;
}

}  // namespace spt::rpc
