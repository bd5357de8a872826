// Issue 11 through real processes: bad submissions refused at the door, a
// permanent error failing a job once with the grouped summary in
// `status --json`, `watch` surviving a coordinator restart, a second server
// on the same port failing, and the CLI conventions (exit 2 on usage errors,
// did-you-mean, --version, help sections, default port, config file
// precedence, shell completion, `results --out` quiet on stdout).
#include <signal.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

namespace spt::test {
namespace {

namespace fs = std::filesystem;

// A GPT-2-shaped folder whose config the client reads and whose weights are
// not a safetensors file (the worker's load fails however often it tries).
std::string bad_model(const TempDir& dir, const std::string& name, int n_ctx) {
  const fs::path d = fs::path(dir.path()) / name;
  fs::create_directories(d);
  std::ofstream(d / "config.json") << nlohmann::json{{"model_type", "gpt2"}, {"n_layer", 1},     {"n_head", 2},
                                                    {"n_embd", 8},         {"n_positions", n_ctx},
                                                    {"vocab_size", 50257}}
                                          .dump();
  std::ofstream(d / "model.safetensors") << "these bytes are not a safetensors file";
  return d.string();
}

class CliDoor : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    server_ = new Server(*dir_);
    ASSERT_TRUE(server_->start()) << server_->process()->log();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static std::map<std::string, std::string> env() {
    return {{"SPT_SERVER", server_->address()}, {"SPT_TOKEN_FILE", server_->token_file()}};
  }
  static RunResult client(std::vector<std::string> args, std::map<std::string, std::string> extra = {}) {
    args.insert(args.begin(), client_bin());
    auto e = env();
    for (auto& [k, v] : extra) e[k] = v;
    return run(args, e);
  }
  static TempDir* dir_;
  static Server* server_;
};
TempDir* CliDoor::dir_ = nullptr;
Server* CliDoor::server_ = nullptr;

TEST_F(CliDoor, ChunkLongerThanTheModelsContextIsRefused) {
  const std::string m = bad_model(*dir_, "ctx32", 32);
  const auto r = client({"submit", "exp10", "--parts", "a", "--model", m, "--chunk-len", "64", "--dataset",
                         std::string(SPT_TEST_DATA) + "/tiny_wiki.raw", "--param", "exp3ef=none"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("chunk_len=64 exceeds"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("context of 32"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("submitted"), std::string::npos) << r.out;
  // Nothing was created on the server.
  const auto ls = client({"ls", "--json"});
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_TRUE(nlohmann::json::parse(ls.out)["experiments"].empty()) << ls.out;
}

TEST_F(CliDoor, MissingLocalInputsAreRefused) {
  auto r = client({"submit", "exp10", "--model", "./no/such/model"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no such folder"), std::string::npos) << r.err;
  r = client({"submit", "exp10", "--dataset", "/no/such/wiki.valid.raw"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no such file or folder"), std::string::npos) << r.err;
  r = client({"submit", "exp99"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("exp99"), std::string::npos) << r.err;
}

TEST_F(CliDoor, PermanentErrorFailsOnceWithGroupedSummary) {
  const std::string m = bad_model(*dir_, "garbage", 1024);
  const auto sub = client({"submit", "exp10", "--parts", "a", "--model", m, "--chunk-len", "16", "--max-tokens",
                           "64", "--dataset", std::string(SPT_TEST_DATA) + "/tiny_wiki.raw", "--param",
                           "exp3ef=none", "--json"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  const int64_t id = nlohmann::json::parse(sub.out)["experiment_id"];
  auto w = start_worker(*dir_, server_->address(), server_->token(), {.name = "door-w", .batch = 64});
  const auto st = wait_finished(*server_, id, 120);
  EXPECT_EQ(st.state(), "failed") << w->log();

  const auto r = client({"status", std::to_string(id), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = nlohmann::json::parse(r.out)["experiments"][0];
  ASSERT_GE(e["failures"].size(), 1u) << e.dump(2);
  const auto& top = e["failures"][0];
  EXPECT_NE(top["error"].get<std::string>().find(m), std::string::npos) << top.dump();
  EXPECT_GE(top["count"].get<int64_t>(), 1);
  EXPECT_EQ(e["retries"], 0) << "a permanent error must not be retried: " << e.dump(2);
  int64_t own = 0;
  for (const auto& g : e["failures"]) own += g["count"].get<int64_t>();
  EXPECT_EQ(own + e["failed_by_dependency"].get<int64_t>(), e["counts"]["failed"].get<int64_t>()) << e.dump(2);

  // The example job failed on its first attempt, and `logs` shows why.
  const std::string job = top["example_job"];
  const auto lg = client({"logs", std::to_string(id) + ":" + job, "--json"});
  ASSERT_EQ(lg.code, 0) << lg.err;
  const auto lj = nlohmann::json::parse(lg.out);
  EXPECT_EQ(lj["job"]["attempt"], 1) << lg.out;
  EXPECT_NE(lg.out.find("not retryable"), std::string::npos) << lg.out;

  // The human dashboard and `results` carry the same summary.
  const auto human = client({"status", std::to_string(id)});
  EXPECT_NE(human.out.find("see: spt-client logs " + std::to_string(id) + ":" + job), std::string::npos)
      << human.out;
  const auto res = client({"results", std::to_string(id)});
  EXPECT_NE(res.out.find("failures:"), std::string::npos) << res.out;
  EXPECT_NE(res.out.find("not run: an upstream job failed"), std::string::npos) << res.out;
}

TEST_F(CliDoor, ResultsOutWritesFilesAndNoJson) {
  const auto sub = client({"submit", "selftest", "--param", "n=5", "--json"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  const int64_t id = nlohmann::json::parse(sub.out)["experiment_id"];
  auto w = start_worker(*dir_, server_->address(), server_->token(), {.name = "out-w"});
  ASSERT_EQ(wait_finished(*server_, id, 60).state(), "done");
  const std::string out = dir_->file("res");
  const auto r = client({"results", std::to_string(id), "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out + "/results.json"));
  EXPECT_EQ(r.out.find('{'), std::string::npos) << "JSON on stdout:\n" << r.out;
  EXPECT_NE(r.out.find("results in " + out), std::string::npos) << r.out;
}

TEST_F(CliDoor, WatchSurvivesACoordinatorRestart) {
  const auto sub = client({"submit", "selftest", "--param", "n=20", "--json"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  const int64_t id = nlohmann::json::parse(sub.out)["experiment_id"];
  auto e = env();
  Process watch({client_bin(), "watch", std::to_string(id), "--interval", "0.2", "--json"}, dir_->file("watch.log"),
                e);
  ASSERT_TRUE(wait_until([&] { return watch.log().find("\"state\"") != std::string::npos; }, 20));
  server_->kill9();
  ASSERT_TRUE(wait_until([&] { return watch.log().find("server unavailable") != std::string::npos; }, 20))
      << watch.log();
  EXPECT_TRUE(watch.running()) << watch.log();
  ASSERT_TRUE(server_->start()) << server_->process()->log();
  auto w = start_worker(*dir_, server_->address(), server_->token(), {.name = "restart-w"});
  const auto code = watch.wait(60);
  ASSERT_TRUE(code.has_value()) << watch.log();
  EXPECT_EQ(*code, 0) << watch.log();
  EXPECT_NE(watch.log().find("server is back"), std::string::npos) << watch.log();
  // NDJSON: every stdout line that is not a notice is one JSON document.
  std::istringstream lines(watch.log());
  int docs = 0;
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') {
      EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << line;
      ++docs;
    }
  EXPECT_GE(docs, 2);
}

TEST_F(CliDoor, SecondServerOnTheSamePortFails) {
  TempDir other;
  const auto r = run({server_bin(), "--listen", server_->address(), "--data-dir", other.file("data"), "--db",
                      other.file("spt.db")},
                     {{"SPT_TOKEN", "x"}}, 30);
  EXPECT_NE(r.code, 0) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("address in use"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(server_->process()->running());
}

TEST_F(CliDoor, UsageErrorsExitTwoWithDidYouMean) {
  auto r = client({"stauts"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("'stauts' is not a command"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\tstatus"), std::string::npos) << r.err;
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"status", "--bogus"}, {"submit"}, {"watch", "--interval", "-1"}, {},
        {"completion", "fish"}, {"logs", "a:"}}) {
    r = client(bad);
    EXPECT_EQ(r.code, 2) << testing::PrintToString(bad) << ": " << r.err;
  }
  EXPECT_EQ(run({server_bin(), "--bogus"}).code, 2);
  EXPECT_EQ(run({worker_bin(), "--slots", "0"}).code, 2);
}

// A device this build cannot compute on is refused at start (exit 2) with
// the reason, instead of registering as "cuda (cuda)". cuda:99 is missing
// on any machine; MPS only exists on Apple silicon.
TEST_F(CliDoor, WorkerRefusesADeviceItCannotUse) {
  for (const auto& [device, why] : std::vector<std::pair<std::string, std::string>>{{"cuda:99", "CUDA"}, {"mps", "MPS"}}) {
#ifdef __APPLE__
    if (device == "mps") continue;
#endif
    const auto r = run({worker_bin(), "--device", device}, env());
    EXPECT_EQ(r.code, 2) << device << ": " << r.out << r.err;
    EXPECT_NE((r.out + r.err).find(why), std::string::npos) << device << ": " << r.out << r.err;
  }
}

TEST_F(CliDoor, VersionAndHelpEverywhere) {
  for (const auto& [bin, name] : std::vector<std::pair<std::string, std::string>>{
           {client_bin(), "spt-client"}, {server_bin(), "spt-server"}, {worker_bin(), "spt-worker"}}) {
    const auto v = run({bin, "--version"});
    EXPECT_EQ(v.code, 0);
    EXPECT_EQ(v.out.rfind(name + " ", 0), 0u) << v.out;
    const auto h = run({bin, "--help"});
    EXPECT_EQ(h.code, 0);
    EXPECT_NE(h.out.find("EXAMPLES:"), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("ENVIRONMENT:"), std::string::npos) << h.out;
  }
  for (const char* sub : {"submit", "status", "watch", "results", "logs", "ls", "workers", "completion"}) {
    const auto h = client({sub, "--help"});
    EXPECT_EQ(h.code, 0) << sub;
    EXPECT_NE(h.out.find("EXAMPLES:"), std::string::npos) << sub << ": " << h.out;
  }
}

TEST_F(CliDoor, DefaultPortAndConfigFilePrecedence) {
  // A bare host dials the default port, not port 0.
  auto r = run({client_bin(), "--server", "127.0.0.1", "--timeout-s", "1", "status"}, {{"SPT_TOKEN", "x"}});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("127.0.0.1:7070"), std::string::npos) << r.err;

  // The file alone is enough ...
  const std::string cfg = dir_->file("client.conf");
  std::ofstream(cfg) << "server = " << server_->address() << "\ntoken_file = " << server_->token_file() << "\n";
  r = run({client_bin(), "ls"}, {{"SPT_CONFIG", cfg}});
  EXPECT_EQ(r.code, 0) << r.err;
  // ... the environment beats it ...
  r = run({client_bin(), "--timeout-s", "1", "ls"}, {{"SPT_CONFIG", cfg}, {"SPT_SERVER", "127.0.0.1:1"}});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  // ... and a flag beats the environment.
  r = run({client_bin(), "--server", server_->address(), "ls"}, {{"SPT_CONFIG", cfg}, {"SPT_SERVER", "127.0.0.1:1"}});
  EXPECT_EQ(r.code, 0) << r.err;
  // A broken file is a usage error naming the line.
  std::ofstream(cfg) << "sever = x\n";
  r = run({client_bin(), "ls"}, {{"SPT_CONFIG", cfg}});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(cfg + ":1: unknown key 'sever'"), std::string::npos) << r.err;
}

TEST_F(CliDoor, CompletionScriptsParse) {
  const std::string script = dir_->file("spt.bash");
  auto r = client({"completion", "bash"});
  ASSERT_EQ(r.code, 0);
  std::ofstream(script) << r.out;
  EXPECT_NE(r.out.find("complete -F"), std::string::npos);
  EXPECT_NE(r.out.find("submit"), std::string::npos);
  EXPECT_NE(r.out.find("--chunk-len"), std::string::npos);
  EXPECT_EQ(run({"/bin/bash", "-n", script}).code, 0) << r.out;
  r = client({"completion", "zsh"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("#compdef spt-client", 0), 0u) << r.out;
}


TEST_F(CliDoor, DrainByNameDeregistersAndPruneForgetsTheGone) {
  auto listed = [&](const std::string& name) {
    const auto r = client({"workers", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    const auto doc = nlohmann::json::parse(r.out);
    for (const auto& w : doc["workers"])
      if (w["name"] == name) return true;
    return false;
  };
  auto w = start_worker(*dir_, server_->address(), server_->token(), {.name = "drain-me"});
  ASSERT_TRUE(wait_until([&] { return listed("drain-me"); }, 20)) << w->log();
  auto r = client({"drain", "drain-me"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("asked 1 worker"), std::string::npos) << r.out;
  const auto code = w->wait(30);  // told with its next heartbeat (500 ms here)
  ASSERT_TRUE(code.has_value()) << w->log();
  EXPECT_EQ(*code, 0) << w->log();
  EXPECT_NE(w->log().find("asked this worker to drain"), std::string::npos) << w->log();
  EXPECT_FALSE(listed("drain-me")) << "a clean exit deregisters";
  r = client({"drain", "no-such-worker"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no live worker named 'no-such-worker'"), std::string::npos) << r.err;

  auto k = start_worker(*dir_, server_->address(), server_->token(), {.name = "killed"});
  ASSERT_TRUE(wait_until([&] { return listed("killed"); }, 20)) << k->log();
  k->signal(SIGKILL);
  k->wait(10);
  EXPECT_TRUE(listed("killed"));  // listed (as gone) until pruned
  ASSERT_TRUE(wait_until(
      [&] {
        const auto p = client({"workers", "--prune"});
        return p.code == 0 && p.out.find("pruned 1 ") != std::string::npos;
      },
      20, 0.5));
  EXPECT_FALSE(listed("killed"));
}


TEST_F(CliDoor, UploadTakesHubNamesFromTheCacheOnce) {
  // A hub model in this machine's HF cache (the layout huggingface_hub writes).
  const fs::path hub = fs::path(dir_->path()) / "hf-hub";
  const fs::path snap = hub / "models--acme--tiny-gpt2" / "snapshots" / "rev1";
  fs::create_directories(snap);
  fs::create_directories(snap.parent_path().parent_path() / "refs");
  std::ofstream(snap.parent_path().parent_path() / "refs" / "main") << "rev1";
  const std::string src = bad_model(*dir_, "hub-src", 1024);
  fs::copy_file(fs::path(src) / "config.json", snap / "config.json");
  fs::copy_file(fs::path(src) / "model.safetensors", snap / "model.safetensors");
  const std::vector<std::string> args = {"submit", "exp10", "--parts", "a", "--upload", "--model", "acme/tiny-gpt2",
                                         "--chunk-len", "16", "--max-tokens", "64", "--dataset",
                                         std::string(SPT_TEST_DATA) + "/tiny_wiki.raw", "--param", "exp3ef=none"};
  auto r = client(args, {{"HF_HUB_CACHE", hub.string()}});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("uploaded"), std::string::npos) << r.out;
  r = client(args, {{"HF_HUB_CACHE", hub.string()}});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("reusing model/"), std::string::npos) << "same weights, no second upload:\n" << r.out;
  const auto st = client({"status", "exp10", "--json"});
  ASSERT_EQ(st.code, 0) << st.err;
  const auto params = nlohmann::json::parse(
      nlohmann::json::parse(st.out)["experiments"][0]["params_json"].get<std::string>(), nullptr, false);
  ASSERT_TRUE(params.is_object()) << st.out;
  EXPECT_EQ(params.value("model", "").rfind("sha256:", 0), 0u) << params.dump();
  EXPECT_EQ(params.value("n_layer", 0), 1) << params.dump();  // the shape read from the cached config
  // Not in the cache: refused before anything is sent.
  r = client({"submit", "exp10", "--upload", "--model", "acme/absent"}, {{"HF_HUB_CACHE", hub.string()}});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not in this machine's Hugging Face cache"), std::string::npos) << r.err;
}


TEST_F(CliDoor, HubModelMissingEverywhereFailsOnce) {
  // An offline worker with an empty HF cache, and no coordinator blob of
  // that name: the seen case (exp10 on an offline machine) fails at once.
  const std::string empty_cache = dir_->file("empty-hf");
  fs::create_directories(empty_cache);
  setenv("HF_HUB_OFFLINE", "1", 1);
  setenv("HF_HUB_CACHE", empty_cache.c_str(), 1);
  auto w = start_worker(*dir_, server_->address(), server_->token(), {.name = "offline-w", .batch = 64});
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_HUB_CACHE");
  const auto sub = client({"submit", "exp10", "--parts", "a", "--model", "acme/nowhere", "--param", "n_layer=1",
                           "--param", "n_head=2", "--chunk-len", "16", "--max-tokens", "64", "--dataset",
                           std::string(SPT_TEST_DATA) + "/tiny_wiki.raw", "--param", "exp3ef=none", "--json"},
                          {{"HF_HUB_CACHE", empty_cache}});
  ASSERT_EQ(sub.code, 0) << sub.err;
  EXPECT_NE(sub.err.find("not in this machine's Hugging Face cache"), std::string::npos) << sub.err;
  const int64_t id = nlohmann::json::parse(sub.out)["experiment_id"];
  EXPECT_EQ(wait_finished(*server_, id, 120).state(), "failed") << w->log();
  const auto r = client({"status", std::to_string(id), "--json"});
  const auto e = nlohmann::json::parse(r.out)["experiments"][0];
  ASSERT_GE(e["failures"].size(), 1u) << e.dump(2);
  EXPECT_NE(e["failures"][0]["error"].get<std::string>().find("acme/nowhere"), std::string::npos) << e.dump(2);
  EXPECT_EQ(e["retries"], 0) << e.dump(2);
}

}  // namespace
}  // namespace spt::test
