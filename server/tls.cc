#include "tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace spt::server {

namespace {

// The host part of "host:port", "[v6]:port", "host" or a bare IPv6 literal.
std::string listen_host(const std::string& listen) {
  if (!listen.empty() && listen[0] == '[') {
    const auto close = listen.find(']');
    return close == std::string::npos ? listen : listen.substr(1, close - 1);
  }
  if (std::count(listen.begin(), listen.end(), ':') > 1) return listen;  // bare IPv6
  return listen.substr(0, listen.find(':'));
}

std::string slurp(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || in.bad()) throw std::runtime_error(std::string(flag) + " " + path + ": cannot read the file");
  if (ss.str().empty()) throw std::runtime_error(std::string(flag) + " " + path + ": the file is empty");
  return ss.str();
}

std::string ssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data found";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

BioPtr bio(const std::string& pem) { return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free); }

// The first certificate of a PEM file; throws naming the file.
X509Ptr first_cert(const std::string& pem, const std::string& path, const char* flag) {
  auto b = bio(pem);
  X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr), X509_free);
  if (!x)
    throw std::runtime_error(std::string(flag) + " " + path + ": not a PEM certificate (" + ssl_error() + ")");
  if (X509_cmp_current_time(X509_get0_notAfter(x.get())) < 0)
    throw std::runtime_error(std::string(flag) + " " + path + ": the certificate has expired");
  return x;
}

}  // namespace

bool is_loopback_listen(const std::string& listen) {
  if (listen.rfind("unix:", 0) == 0 || listen.rfind("unix-abstract:", 0) == 0) return true;
  std::string host = listen_host(listen);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  if (host == "localhost" || host == "localhost.") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;  // wildcard, a routable IP or a name that may resolve anywhere
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const ServerTls& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  if (tls.cert_file.empty() || tls.key_file.empty())
    throw std::runtime_error("TLS needs both --tls-cert and --tls-key (--tls-client-ca only adds client checks)");
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  pair.cert_chain = slurp(tls.cert_file, "--tls-cert");
  pair.private_key = slurp(tls.key_file, "--tls-key");
  const X509Ptr cert = first_cert(pair.cert_chain, tls.cert_file, "--tls-cert");
  auto kb = bio(pair.private_key);
  const KeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key)
    throw std::runtime_error("--tls-key " + tls.key_file + ": not an unencrypted PEM private key (" + ssl_error() +
                             ")");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("--tls-key " + tls.key_file + " does not belong to the certificate in --tls-cert " +
                             tls.cert_file);
  }
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!tls.client_ca_file.empty()) {
    opts.pem_root_certs = slurp(tls.client_ca_file, "--tls-client-ca");
    first_cert(opts.pem_root_certs, tls.client_ca_file, "--tls-client-ca");
    opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(opts);
}

void check_listen_policy(const std::string& listen, bool tls, bool insecure) {
  if (tls || insecure || is_loopback_listen(listen)) return;
  throw std::runtime_error(
      "refusing to serve " + listen +
      " without TLS: other machines could read the bearer token and all traffic. Either give "
      "--tls-cert FILE --tls-key FILE (make them with spt-certs.sh OUTDIR HOST), or pass --insecure if this "
      "network is trusted (or listen on 127.0.0.1)");
}

}  // namespace spt::server
