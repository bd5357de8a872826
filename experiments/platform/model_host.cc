#include "platform/model_host.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "spt/hash.h"
#include "spt/util.h"
#include "spt/version.h"
#include "tokenizer.h"
#include "wikitext.h"

namespace spt::platform {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string env_or(const char* k, const std::string& def) {
  const char* v = std::getenv(k);
  return v && *v ? v : def;
}

size_t model_cache_size() {
  const std::string n = env_or("SPT_MODEL_CACHE", env_or("SPT_EXP10_MODEL_CACHE", "2"));
  return static_cast<size_t>(std::max(1, std::atoi(n.c_str())));
}

// A fetched model blob: a folder, or a tar archive unpacked once under
// cache_dir/models/<digest>.
std::string unpack_model_blob(const std::string& path, const std::string& cache_dir) {
  if (fs::is_directory(path)) return path;
  const std::string digest = sha256_file(path);
  const fs::path dest = fs::path(cache_dir.empty() ? fs::temp_directory_path().string() : cache_dir) / "models" / digest;
  if (fs::exists(dest / ".complete")) return dest.string();
  const fs::path tmp = dest.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cmd = "tar -xf " + shell_quote(path) + " -C " + shell_quote(tmp.string()) + " 2>/dev/null";
  if (std::system(cmd.c_str()) != 0)
    throw PermanentError("model blob " + path + " is neither a folder nor a tar archive of one");
  // A tar of "folder/…" has one top-level directory; use it.
  fs::path root = tmp;
  if (!fs::exists(tmp / "config.json")) {
    for (const auto& e : fs::directory_iterator(tmp))
      if (e.is_directory() && fs::exists(e.path() / "config.json")) root = e.path();
  }
  if (!fs::exists(root / "config.json")) throw PermanentError("model blob " + path + " holds no config.json");
  fs::remove_all(dest);
  fs::rename(root, dest);
  fs::remove_all(tmp);
  write_file_atomic((dest / ".complete").string(), "");
  return dest.string();
}

// A load failure another attempt may not repeat: memory pressure.
bool transient_load_error(const std::string& what) {
  return what.find("out of memory") != std::string::npos || what.find("Out of memory") != std::string::npos;
}

// A coordinator answer that no retry changes: the blob or name is unknown.
bool blob_missing(const std::string& what) { return what.find("NOT_FOUND") != std::string::npos; }

// Loads `name`: a blob digest, else a name or folder, else a coordinator
// blob registered under that name. A model that is not there (no such
// folder, hub name neither cached nor downloadable, no such blob) or whose
// files are bad fails with PermanentError: every retry would fail the same
// way, and the job should fail once with that message (`spt-client retry`
// after fixing it). Memory pressure and an unreachable coordinator stay
// retryable.
std::unique_ptr<gpt2::Model> load(const std::string& name, const gpt2::LoadOptions& opt, ExecContext& ctx) {
  if (name.rfind("sha256:", 0) == 0) {
    if (!ctx.fetch_blob) throw PermanentError("model " + name + ": this worker has no artifact store to fetch from");
    std::string path;
    try {
      path = ctx.fetch_blob(name.substr(7));
    } catch (const std::exception& e) {
      if (blob_missing(e.what())) throw PermanentError("model " + name + ": " + e.what());
      throw;
    }
    return gpt2::load_model(unpack_model_blob(path, ctx.cache_dir), opt);
  }
  try {
    return gpt2::load_model(name, opt);
  } catch (const std::exception& local) {
    if (transient_load_error(local.what())) throw;
    if (!ctx.fetch_blob || fs::exists(name)) throw PermanentError(local.what());
    std::string fetched;
    try {
      fetched = ctx.fetch_blob(name);  // a model archive the coordinator registered under this name
    } catch (const std::exception& remote) {
      const std::string msg = std::string(local.what()) + "; and the coordinator has no blob named '" + name +
                              "': " + remote.what();
      if (blob_missing(remote.what())) throw PermanentError(msg);
      throw std::runtime_error(msg);
    }
    return gpt2::load_model(unpack_model_blob(fetched, ctx.cache_dir), opt);
  }
}

}  // namespace

ChunkKey ChunkKey::from_params(const json& p) {
  ChunkKey k;
  k.dataset = p.value("dataset", std::string("wikitext-2-raw"));
  k.dataset_sha = p.value("dataset_sha256", std::string());
  k.split = p.value("split", std::string("valid"));
  if (k.split != "valid" && k.split != "test")
    throw std::invalid_argument("split must be valid or test, got '" + k.split + "'");
  k.max_tokens = p.value("max_tokens", k.split == "test" ? int64_t{200000} : int64_t{2048});
  k.chunk_len = p.value("chunk_len", int64_t{1024});
  k.bos = p.value("bos", 0) != 0;
  return k;
}

std::string ChunkKey::str() const {
  // The default split keeps its historical key (stored results stay valid).
  return dataset + "|" + dataset_sha + (split == "valid" ? "" : "|" + split) + "|" + std::to_string(max_tokens) + "|" + std::to_string(chunk_len) + "|" +
         (bos ? "1" : "0");
}

std::shared_ptr<LoadedModel> ModelHost::model_for(const json& p, ExecContext& ctx) {
  std::shared_ptr<LoadedModel> m = cached_or_loaded(p, ctx);
  const auto& c = m->model->info().config;
  const int want_l = p.value("n_layer", c.n_layer), want_h = p.value("n_head", c.n_head);
  if (want_l != c.n_layer || want_h != c.n_head)
    throw PermanentError("model " + p.value("model", std::string()) + " has " + std::to_string(c.n_layer) + "x" +
                         std::to_string(c.n_head) + " heads; the submission planned " + std::to_string(want_l) +
                         "x" + std::to_string(want_h));
  return m;
}

std::shared_ptr<LoadedModel> ModelHost::cached_or_loaded(const json& p, ExecContext& ctx) {
  const std::string name = p.value("model", std::string("gpt2"));
  const std::string precision = p.value("precision", std::string("fp32"));
  const std::string key = name + "|" + precision + "|" + ctx.device;
  std::lock_guard<std::mutex> g(mu_);
  for (auto it = models_.begin(); it != models_.end(); ++it)
    if (it->first == key) {
      models_.splice(models_.begin(), models_, it);  // most recently used first
      return models_.front().second;
    }
  gpt2::LoadOptions opt;
  opt.device = ctx.device;
  opt.threads = ctx.threads;
  try {
    opt.precision = gpt2::parse_precision(precision);
  } catch (const std::exception& e) {
    throw PermanentError(e.what());
  }
  auto l = std::make_shared<LoadedModel>();
  l->name = name;
  l->model = load(name, opt, ctx);
  l->tokenizer = std::make_shared<Tokenizer>(Tokenizer::default_gpt2(l->model->info().dir));
  l->random_weights = random_weights(l->model->info().dir);
  models_.emplace_front(key, l);
  while (models_.size() > model_cache_size()) models_.pop_back();
  std::vector<std::string> names;
  for (const auto& [k, m] : models_) names.push_back(m->name);
  std::lock_guard<std::mutex> gn(names_mu_);
  names_ = std::move(names);
  return l;
}

std::string ModelHost::dataset_file(const ChunkKey& k, ExecContext& ctx) {
  const std::string& d = k.dataset;
  if (d.rfind("sha256:", 0) == 0) {
    if (!ctx.fetch_blob) throw PermanentError("dataset " + d + ": this worker has no artifact store to fetch from");
    return ctx.fetch_blob(d.substr(7));
  }
  std::vector<std::string> tried;
  auto attempt = [&](const std::string& path) -> std::string {
    try {
      return data::find_wikitext_file(path, k.split);
    } catch (const std::exception& e) {
      tried.push_back(e.what());
      return "";
    }
  };
  if (fs::exists(d)) {
    const std::string f = attempt(d);
    if (!f.empty()) return f;
    throw PermanentError("dataset " + d + ": " + tried.back());
  }
  if (ctx.fetch_blob) {
    try {
      return ctx.fetch_blob(d);
    } catch (const std::exception& e) {
      tried.push_back(std::string("coordinator: ") + e.what());
    }
  }
  for (const std::string& root : {env_or("SPT_DATA_DIR", ""), env_or("HOME", "") + "/.cache/spt/data"}) {
    if (root.empty() || root == "/.cache/spt/data") continue;
    const fs::path p = fs::path(root) / d;
    if (!fs::exists(p)) {
      tried.push_back(p.string() + ": not found");
      continue;
    }
    const std::string f = attempt(p.string());
    if (!f.empty()) return f;
  }
  std::string msg = "dataset '" + d + "' not found; tried:";
  for (const auto& t : tried) msg += "\n  " + t;
  throw std::runtime_error(msg);
}

std::shared_ptr<const ChunkSet> ModelHost::chunks_for(const ChunkKey& k, const LoadedModel& m, ExecContext& ctx) {
  const std::string key = k.str() + "|" + m.tokenizer->sha256();
  std::lock_guard<std::mutex> g(mu_);
  auto it = chunks_.find(key);
  if (it != chunks_.end()) return it->second;
  const std::string file = dataset_file(k, ctx);
  const data::TokenStream ts = data::load_wikitext(file, k.split, *m.tokenizer, k.bos);
  if (!k.dataset_sha.empty() && ts.data_sha256 != k.dataset_sha)
    throw PermanentError("dataset " + file + " has sha256 " + ts.data_sha256 + ", the submission expects " +
                         k.dataset_sha);
  auto cs = std::make_shared<ChunkSet>();
  cs->chunks = k.split == "test" ? data::chunk_t(ts.tokens, k.max_tokens, k.chunk_len)
                                 : data::chunk_v(ts.tokens, k.max_tokens, k.chunk_len);
  if (cs->chunks.empty())
    throw PermanentError("dataset " + file + " yields no chunk (" + std::to_string(ts.tokens.size()) + " tokens)");
  std::vector<int32_t> all;
  for (const auto& c : cs->chunks) all.insert(all.end(), c.begin(), c.end());
  cs->total_tokens = static_cast<int64_t>(all.size());
  cs->tokens_sha256 = data::tokens_sha256(all);
  cs->data_file = file;
  cs->data_sha256 = ts.data_sha256;
  cs->tokenizer_sha256 = ts.tokenizer_sha256;
  cs->bos = k.bos;
  if (chunks_.size() >= 8) chunks_.clear();
  return chunks_.emplace(key, std::move(cs)).first->second;
}

json ModelHost::provenance(const json& p, const LoadedModel& m, const ChunkSet* cs, const ExecContext& ctx) const {
  const auto& info = m.model->info();
  std::string device = ctx.device;
  try {
    device = gpt2::device_description(ctx.device);
  } catch (const std::exception&) {
  }
  json prov = {{"model", p.value("model", std::string())},
               {"model_sha256", info.sha256},
               {"model_dir", info.dir},
               {"precision", p.value("precision", std::string("fp32"))},
               {"device", device},
               {"torch_version", gpt2::torch_version()},
               {"code_version", SPT_CODE_VERSION},
               {"seed", 0},
               {"worker", ctx.worker_name},
               {"config",
                {{"n_layer", info.config.n_layer},
                 {"n_head", info.config.n_head},
                 {"d_model", info.config.d_model},
                 {"d_head", info.config.d_head},
                 {"n_ctx", info.config.n_ctx},
                 {"vocab", info.config.vocab}}}};
  if (cs) {
    prov["data_file"] = cs->data_file;
    prov["data_sha256"] = cs->data_sha256;
    prov["tokenizer_sha256"] = cs->tokenizer_sha256;
    prov["tokens_sha256"] = cs->tokens_sha256;
    prov["bos"] = cs->bos;
  }
  const std::string want = p.value("model_sha256", std::string());
  if (!want.empty() && want != info.sha256) prov["model_sha256_requested"] = want;
  return prov;
}

std::vector<std::string> ModelHost::loaded_models() const {
  std::lock_guard<std::mutex> g(names_mu_);
  return names_;
}

ModelHost& shared_model_host() {
  static ModelHost* host = new ModelHost;  // never destroyed: executors may outlive static teardown
  return *host;
}

bool random_weights(const std::string& model_dir) {
  try {
    return json::parse(read_file((fs::path(model_dir) / "config.json").string())).contains("spt_test_model");
  } catch (const std::exception&) {
    return false;
  }
}

std::string model_data_key(const json& p) {
  return p.value("model", std::string()) + "|" + p.value("precision", std::string("fp32")) + "|" +
         ChunkKey::from_params(p).str();
}

}  // namespace spt::platform
