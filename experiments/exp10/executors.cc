#include "exp10/executors.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>

#include "exp10/common.h"
#include "exp10/reduce.h"
#include "exp10/variants.h"
#include "spt/gpt2.h"
#include "spt/hash.h"
#include "spt/job.h"
#include "spt/util.h"
#include "spt/version.h"
#include "tokenizer.h"
#include "wikitext.h"

namespace spt::exp10 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A failure that retrying elsewhere cannot fix (bad params, bad inputs).
struct Permanent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string env_or(const char* k, const std::string& def) {
  const char* v = std::getenv(k);
  return v && *v ? v : def;
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
    throw Permanent("model blob " + path + " is neither a folder nor a tar archive of one");
  // A tar of "folder/…" has one top-level directory; use it.
  fs::path root = tmp;
  if (!fs::exists(tmp / "config.json")) {
    for (const auto& e : fs::directory_iterator(tmp))
      if (e.is_directory() && fs::exists(e.path() / "config.json")) root = e.path();
  }
  if (!fs::exists(root / "config.json")) throw Permanent("model blob " + path + " holds no config.json");
  fs::remove_all(dest);
  fs::rename(root, dest);
  fs::remove_all(tmp);
  write_file_atomic((dest / ".complete").string(), "");
  return dest.string();
}

struct ChunkKey {
  std::string dataset, dataset_sha;
  int64_t max_tokens = 0, chunk_len = 0;
  bool bos = false;
  std::string str() const {
    return dataset + "|" + dataset_sha + "|" + std::to_string(max_tokens) + "|" + std::to_string(chunk_len) + "|" +
           (bos ? "1" : "0");
  }
};

struct Loaded {
  std::string name;  // the model param
  std::unique_ptr<gpt2::Model> model;
  std::shared_ptr<Tokenizer> tokenizer;
};

struct ChunkSet {
  gpt2::Chunks chunks;
  std::string data_file, data_sha256, tokenizer_sha256, tokens_sha256;
  int64_t total_tokens = 0;
};

class ModelExecutor : public Executor {
 public:
  std::vector<std::string> kinds() const override { return {kKindPpl, kKindMeans}; }
  std::vector<std::string> precisions() const override { return {"fp32", "tf32", "bf16"}; }
  std::vector<std::string> loaded_models() const override {
    std::lock_guard<std::mutex> g(names_mu_);
    return names_;
  }

  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) override {
    std::lock_guard<std::mutex> g(run_mu_);  // one batch at a time: LibTorch already uses every core
    std::vector<bool> reported(jobs.size(), false);
    auto report = [&](size_t i, Outcome o) {
      if (reported[i]) return;
      reported[i] = true;
      done(i, std::move(o));
    };
    // Group compatible jobs.
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const json& p = jobs[i].params;
      groups[p.value("model", std::string()) + "|" + p.value("precision", std::string("fp32")) + "|" +
             chunk_key(p).str()]
          .push_back(i);
    }
    for (const auto& [key, idx] : groups) {
      if (ctx.should_stop()) break;
      try {
        run_group(jobs, idx, ctx, report);
      } catch (const Permanent& e) {
        for (size_t i : idx) report(i, Outcome::failure(e.what(), false));
      } catch (const std::exception& e) {
        for (size_t i : idx) report(i, Outcome::failure(e.what(), true));
      }
    }
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!reported[i]) report(i, Outcome::failure("stopped before this job ran", true));
  }

 private:
  static ChunkKey chunk_key(const json& p) {
    ChunkKey k;
    k.dataset = p.value("dataset", std::string("wikitext-2-raw"));
    k.dataset_sha = p.value("dataset_sha256", std::string());
    k.max_tokens = p.value("max_tokens", int64_t{2048});
    k.chunk_len = p.value("chunk_len", int64_t{1024});
    k.bos = p.value("bos", 0) != 0;
    return k;
  }

  Loaded& model_for(const json& p, ExecContext& ctx) {
    const std::string name = p.value("model", std::string("gpt2"));
    const std::string precision = p.value("precision", std::string("fp32"));
    const std::string key = name + "|" + precision + "|" + ctx.device;
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
      throw Permanent(e.what());
    }
    Loaded l;
    l.name = name;
    if (name.rfind("sha256:", 0) == 0) {
      if (!ctx.fetch_blob) throw Permanent("model " + name + ": this worker has no artifact store to fetch from");
      l.model = gpt2::load_model(unpack_model_blob(ctx.fetch_blob(name.substr(7)), ctx.cache_dir), opt);
    } else {
      try {
        l.model = gpt2::load_model(name, opt);
      } catch (const std::exception& local) {
        if (!ctx.fetch_blob || fs::exists(name)) throw;
        std::string fetched;
        try {
          fetched = ctx.fetch_blob(name);  // a model archive the coordinator registered under this name
        } catch (const std::exception& remote) {
          throw std::runtime_error(std::string(local.what()) + "; and the coordinator has no blob named '" + name +
                                   "': " + remote.what());
        }
        l.model = gpt2::load_model(unpack_model_blob(fetched, ctx.cache_dir), opt);
      }
    }
    l.tokenizer = std::make_shared<Tokenizer>(Tokenizer::default_gpt2(l.model->info().dir));
    models_.emplace_front(key, std::move(l));
    const size_t keep = static_cast<size_t>(std::max(1, std::atoi(env_or("SPT_EXP10_MODEL_CACHE", "2").c_str())));
    while (models_.size() > keep) models_.pop_back();
    {
      std::lock_guard<std::mutex> g(names_mu_);
      names_.clear();
      for (const auto& [k, m] : models_) names_.push_back(m.name);
    }
    return models_.front().second;
  }

  std::string dataset_file(const ChunkKey& k, ExecContext& ctx) {
    const std::string& d = k.dataset;
    if (d.rfind("sha256:", 0) == 0) {
      if (!ctx.fetch_blob) throw Permanent("dataset " + d + ": this worker has no artifact store to fetch from");
      return ctx.fetch_blob(d.substr(7));
    }
    std::vector<std::string> tried;
    auto attempt = [&](const std::string& path) -> std::string {
      try {
        return data::find_wikitext_file(path, "valid");
      } catch (const std::exception& e) {
        tried.push_back(e.what());
        return "";
      }
    };
    if (fs::exists(d)) {
      const std::string f = attempt(d);
      if (!f.empty()) return f;
      throw Permanent("dataset " + d + ": " + tried.back());
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

  const ChunkSet& chunks_for(const ChunkKey& k, const Loaded& m, ExecContext& ctx) {
    const std::string key = k.str() + "|" + m.tokenizer->sha256();
    auto it = chunks_.find(key);
    if (it != chunks_.end()) return it->second;
    const std::string file = dataset_file(k, ctx);
    const data::TokenStream ts = data::load_wikitext(file, "valid", *m.tokenizer, k.bos);
    if (!k.dataset_sha.empty() && ts.data_sha256 != k.dataset_sha)
      throw Permanent("dataset " + file + " has sha256 " + ts.data_sha256 + ", the submission expects " + k.dataset_sha);
    ChunkSet cs;
    cs.chunks = data::chunk_v(ts.tokens, k.max_tokens, k.chunk_len);
    if (cs.chunks.empty())
      throw Permanent("dataset " + file + " yields no chunk (" + std::to_string(ts.tokens.size()) + " tokens)");
    std::vector<int32_t> all;
    for (const auto& c : cs.chunks) all.insert(all.end(), c.begin(), c.end());
    cs.total_tokens = static_cast<int64_t>(all.size());
    cs.tokens_sha256 = data::tokens_sha256(all);
    cs.data_file = file;
    cs.data_sha256 = ts.data_sha256;
    cs.tokenizer_sha256 = ts.tokenizer_sha256;
    if (chunks_.size() >= 8) chunks_.clear();
    return chunks_.emplace(key, std::move(cs)).first->second;
  }

  json provenance(const json& p, const Loaded& m, const ChunkSet& cs, const ChunkKey& k, ExecContext& ctx) const {
    const auto& info = m.model->info();
    std::string device = ctx.device;
    try {
      device = gpt2::device_description(ctx.device);
    } catch (const std::exception&) {
    }
    json prov = {{"model", p.value("model", std::string())},
                 {"model_sha256", info.sha256},
                 {"model_dir", info.dir},
                 {"data_file", cs.data_file},
                 {"data_sha256", cs.data_sha256},
                 {"tokenizer_sha256", cs.tokenizer_sha256},
                 {"tokens_sha256", cs.tokens_sha256},
                 {"precision", p.value("precision", std::string("fp32"))},
                 {"device", device},
                 {"torch_version", gpt2::torch_version()},
                 {"code_version", SPT_CODE_VERSION},
                 {"seed", 0},
                 {"bos", k.bos},
                 {"worker", ctx.worker_name},
                 {"config",
                  {{"n_layer", info.config.n_layer},
                   {"n_head", info.config.n_head},
                   {"d_model", info.config.d_model},
                   {"d_head", info.config.d_head},
                   {"n_ctx", info.config.n_ctx},
                   {"vocab", info.config.vocab}}}};
    const std::string want = p.value("model_sha256", std::string());
    if (!want.empty() && want != info.sha256) prov["model_sha256_requested"] = want;
    return prov;
  }

  void run_group(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                 const std::function<void(size_t, Outcome)>& report) {
    const json& p0 = jobs[idx.front()].params;
    Loaded& m = model_for(p0, ctx);
    const auto& cfg = m.model->info().config;
    const int want_l = p0.value("n_layer", cfg.n_layer), want_h = p0.value("n_head", cfg.n_head);
    if (want_l != cfg.n_layer || want_h != cfg.n_head)
      throw Permanent("model " + p0.value("model", std::string()) + " has " + std::to_string(cfg.n_layer) + "x" +
                      std::to_string(cfg.n_head) + " heads; the submission planned " + std::to_string(want_l) + "x" +
                      std::to_string(want_h));
    const ChunkKey k = chunk_key(p0);
    if (k.chunk_len > cfg.n_ctx)
      throw Permanent("chunk_len " + std::to_string(k.chunk_len) + " exceeds the model's context " +
                      std::to_string(cfg.n_ctx));
    const ChunkSet& cs = chunks_for(k, m, ctx);
    const json prov = provenance(p0, m, cs, k, ctx);

    // Means jobs: one capture each.
    std::vector<size_t> ppl_jobs;
    for (size_t i : idx) {
      if (jobs[i].kind != kKindMeans) {
        ppl_jobs.push_back(i);
        continue;
      }
      if (ctx.should_stop()) return;
      const auto sums = m.model->head_z_sums(cs.chunks);
      HeadMeans hm;
      hm.n_layer = cfg.n_layer;
      hm.n_head = cfg.n_head;
      hm.d_head = cfg.d_head;
      hm.values.resize(sums.sum.size());
      for (size_t j = 0; j < sums.sum.size(); ++j)
        hm.values[j] = static_cast<float>(sums.sum[j] / static_cast<double>(sums.count));
      json r = means_to_json(hm, sums.count);
      r["chunks"] = jobs[i].params.value("chunks", std::string());
      r["n_chunks"] = cs.chunks.size();
      r["provenance"] = prov;
      report(i, Outcome::success(std::move(r)));
    }

    // PPL jobs: resolve variants; failures and skips are reported at once.
    struct Item {
      size_t job;
      ResolvedVariant rv;
    };
    std::vector<Item> items;
    for (size_t i : ppl_jobs) {
      try {
        ResolvedVariant rv = resolve_variant(jobs[i]);
        if (rv.skipped) {
          report(i, Outcome::success(json{{"skipped", true}, {"reason", rv.skip_reason}, {"variant", rv.describe}}));
          continue;
        }
        items.push_back({i, std::move(rv)});
      } catch (const std::exception& e) {
        report(i, Outcome::failure(std::string("cannot build the variant: ") + e.what(), false));
      }
    }
    // Variants sharing a first touched layer share the most prefix work.
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      return a.rv.variant.min_layer() < b.rv.variant.min_layer();
    });
    const bool fuse_env = env_or("SPT_EXP10_FUSE", "1") != "0";
    // A sub-batch is reported as a whole, so bound its work: at most
    // SPT_EXP10_FUSE_MAX variants and SPT_EXP10_FUSE_TOKENS variant-tokens
    // (V2K: 48 variants per call; the full split: a few).
    const int64_t token_budget = std::max<int64_t>(1, std::atoll(env_or("SPT_EXP10_FUSE_TOKENS", "1048576").c_str()));
    const size_t max_batch = static_cast<size_t>(
        std::max<int64_t>(1, std::min<int64_t>(std::atoi(env_or("SPT_EXP10_FUSE_MAX", "48").c_str()),
                                               token_budget / std::max<int64_t>(1, cs.total_tokens))));
    size_t pos = 0;
    while (pos < items.size()) {
      if (ctx.should_stop()) return;
      const bool fuse = fuse_env && jobs[items[pos].job].params.value("fuse", true);
      size_t end = pos + 1;
      if (fuse)
        while (end < items.size() && end - pos < max_batch && jobs[items[end].job].params.value("fuse", true)) ++end;
      std::vector<gpt2::NllSum> sums;
      if (fuse) {
        std::vector<gpt2::Variant> vs;
        for (size_t i = pos; i < end; ++i) vs.push_back(items[i].rv.variant);
        sums = m.model->nll_many(cs.chunks, vs);
      } else {
        sums.push_back(m.model->nll(cs.chunks, items[pos].rv.variant));
      }
      for (size_t i = pos; i < end; ++i) {
        const JobSpec& job = jobs[items[i].job];
        const auto& s = sums[i - pos];
        const double ppl = ppl_of(s.nll, static_cast<double>(s.count));
        json r = {{"ppl", round_to(ppl, 4)},
                  {"nll_sum", s.nll},
                  {"n_tokens", s.count},
                  {"n_chunks", cs.chunks.size()},
                  {"total_tokens", cs.total_tokens},
                  {"chunks", job.params.value("chunks", std::string())},
                  {"variant", items[i].rv.describe},
                  {"fused", fuse && end - pos > 1},
                  {"provenance", prov}};
        if (job.params.value("chunks", std::string()) == "v2k")
          for (const auto& in : job.inputs)
            if (in.result.is_object() && in.result.contains("baseline_ppl")) {
              const double b = in.result.at("baseline_ppl").get<double>();
              r["delta_ppl"] = round_to((ppl - b) / b, 6);
              break;
            }
        if (!std::isfinite(ppl)) {
          report(items[i].job, Outcome::failure("perplexity is not finite (" + std::to_string(ppl) + ")", true));
          continue;
        }
        report(items[i].job, Outcome::success(std::move(r)));
      }
      pos = end;
    }
  }

  std::mutex run_mu_;
  std::list<std::pair<std::string, Loaded>> models_;  // most recently used first
  std::map<std::string, ChunkSet> chunks_;
  mutable std::mutex names_mu_;
  std::vector<std::string> names_;
};

class ReduceExecutor : public Executor {
 public:
  std::vector<std::string> kinds() const override { return {kKindReduce}; }
  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) override {
    for (size_t i = 0; i < jobs.size(); ++i) {
      const JobSpec& job = jobs[i];
      ReduceContext rc;
      const std::string scratch = ctx.scratch_dir.empty() ? fs::temp_directory_path().string() : ctx.scratch_dir;
      std::string safe = job.name;
      std::replace(safe.begin(), safe.end(), '/', '_');
      rc.out_dir = (fs::path(scratch) / "exp10" /
                    (std::to_string(job.id) + "-" + safe + "-" + std::to_string(job.attempt)))
                       .string();
      rc.device = ctx.device;
      rc.worker = ctx.worker_name;
      rc.torch_version = gpt2::torch_version();
      if (ctx.fetch_blob) rc.fetch = ctx.fetch_blob;
      try {
        ReduceOutput out = run_reduce(job, rc);
        std::vector<OutputFile> files;
        for (const auto& f : out.files) files.push_back({f.name, f.path, f.media_type});
        done(i, Outcome::success(std::move(out.result), std::move(files)));
      } catch (const std::exception& e) {
        done(i, Outcome::failure(std::string("exp10 reduce ") + job.params.value("reduce", std::string("?")) + ": " +
                                     e.what(),
                                 false));
      }
    }
  }
};

}  // namespace

void register_executors(ExecutorRegistry& reg) {
  reg.add(std::make_unique<ModelExecutor>());
  reg.add(std::make_unique<ReduceExecutor>());
}

}  // namespace spt::exp10
