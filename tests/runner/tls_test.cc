// TLS for the pool (issue 12). In process: which listen addresses count as
// loopback, the plaintext rule, certificate checks. Through real processes
// on loopback, with certificates made by scripts/spt-certs.sh at test time:
// a TLS pool runs selftest end to end (server, worker, spt-client); a client
// without the CA, with the wrong CA, or without a required client
// certificate fails with a message naming the cause; a non-loopback listen
// without TLS is refused unless --insecure.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness.h"
#include "server.h"
#include "tls.h"

namespace spt::test {
namespace {

using server::check_listen_policy;
using server::is_loopback_listen;

TEST(TlsListen, LoopbackAddresses) {
  for (const char* a : {"127.0.0.1:7070", "127.5.6.7:1", "127.0.0.1", "localhost:7070", "LOCALHOST", "[::1]:7070",
                        "::1", "[::ffff:127.0.0.1]:9", "unix:/tmp/spt.sock"})
    EXPECT_TRUE(is_loopback_listen(a)) << a;
  for (const char* a : {"0.0.0.0:7070", "[::]:7070", ":7070", "10.0.0.1:7070", "128.0.0.1:1", "[::2]:1",
                        "example.org:7070", "localhost.example.org:7070", "[::ffff:10.0.0.1]:9", ""})
    EXPECT_FALSE(is_loopback_listen(a)) << a;
}

TEST(TlsListen, PlaintextOnlyOnLoopbackUnlessInsecure) {
  EXPECT_NO_THROW(check_listen_policy("127.0.0.1:7070", false, false));
  EXPECT_NO_THROW(check_listen_policy("0.0.0.0:7070", true, false));
  EXPECT_NO_THROW(check_listen_policy("0.0.0.0:7070", false, true));
  try {
    check_listen_policy("0.0.0.0:7070", false, false);
    ADD_FAILURE() << "plaintext on 0.0.0.0 accepted";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("0.0.0.0:7070"), std::string::npos) << m;
    EXPECT_NE(m.find("--tls-cert"), std::string::npos) << m;
    EXPECT_NE(m.find("--insecure"), std::string::npos) << m;
  }
}

// In process: Server::start rejects bad files before opening the store.
TEST(TlsListen, ServerChecksItsFiles) {
  TempDir d;
  const LabCerts c = make_lab_certs(d.file("certs"));
  namespace fs = std::filesystem;
  for (const auto& key : {c.ca_key, c.server_key, c.client_key})  // spt-certs.sh: private keys 0600
    EXPECT_EQ(fs::status(key).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write) << key;
  auto start_with = [&](const std::string& cert, const std::string& key) -> std::string {
    server::ServerConfig cfg;
    cfg.listen = "127.0.0.1:0";
    cfg.data_dir = d.file("data");
    cfg.token = "t";
    cfg.tls_cert = cert;
    cfg.tls_key = key;
    try {
      server::Server::start(cfg);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(start_with(c.server_cert, c.server_key), "");
  EXPECT_NE(start_with(c.server_cert, c.client_key).find("does not belong to the certificate"), std::string::npos);
  EXPECT_NE(start_with(c.server_cert, d.file("missing.key")).find("cannot read"), std::string::npos);
  EXPECT_NE(start_with(c.server_key, c.server_key).find("not a PEM certificate"), std::string::npos);
  EXPECT_NE(start_with(c.server_cert, "").find("both --tls-cert and --tls-key"), std::string::npos);
}

TEST(TlsServer, RefusesPlaintextOffLoopbackUnlessInsecure) {
  TempDir d;
  const std::string listen = "0.0.0.0:" + std::to_string(free_port());
  const std::vector<std::string> base = {server_bin(), "--listen", listen, "--data-dir", d.file("data")};
  const RunResult refused = run(base, {{"SPT_TOKEN", "t"}}, 30);
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("--tls-cert"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--insecure"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(d.file("data"))) << "refused before creating anything";

  // A mismatched key is an error at start too (exit 1, naming the file).
  const LabCerts c = make_lab_certs(d.file("certs"));
  auto bad = base;
  bad.insert(bad.end(), {"--tls-cert", c.server_cert, "--tls-key", c.client_key});
  const RunResult mismatched = run(bad, {{"SPT_TOKEN", "t"}}, 30);
  EXPECT_EQ(mismatched.code, 1);
  EXPECT_NE(mismatched.err.find(c.client_key + " does not belong"), std::string::npos) << mismatched.err;

  auto insecure = base;
  insecure.push_back("--insecure");
  Process p(insecure, d.file("server.log"), {{"SPT_TOKEN", "t"}});
  EXPECT_TRUE(wait_until([&] { return p.log().find("listening on") != std::string::npos || !p.running(); }, 30));
  EXPECT_TRUE(p.running()) << p.log();
  EXPECT_NE(p.log().find("(plaintext)"), std::string::npos) << p.log();
}

// spt-client with the lab's TLS flags and a token (the submitter's unless given).
RunResult client(Server& s, const rpc::TlsOptions& tls, std::vector<std::string> args, std::string token = "") {
  std::vector<std::string> a = {client_bin(), "--server", s.address(), "--timeout-s", "5"};
  for (const auto& f : tls_flags(tls)) a.push_back(f);
  a.insert(a.end(), args.begin(), args.end());
  return run(a, {{"SPT_TOKEN", token.empty() ? s.submitter_token() : token}}, 60);
}

// The CI check of issue 12: a TLS pool with separate worker and submitter
// tokens (the worker holds only the worker token, the researcher only the
// submitter token).
TEST(TlsPool, SelftestEndToEndOverTls) {
  TempDir d;
  const LabCerts c = make_lab_certs(d.file("certs"));
  ServerOptions so;
  c.apply(so);
  Server s(d, so);
  ASSERT_TRUE(s.start()) << s.process()->log();
  EXPECT_NE(s.process()->log().find("(TLS)"), std::string::npos) << s.process()->log();
  WorkerOptions wo{.name = "tls-w", .slots = 2};
  wo.extra = tls_flags(c.client());
  auto w = start_worker(d, s.address(), s.worker_token(), wo);

  const RunResult as_worker = client(s, c.client(), {"submit", "selftest", "--param", "n=3"}, s.worker_token());
  EXPECT_EQ(as_worker.code, 1) << as_worker.out;
  EXPECT_NE(as_worker.err.find("PERMISSION_DENIED"), std::string::npos) << as_worker.err;

  const RunResult sub =
      client(s, c.client(), {"submit", "selftest", "--param", "n=40", "--param", "work=10", "--wait"});
  ASSERT_EQ(sub.code, 0) << sub.err << "\nworker log:\n" << w->log();
  const auto at = sub.out.find("as experiment #");
  ASSERT_NE(at, std::string::npos) << sub.out;
  expect_complete(s, std::stoll(sub.out.substr(at + 15)), 40, 60);
  ASSERT_TRUE(worker_named(s, "tls-w").has_value());

  // The same through the environment (SPT_TLS_CA), as deploy recipes do.
  const RunResult env = run({client_bin(), "--server", s.address(), "status"},
                            {{"SPT_TOKEN", s.submitter_token()}, {"SPT_TLS_CA", c.ca}}, 60);
  EXPECT_EQ(env.code, 0) << env.err;
  // And through the client's config file (tls_ca = ...).
  const std::string cfg = d.file("spt-config");
  std::ofstream(cfg) << "server = " << s.address() << "\ntls_ca = " << c.ca << "\n";
  const RunResult conf = run({client_bin(), "status"}, {{"SPT_CONFIG", cfg}, {"SPT_TOKEN", s.submitter_token()}}, 60);
  EXPECT_EQ(conf.code, 0) << conf.err;
}

TEST(TlsPool, MissingOrWrongCaIsExplained) {
  TempDir d;
  const LabCerts c = make_lab_certs(d.file("certs"));
  const LabCerts other = make_lab_certs(d.file("other"));  // a different CA
  ServerOptions so;
  c.apply(so);
  Server s(d, so);
  ASSERT_TRUE(s.start()) << s.process()->log();

  const RunResult none = client(s, {}, {"status"});
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("speaks TLS: pass --tls-ca"), std::string::npos) << none.err;

  const RunResult wrong = client(s, other.client(), {"status"});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("cannot be verified with the CA file " + other.ca), std::string::npos) << wrong.err;

  rpc::TlsOptions misnamed = c.client();
  misnamed.server_name = "coordinator.elsewhere";
  const RunResult name = client(s, misnamed, {"status"});
  EXPECT_EQ(name.code, 1);
  EXPECT_NE(name.err.find("not valid for the name 'coordinator.elsewhere'"), std::string::npos) << name.err;

  // A worker with the wrong CA says so in its log (and keeps retrying).
  WorkerOptions wo{.name = "wrong-ca"};
  wo.extra = tls_flags(other.client());
  auto w = start_worker(d, s.address(), s.worker_token(), wo);
  EXPECT_TRUE(wait_until([&] { return w->log().find("CA file " + other.ca) != std::string::npos; }, 30))
      << w->log();
  EXPECT_TRUE(w->running());

  // A CA given to a plaintext server: the handshake failure is named.
  TempDir d2;
  Server plain(d2);
  ASSERT_TRUE(plain.start()) << plain.process()->log();
  const RunResult tls_to_plain = client(plain, c.client(), {"status"});
  EXPECT_EQ(tls_to_plain.code, 1);
  EXPECT_NE(tls_to_plain.err.find("does not complete a TLS handshake"), std::string::npos) << tls_to_plain.err;
}

TEST(TlsPool, ClientCertificatesRequiredWithClientCa) {
  TempDir d;
  const LabCerts c = make_lab_certs(d.file("certs"));
  const LabCerts other = make_lab_certs(d.file("other"));
  ServerOptions so;
  c.apply(so, /*mtls=*/true);
  Server s(d, so);
  ASSERT_TRUE(s.start()) << s.process()->log();
  EXPECT_NE(s.process()->log().find("client certificates required"), std::string::npos);

  const RunResult no_cert = client(s, c.client(false), {"status"});
  EXPECT_EQ(no_cert.code, 1);
  EXPECT_NE(no_cert.err.find("requires a client certificate"), std::string::npos) << no_cert.err;

  // A certificate from another CA (trusting the right server CA) is refused.
  rpc::TlsOptions foreign = c.client(false);
  foreign.cert_file = other.client_cert;
  foreign.key_file = other.client_key;
  const RunResult refused = client(s, foreign, {"status"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("refused the client certificate " + other.client_cert), std::string::npos) << refused.err;

  // With the lab's client certificate, a worker and the client work.
  WorkerOptions wo{.name = "mtls-w"};
  wo.extra = tls_flags(c.client(true));
  auto w = start_worker(d, s.address(), s.worker_token(), wo);
  const int64_t id = submit(s, "selftest", {{"n", "10"}, {"work", "10"}});
  expect_complete(s, id, 10, 60);
  const RunResult ok = client(s, c.client(true), {"status"});
  EXPECT_EQ(ok.code, 0) << ok.err;
}

}  // namespace
}  // namespace spt::test
