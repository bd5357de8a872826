#include "exp7/executors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "exp7/arrays.h"
#include "exp7/common.h"
#include "exp7/reduce.h"
#include "exp7/science.h"
#include "platform/hosted_executor.h"
#include "platform/model_host.h"
#include "platform/reduce_context.h"
#include "spt/gpt2_hooks.h"
#include "spt/hash.h"
#include "spt/job.h"
#include "spt/util.h"

namespace spt::exp7 {

using nlohmann::json;
using platform::PermanentError;

namespace {

// The hook points a capture reads per block ("dphi" also reads attn_out and
// mlp_out, for the Δφ = attn_out + mlp_out check).
std::vector<std::string> capture_points(const std::string& points) {
  if (points == kPointsDphi) return {"hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out"};
  if (points == kPointsAttnMlp) return {"hook_attn_out", "hook_mlp_out"};
  throw PermanentError("exp7.capture: unknown points '" + points + "' (dphi or attn_mlp)");
}

// Runs forwards over the chunks in order until n positions are collected;
// returns per point name the [L, n, d] float32 values (CPU).
std::map<std::string, at::Tensor> collect(gpt2::Model& model, const gpt2::Chunks& chunks, int64_t n,
                                          const std::vector<std::string>& points, ExecContext& ctx) {
  const auto& c = model.info().config;
  gpt2::RunOptions o;
  o.logits = false;
  for (int l = 0; l < c.n_layer; ++l)
    for (const auto& pt : points) o.cache.insert(gpt2::hook_name(l, pt));
  std::map<std::string, std::vector<at::Tensor>> parts;  // point → per chunk [L, t, d]
  int64_t have = 0;
  for (size_t ci = 0; ci < chunks.size() && have < n; ++ci) {
    if (ctx.should_stop()) throw std::runtime_error("stopped");
    const int64_t take = std::min<int64_t>(n - have, static_cast<int64_t>(chunks[ci].size()));
    const auto r = gpt2::run(model, gpt2::tokens_tensor(chunks[ci]), o);
    for (const auto& pt : points) {
      std::vector<at::Tensor> per_layer;
      for (int l = 0; l < c.n_layer; ++l)
        per_layer.push_back(r.cache.at(gpt2::hook_name(l, pt))[0].narrow(0, 0, take).to(at::kCPU));
      parts[pt].push_back(at::stack(per_layer));
    }
    have += take;
  }
  if (have < n)
    throw PermanentError("exp7.capture: max_samples = " + std::to_string(n) + " but the chunk set has only " +
                         std::to_string(have) + " positions");
  std::map<std::string, at::Tensor> out;
  for (auto& [pt, ts] : parts) out[pt] = at::cat(ts, 1).contiguous();
  return out;
}


F32Array to_array(const at::Tensor& t, json meta) {
  F32Array a;
  a.shape = t.sizes().vec();
  const at::Tensor c = t.to(at::kFloat).contiguous();
  a.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  a.meta = std::move(meta);
  return a;
}

json norm_stats(const at::Tensor& x) {  // x [S, n, d] → per slab mean/std of row norms
  json mean = json::array(), sd = json::array();
  const at::Tensor c = x.contiguous();
  for (int64_t s = 0; s < c.size(0); ++s) {
    const NormStats ns = row_norms(c[s].data_ptr<float>(), c.size(1), c.size(2));
    mean.push_back(ns.mean);
    sd.push_back(ns.std);
  }
  return {{"mean", mean}, {"std", sd}};
}

std::string safe(std::string s) {
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.' && ch != '_') ch = '_';
  return s;
}

// The artifact name: unique within an experiment (artifacts are keyed by name).
std::string artifact_name(const JobSpec& j, const std::string& what) {
  return "exp7_" + what + "_" + safe(j.params.value("label", j.params.value("model", std::string()))) + ".f32";
}

class ModelExecutor : public platform::HostedExecutor {
 public:
  std::vector<std::string> kinds() const override { return {kKindCapture, kKindPpl}; }

 private:
  struct Group {
    std::shared_ptr<platform::LoadedModel> lm;
    std::shared_ptr<const platform::ChunkSet> cs;
    json prov;
  };

  void run_group(const std::vector<JobSpec>& jobs, const std::vector<size_t>& idx, ExecContext& ctx,
                 const platform::ReportFn& report) override {
    auto& host = platform::shared_model_host();
    const json& p0 = jobs[idx.front()].params;
    Group g;
    g.lm = host.model_for(p0, ctx);
    const platform::ChunkKey key = platform::ChunkKey::from_params(p0);
    if (key.chunk_len > g.lm->model->info().config.n_ctx)
      throw PermanentError("chunk_len " + std::to_string(key.chunk_len) + " exceeds the model's context");
    g.cs = host.chunks_for(key, *g.lm, ctx);
    g.prov = host.provenance(p0, *g.lm, g.cs.get(), ctx);
    g.prov["random_weights"] = g.lm->random_weights;
    // PPL jobs by variant, so one variant's bases are built once.
    std::map<std::string, std::vector<size_t>> by_variant;
    for (size_t i : idx) {
      if (ctx.should_stop()) return;
      if (jobs[i].kind == kKindCapture) {
        report(i, guarded([&] { return capture(jobs[i], g, ctx); }));
        continue;
      }
      by_variant[jobs[i].params.value("variant", std::string()) + "/" + std::to_string(jobs[i].params.value("k", 0))]
          .push_back(i);
    }
    for (const auto& [name, js] : by_variant) {
      gpt2::Variant v;
      json describe;
      const Outcome bad = guarded([&] {
        v = variant_for(jobs[js.front()], ctx, &describe);
        return Outcome::success(json::object());
      });
      if (!bad.ok) {
        for (size_t i : js) report(i, bad);
        continue;
      }
      for (size_t i : js) {
        if (ctx.should_stop()) return;
        report(i, guarded([&] { return ppl(jobs[i], g, v, describe); }));
      }
    }
  }

  // One job's outcome: bad params or inputs fail for good, anything else
  // (memory, a fetch, the device) is retried.
  template <typename F>
  static Outcome guarded(F&& f) {
    try {
      return f();
    } catch (const PermanentError& e) {
      return Outcome::failure(e.what(), false);
    } catch (const std::invalid_argument& e) {
      return Outcome::failure(e.what(), false);
    } catch (const std::exception& e) {
      return Outcome::failure(e.what(), true);
    }
  }

  Outcome capture(const JobSpec& j, const Group& g, ExecContext& ctx) {
    const std::string points = j.params.value("points", std::string(kPointsDphi));
    const int64_t n = j.params.value("max_samples", int64_t{1000});
    if (n < 1) throw PermanentError("exp7.capture: max_samples must be >= 1");
    auto acts = collect(*g.lm->model, g.cs->chunks, n, capture_points(points), ctx);
    const auto& cfg = g.lm->model->info().config;
    json r = {{"points", points},
              {"n_samples", n},
              {"d_model", cfg.d_model},
              {"n_layers", cfg.n_layer},
              {"provenance", g.prov}};
    at::Tensor arr;
    if (points == kPointsDphi) {
      arr = acts.at("hook_resid_post") - acts.at("hook_resid_pre");
      const at::Tensor sum = acts.at("hook_attn_out") + acts.at("hook_mlp_out");
      r["max_abs_dphi_minus_attn_mlp"] = (arr - sum).abs().max().item<double>();
      r["max_abs_dphi"] = arr.abs().max().item<double>();
      r["norms"] = norm_stats(arr);
    } else {
      arr = at::stack({acts.at("hook_attn_out"), acts.at("hook_mlp_out")});  // [2, L, n, d]
      r["norms"] = {{"attn", norm_stats(arr[0])}, {"mlp", norm_stats(arr[1])}};
    }
    const std::string name = artifact_name(j, points == kPointsDphi ? "7a_dphi" : "7e_attn_mlp");
    const std::string dir =
        (std::filesystem::path(ctx.scratch_dir.empty() ? std::filesystem::temp_directory_path().string()
                                                       : ctx.scratch_dir) /
         "exp7" / (std::to_string(j.id) + "-" + std::to_string(j.attempt)))
            .string();
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/" + name;
    write_f32(path, to_array(arr, {{"points", points}, {"model", j.params.value("model", std::string())}}));
    r["artifact"] = {{"name", name}, {"sha256", sha256_file(path)}, {"shape", arr.sizes().vec()}};
    return Outcome::success(std::move(r), {{name, path, "application/octet-stream"}});
  }

  // The projections of a PPL job's variant, from the basis artifacts its
  // inputs name: "individual" uses block b's own basis (input b/pca/<b>),
  // "shared" the 7C basis for every block; k is clipped to the basis rows.
  static gpt2::Variant variant_for(const JobSpec& j, ExecContext& ctx, json* describe) {
    const std::string kind = j.params.value("variant", std::string());
    const int64_t k = j.params.value("k", int64_t{0});
    *describe = {{"variant", kind}, {"k", k}};
    gpt2::Variant v;
    if (kind == "baseline") return v;
    if (kind != "individual" && kind != "shared") throw PermanentError("exp7.ppl: unknown variant '" + kind + "'");
    if (k < 1) throw PermanentError("exp7.ppl: k must be >= 1");
    const int n_layer = j.params.value("n_layer", 0);
    std::map<std::string, F32Array> loaded;  // sha → basis file
    auto basis_of = [&](const json& res, const std::string& from) -> const F32Array& {
      if (!res.contains("basis") || !res.at("basis").contains("sha256"))
        throw PermanentError("exp7.ppl: input " + from + " names no basis artifact");
      const std::string sha = res.at("basis").at("sha256").get<std::string>();
      auto it = loaded.find(sha);
      if (it == loaded.end()) {
        if (!ctx.fetch_blob) throw PermanentError("exp7.ppl: this worker has no artifact store to fetch bases from");
        it = loaded.emplace(sha, read_f32(ctx.fetch_blob(sha))).first;  // a fetch failure is retried
      }
      return it->second;
    };
    int64_t k_used = 0;
    for (int l = 0; l < n_layer; ++l) {
      const JobInput* in = nullptr;
      const std::string want = kind == "shared" ? "c/shared" : "b/pca/" + std::to_string(l);
      const std::string full = j.params.value("scope", std::string()) + want;  // inputs carry full job names
      for (const auto& x : j.inputs)
        if (x.name == full) in = &x;
      if (!in) throw PermanentError("exp7.ppl: missing input " + want);
      const F32Array& b = basis_of(in->result, in->name);
      // Row 0 is μ, rows 1.. the components (reduce.h: basis artifacts).
      const int64_t d = b.shape.at(1), rows = b.shape.at(0) - 1;
      gpt2::ResidualProjection p;
      p.layer = l;
      p.k = static_cast<int>(std::min<int64_t>(k, rows));
      p.mean.assign(b.data.begin(), b.data.begin() + d);
      p.basis.assign(b.data.begin() + d, b.data.begin() + d * (1 + p.k));
      p.source = in->result.at("basis").at("sha256").get<std::string>();
      k_used = p.k;
      v.projections.push_back(std::move(p));
    }
    (*describe)["k_used"] = k_used;
    return v;
  }

  Outcome ppl(const JobSpec& j, const Group& g, const gpt2::Variant& v, const json& describe) {
    const auto& chunks = g.cs->chunks;
    const int64_t total = static_cast<int64_t>(chunks.size());
    const int64_t b = j.params.value("chunk_begin", int64_t{0}), e = j.params.value("chunk_end", total);
    if (b < 0 || e < b) return Outcome::failure("exp7.ppl: bad chunk range", false);
    const int64_t cb = std::min(b, total), ce = std::min(e, total);
    const gpt2::Chunks part(chunks.begin() + cb, chunks.begin() + ce);
    gpt2::NllSum s;
    if (!part.empty()) s = g.lm->model->nll(part, v);
    return Outcome::success(json{{"variant", describe},
                                 {"chunk_begin", cb},
                                 {"chunk_end", ce},
                                 {"n_chunks_total", total},
                                 {"nll_sum", s.nll},
                                 {"n_tokens", s.count},
                                 {"provenance", g.prov}});
  }
};

}  // namespace

void register_executors(ExecutorRegistry& reg) {
  reg.add(std::make_unique<ModelExecutor>());
  reg.add(platform::make_reduce_executor({kKindReduce}, run_reduce, "exp7", gpt2::torch_version()));
}

}  // namespace spt::exp7
