// spt-client against a real server: every --json output parses and agrees
// with the server's own answer; results --out writes results.json and the
// artifacts; watch and submit --wait end when the experiment does.
#include <signal.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/connection.h"
#include "harness.h"
#include "spt/hash.h"
#include "spt/util.h"

namespace spt::test {
namespace {

class ClientCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    server_ = new Server(*dir_);
    ASSERT_TRUE(server_->start()) << server_->process()->log();
    worker_ = start_worker(*dir_, server_->address(), server_->token(), {.name = "cli-w", .slots = 2, .batch = 32})
                  .release();
  }
  static void TearDownTestSuite() {
    delete worker_;
    delete server_;
    delete dir_;
  }

  // Runs spt-client with the server's address and token (via SPT_SERVER /
  // SPT_TOKEN_FILE, to cover the environment path) and parses stdout.
  static nlohmann::json json_of(std::vector<std::string> args, int want_code = 0) {
    args.insert(args.begin(), client_bin());
    args.push_back("--json");
    const auto r = run(args, {{"SPT_SERVER", server_->address()}, {"SPT_TOKEN_FILE", server_->token_file()}});
    EXPECT_EQ(r.code, want_code) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON:\n" << r.out;
    return j;
  }

  static TempDir* dir_;
  static Server* server_;
  static Process* worker_;
};
TempDir* ClientCli::dir_ = nullptr;
Server* ClientCli::server_ = nullptr;
Process* ClientCli::worker_ = nullptr;

TEST_F(ClientCli, JsonOutputsMatchTheServer) {
  const auto sub = json_of({"submit", "selftest", "--param", "n=50", "--param", "work=10", "--priority", "3"});
  const int64_t id = sub["experiment_id"];
  ASSERT_GT(id, 0);
  EXPECT_EQ(sub["n_jobs"], 51);
  wait_finished(*server_, id, 60);

  const auto st = json_of({"status", std::to_string(id)});
  const auto ref = experiment_status(*server_, id);
  ASSERT_EQ(st["experiments"].size(), 1u);
  const auto& e = st["experiments"][0];
  EXPECT_EQ(e["id"], ref.id());
  EXPECT_EQ(e["name"], ref.name());
  EXPECT_EQ(e["state"], ref.state());
  EXPECT_EQ(e["priority"], 3);
  EXPECT_EQ(e["counts"]["done"], ref.counts().done());
  EXPECT_EQ(e["counts"]["total"], ref.counts().total());
  EXPECT_EQ(e["submitted_unix_ms"], ref.submitted_unix_ms());
  EXPECT_TRUE(st["server_time_unix_ms"].is_number_integer());
  ASSERT_GE(st["workers"].size(), 1u);

  // By name: the latest submission of that name.
  const auto by_name = json_of({"status", "selftest"});
  ASSERT_EQ(by_name["experiments"].size(), 1u);
  EXPECT_EQ(by_name["experiments"][0]["id"], id);

  const auto ws = json_of({"workers"});
  ASSERT_EQ(ws["workers"].size(), 1u);
  EXPECT_EQ(ws["workers"][0]["name"], "cli-w");
  EXPECT_EQ(ws["workers"][0]["capabilities"]["slots"], 2);

  const auto res = json_of({"results", std::to_string(id)});
  ASSERT_EQ(res["reduce_results"].size(), 1u);
  const auto red = nlohmann::json::parse(res["reduce_results"][0]["result_json"].get<std::string>());
  EXPECT_EQ(red["sum"], 50 * 49 / 2);

  const auto lg = json_of({"logs", std::to_string(id) + ":map/7"});
  EXPECT_EQ(lg["job"]["name"], "map/7");
  EXPECT_EQ(lg["job"]["state"], "done");
  EXPECT_EQ(nlohmann::json::parse(lg["params_json"].get<std::string>())["i"], 7);
  const auto lg2 = json_of({"logs", std::to_string(lg["job"]["job_id"].get<int64_t>())});
  EXPECT_EQ(lg2["job"]["name"], "map/7");
}

TEST_F(ClientCli, PutListAndResultsOut) {
  const std::string file = dir_->file("model.bin");
  std::string bytes(300000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 2654435761u >> 13);
  write_file_atomic(file, bytes);
  const auto put = json_of({"put", file, "--name", "test/model.bin"});
  EXPECT_EQ(put["sha256"], sha256_hex(bytes));
  EXPECT_EQ(put["size"], 300000);
  const auto arts = json_of({"artifacts", "--prefix", "test/"});
  ASSERT_EQ(arts["artifacts"].size(), 1u);
  EXPECT_EQ(arts["artifacts"][0]["name"], "test/model.bin");

  const auto sub = json_of({"submit", "selftest", "--param", "n=5", "--wait"});
  EXPECT_EQ(sub["experiments"][0]["state"], "done") << sub.dump();
  const int64_t id = sub["experiments"][0]["id"];
  const std::string out = dir_->file("out");
  json_of({"results", std::to_string(id), "--out", out});
  const auto doc = nlohmann::json::parse(read_file(out + "/results.json"));
  EXPECT_EQ(doc["reduce_results"][0]["result"]["ok"], true);
  EXPECT_EQ(doc["experiment"]["id"], id);
  for (const auto& a : doc["artifacts"])  // selftest has none, but each listed one must be there
    EXPECT_EQ(sha256_file(out + "/" + a["name"].get<std::string>()), a["sha256"]);
}

// submit --model/--dataset describe local files: the params name the model
// by its weights' sha256 and shape (from config.json), the data by its
// sha256; with --upload both travel through the artifact store.
TEST_F(ClientCli, SubmitDescribesLocalModelAndDataset) {
  const std::string model = dir_->file("my-gpt2");
  std::filesystem::create_directories(model);
  write_file_atomic(model + "/config.json", R"({"model_type": "gpt2", "n_layer": 3, "n_head": 2, "n_embd": 8})");
  write_file_atomic(model + "/model.safetensors", std::string(5000, 'w'));  // only hashed by the client
  const std::string data = dir_->file("wiki.valid.raw");
  write_file_atomic(data, " = Title = \n\n Some text .\n");

  auto params_of = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"submit", "exp10", "--parts", "a", "--priority", "-5", "--force",
                                     "--precision", "bf16", "--max-tokens", "64", "--chunk-len", "32"};
    args.insert(args.end(), extra.begin(), extra.end());
    const int64_t id = json_of(args)["experiment_id"];
    json_of({"cancel", std::to_string(id)});
    const auto lg = json_of({"logs", std::to_string(id) + ":a/baseline"});
    return nlohmann::json::parse(lg["params_json"].get<std::string>());
  };
  const auto p = params_of({"--model", model, "--dataset", data});
  const std::string blob = p.dump();
  EXPECT_EQ(p["model"], std::filesystem::absolute(model).string()) << blob;
  EXPECT_EQ(p["model_sha256"], sha256_hex(std::string(5000, 'w'))) << blob;
  EXPECT_EQ(p["n_layer"], 3) << blob;
  EXPECT_EQ(p["n_head"], 2) << blob;
  EXPECT_EQ(p["precision"], "bf16") << blob;
  EXPECT_EQ(p["max_tokens"], 64) << blob;
  EXPECT_EQ(p["chunk_len"], 32) << blob;
  EXPECT_EQ(p["dataset"], data) << blob;
  EXPECT_EQ(p["dataset_sha256"], sha256_file(data)) << blob;

  const auto up = params_of({"--model", model, "--dataset", data, "--upload"});
  ASSERT_TRUE(up["model"].is_string());
  const std::string m = up["model"];
  ASSERT_EQ(m.rfind("sha256:", 0), 0u) << m;
  EXPECT_EQ(up["model_sha256"], p["model_sha256"]);
  EXPECT_EQ(up["dataset"], "sha256:" + sha256_file(data));
  const auto arts = json_of({"artifacts", "--prefix", "model/"});
  bool found = false;
  for (const auto& a : arts["artifacts"]) found |= a["sha256"] == m.substr(7);
  EXPECT_TRUE(found) << arts.dump();

  // Bad local inputs are refused before anything is submitted.
  const auto r = run({client_bin(), "submit", "exp10", "--model", dir_->file("no-such-dir/x"), "--dataset", data},
                     {{"SPT_SERVER", server_->address()}, {"SPT_TOKEN_FILE", server_->token_file()}});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("no such folder"), std::string::npos) << r.err;
  const auto r2 = run({client_bin(), "submit", "exp10", "--model", data},
                      {{"SPT_SERVER", server_->address()}, {"SPT_TOKEN_FILE", server_->token_file()}});
  EXPECT_NE(r2.code, 0);
  EXPECT_NE(r2.err.find("is a file"), std::string::npos) << r2.err;
}

// --model a,b: each folder is described as a single one would be, in
// aligned comma lists; the plan runs one graph per model, its jobs under
// the model's label and scoped to it.
TEST_F(ClientCli, SubmitTwoLocalModels) {
  auto folder = [&](const std::string& name, int layers, int heads, char fill) {
    const std::string m = dir_->file(name);
    std::filesystem::create_directories(m);
    write_file_atomic(m + "/config.json", R"({"model_type": "gpt2", "n_layer": )" + std::to_string(layers) +
                                              R"(, "n_head": )" + std::to_string(heads) + R"(, "n_embd": 8})");
    write_file_atomic(m + "/model.safetensors", std::string(3000, fill));
    return m;
  };
  const std::string m1 = folder("two-a", 3, 2, 'x'), m2 = folder("two-b", 2, 4, 'y');
  const int64_t id = json_of({"submit", "exp10", "--parts", "a", "--priority", "-5", "--force", "--model",
                              m1 + "," + m2, "--max-tokens", "64", "--chunk-len", "32"})["experiment_id"];
  json_of({"cancel", std::to_string(id)});
  struct Want {
    std::string label, dir;
    int n_layer, n_head;
    char fill;
  };
  for (const Want& w : {Want{"two-a", m1, 3, 2, 'x'}, Want{"two-b", m2, 2, 4, 'y'}}) {
    const auto lg = json_of({"logs", std::to_string(id) + ":" + w.label + "/a/baseline"});
    const auto p = nlohmann::json::parse(lg["params_json"].get<std::string>());
    const std::string blob = p.dump();
    EXPECT_EQ(p["model"], std::filesystem::absolute(w.dir).lexically_normal().string()) << blob;
    EXPECT_EQ(p["model_sha256"], sha256_hex(std::string(3000, w.fill))) << blob;
    EXPECT_EQ(p["n_layer"], w.n_layer) << blob;
    EXPECT_EQ(p["n_head"], w.n_head) << blob;
    EXPECT_EQ(p["scope"], w.label + "/") << blob;
  }
}

TEST_F(ClientCli, CancelRetryWatch) {
  const auto sub = json_of({"submit", "selftest", "--param", "n=20", "--param", "stall=1", "--param", "stall_s=3600",
                            "--priority", "-1"});
  const int64_t id = sub["experiment_id"];
  const auto c = json_of({"cancel", std::to_string(id)});
  EXPECT_GT(c["cancelled_jobs"].get<int>(), 0);
  const auto st = wait_finished(*server_, id, 30);
  EXPECT_EQ(st.state(), "cancelled");
  // watch ends at once for a finished experiment, non-zero because it was not done.
  const auto r = run({client_bin(), "--server", server_->address(), "--token", server_->token(), "watch",
                      std::to_string(id), "--interval", "0.1"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("cancelled"), std::string::npos) << r.out;
  const auto rt = json_of({"retry", std::to_string(id)});
  EXPECT_TRUE(rt["retried_jobs"].is_number_integer());
  json_of({"cancel", std::to_string(id)});  // whatever retry requeued must not occupy the worker
}

TEST_F(ClientCli, HumanStatusShowsDashboard) {
  json_of({"submit", "selftest", "--param", "n=3", "--wait"});
  const auto r = run({client_bin(), "--server", server_->address(), "--token", server_->token(), "status", "--all"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("selftest"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("done"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cli-w"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace spt::test
