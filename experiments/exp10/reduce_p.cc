// exp10d Phase 3 (spec §10.4 P1–P4): can the compute freed by ReLU
// attention be spent on more generation? Speed, "self-refinement",
// best-of-N and context length, for baseline / relu_30 / relu_70.
//
// Inputs (plan.cc, part p): p/speed/<cond> and p/refine|best/<cond>/<i>
// (exp10.gen, exp10/phase3.h), p/ppl/<n>/<cond> (exp10.ppl), j/reduce
// (best_method, A24), k/reduce (2K cumulative curve, for comparison).
//
// Formulas (spec §10.4), with H = n_layer·n_head heads (144 for gpt2) and
// d = d_head (64 for every GPT-2 size; read from the inputs' provenance):
//   P1  tokens/s = new_tokens / mean time; latency = mean time / new_tokens;
//       std is the population std of the timed runs;
//       speed-up(n, k) = H·s / ((H − k)·s + k·κ), s = 4n²d + 5n², κ = 6nd²,
//       k = the heads the condition really linearised (30 / 70 for gpt2;
//       fewer on a small model, the field keeps the nominal k in its name).
//   P2  per condition and iteration: mean, median, population std of the
//       prompts' PPLs (2 dp), scored by the unmodified model over every
//       token after the prompt (A11).
//   P3  avg = prompt_len + new_tokens/2 (160); f_soft = H·(4·avg·d + 5·avg);
//       f_k = (H − k)(4·avg·d + 5·avg) + k·6d²; ratio = f_k / f_soft;
//       extra = max(0, ⌊new_tokens·f_soft/f_k⌋ − new_tokens); best-of-N =
//       min of the first N candidates' PPLs, mean and median over prompts.
//   P4  PPL per chunk length and condition; ratio = PPL / baseline PPL.
#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include "exp10/reduce_internal.h"
#include "report/markdown.h"
#include "spt/util.h"

namespace spt::exp10::detail {

namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double pstd_of(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  const double mu = np_mean(v);
  std::vector<double> sq;
  for (double x : v) sq.push_back((x - mu) * (x - mu));
  return std::sqrt(np_mean(sq));
}

json num_or_null(double x, int dp) {
  return std::isfinite(x) ? json(round_to(x, dp)) : json(nullptr);
}

}  // namespace

double p_kernel_speedup(int n, int d, int heads, int k) {
  const double N = n, D = d;
  const double s = 4 * N * N * D + 5 * N * N, kappa = 6 * N * D * D;
  return heads * s / ((heads - k) * s + k * kappa);
}

json p_flops(int avg_seq, int d, int heads, int k, int new_tokens) {
  const double a = avg_seq, D = d;
  const double per_head = 4 * a * D + 5 * a;
  const double f_soft = heads * per_head;
  const double f_k = (heads - k) * per_head + k * 6 * D * D;
  const int64_t extra = std::max<int64_t>(0, static_cast<int64_t>(std::floor(new_tokens * f_soft / f_k)) - new_tokens);
  return {{"n_linear", k},
          {"flops_per_token_softmax", f_soft},
          {"flops_per_token", f_k},
          {"flops_per_token_ratio", r4(f_k / f_soft)},
          {"extra_tokens_at_equal_flops", extra}};
}

json reduce_p(Ctx& c) {
  namespace R = report;
  const std::string& m = c.label;
  const int heads = c.n_layer * c.n_head;
  const std::vector<std::string> conds = [] {
    std::vector<std::string> v;
    for (const auto& pc : p_conditions()) v.push_back(pc.name);
    return v;
  }();
  // d_head from the inputs' provenance (every GPT-2 size has 64).
  int d_head = 0;
  {
    const json prov = c.provenance();
    if (prov.contains("config") && prov.at("config").is_object())
      d_head = prov.at("config").value("d_head", 0);
  }
  const bool d_assumed = d_head <= 0;
  if (d_assumed) d_head = 64;

  // The heads each condition linearised (from the inputs, else the plan's clip).
  std::map<std::string, int> n_lin;
  std::map<std::string, int> nominal;
  for (const auto& pc : p_conditions()) {
    nominal[pc.name] = pc.n_linear;
    n_lin[pc.name] = std::min(pc.n_linear, (c.n_layer - 1) * c.n_head);
  }

  // ---- P1
  json p1 = json::object();
  json p1_kv = json::object();
  std::string p1_device;
  for (const auto& cond : conds) {
    const json& r = c.input("p/speed/" + cond);
    if (r.contains("n_linear")) n_lin[cond] = r.at("n_linear").get<int>();
    std::vector<double> times;
    for (const auto& t : r.at("times_s")) times.push_back(t.get<double>());
    if (times.empty()) throw std::runtime_error("p/speed/" + cond + " has no timed runs");
    const int new_tokens = r.at("new_tokens").get<int>();
    const double mean = np_mean(times), sd = pstd_of(times);
    p1[cond] = {{"mean_time", r4(mean)},
                {"std_time", r4(sd)},
                {"tokens_per_sec", r2(new_tokens / mean)},
                {"latency_ms", r2(mean / new_tokens * 1000.0)},
                {"n_runs", times.size()},
                {"new_tokens", new_tokens},
                {"n_linear", n_lin[cond]},
                {"kv_cache", r.value("kv_cache", false)},
                {"device", r.value("device", std::string())}};
    if (r.contains("kv_cache_timing")) {
      p1[cond]["kv_cache_timing"] = r.at("kv_cache_timing");
      p1_kv[cond] = r.at("kv_cache_timing");
    }
    if (p1_device.empty()) p1_device = r.value("device", std::string());
  }
  for (int n : {128, 512, 1024})
    for (const auto& pc : p_conditions()) {
      if (pc.n_linear == 0) continue;
      p1["theoretical_kernel_speedup_seq" + std::to_string(n) + "_n" + std::to_string(pc.n_linear)] =
          r4(p_kernel_speedup(n, d_head, heads, n_lin[pc.name]));
    }

  // ---- P2
  const int n_prompts = static_cast<int>(c.param_int("p_prompts", 20));
  const int iters = static_cast<int>(c.param_int("p_iterations", 3));
  json p2 = json::object();
  std::map<std::string, std::vector<double>> p2_mean;  // per cond, per iteration
  for (const auto& cond : conds) {
    std::vector<std::vector<double>> ppl(static_cast<size_t>(iters));
    for (int i = 0; i < n_prompts; ++i) {
      const std::string name = "p/refine/" + cond + "/" + std::to_string(i);
      const json& r = c.input(name);
      const json& it = r.at("iterations");
      if (static_cast<int>(it.size()) != iters)
        throw std::runtime_error(name + " has " + std::to_string(it.size()) + " iterations, the plan asked for " +
                                 std::to_string(iters));
      for (int k = 0; k < iters; ++k) {
        const json& row = it[static_cast<size_t>(k)];
        ppl[static_cast<size_t>(k)].push_back(
            ppl_of(row.at("nll_sum").get<double>(), row.at("n_tokens").get<double>()));
      }
    }
    json cj = json::object();
    for (int k = 0; k < iters; ++k) {
      const auto& v = ppl[static_cast<size_t>(k)];
      cj["iter" + std::to_string(k + 1)] = {{"mean_ppl", num_or_null(np_mean(v), 2)},
                                            {"median_ppl", num_or_null(median_of(v), 2)},
                                            {"std_ppl", num_or_null(pstd_of(v), 2)},
                                            {"n_samples", v.size()}};
      p2_mean[cond].push_back(np_mean(v));
    }
    p2[cond] = cj;
  }
  p2["note"] =
      "A11: every iteration's sequence is scored by the unmodified model (no hooks) over every token after the "
      "prompt, so iteration k scores all generated tokens so far, not only the newest; this measures how "
      "plausible the hooked model's text is to the original model, not the hooked model's own PPL.";

  // ---- P3
  const int prompt_len = static_cast<int>(c.param_int("p_prompt_len", 128));
  const int new_tokens = static_cast<int>(c.param_int("p_new_tokens", 64));
  const int n_cand = static_cast<int>(c.param_int("p3_candidates", 5));
  const int avg_seq = prompt_len + new_tokens / 2;
  json flops = json::object();
  for (const auto& cond : conds) flops[cond] = p_flops(avg_seq, d_head, heads, n_lin[cond], new_tokens);
  std::vector<int> Ns;
  for (int N : {1, 2, 3, 5})
    if (N <= n_cand) Ns.push_back(N);
  json bon = json::object();
  json seeds = json::object();
  std::map<std::string, std::vector<double>> bon_mean;
  for (const auto& cond : conds) {
    std::map<int, std::vector<double>> best;
    json cs = json::array();
    for (int i = 0; i < n_prompts; ++i) {
      const std::string name = "p/best/" + cond + "/" + std::to_string(i);
      const json& cands = c.input(name).at("candidates");
      if (static_cast<int>(cands.size()) != n_cand)
        throw std::runtime_error(name + " has " + std::to_string(cands.size()) + " candidates, the plan asked for " +
                                 std::to_string(n_cand));
      std::vector<double> ppl;
      json ps = json::array();
      for (const auto& cd : cands) {
        ppl.push_back(ppl_of(cd.at("nll_sum").get<double>(), cd.at("n_tokens").get<double>()));
        ps.push_back(cd.at("seed"));
      }
      cs.push_back(ps);
      for (int N : Ns) best[N].push_back(*std::min_element(ppl.begin(), ppl.begin() + N));
    }
    json cj = json::object();
    for (int N : Ns) {
      cj["N" + std::to_string(N)] = {{"mean_ppl", num_or_null(np_mean(best[N]), 2)},
                                     {"median_ppl", num_or_null(median_of(best[N]), 2)}};
      bon_mean[cond].push_back(np_mean(best[N]));
    }
    bon[cond] = cj;
    seeds[cond] = cs;
  }
  json p3 = {{"flops_analysis", flops},
             {"best_of_n", bon},
             {"avg_seq", avg_seq},
             {"temperature", c.job.params.value("p3_temperature", 0.8)},
             {"seeds", seeds},
             {"seed_rule", "p3_seed(p3_seed, condition, prompt, candidate): FNV-1a 64 + splitmix64, 53 bits "
                           "(experiments/exp10/common.h); A10: the original set no seed"},
             {"note", "each candidate scored by the unmodified model over its generated tokens (A11)"}};

  // ---- P4
  json p4n = json::object(), p4r = json::object();
  std::map<int, std::map<std::string, double>> p4;
  for (const auto& [key, res] : c.with_prefix("p/ppl/")) {
    const auto slash = key.find('/');
    if (slash == std::string::npos) throw std::runtime_error("input p/ppl/" + key + " is not p/ppl/<n>/<condition>");
    const int n = std::stoi(key.substr(0, slash));
    p4[n][key.substr(slash + 1)] = read_ppl(*res, "p/ppl/" + key).ppl;
  }
  if (p4.empty()) throw std::runtime_error("exp10p P4: no p/ppl/<n>/<condition> inputs");
  for (const auto& [n, row] : p4) {
    const std::string ns = std::to_string(n);
    for (const auto& cond : conds)
      if (!row.count(cond)) throw std::runtime_error("exp10p P4: missing p/ppl/" + ns + "/" + cond);
    json cj = json::object(), rj = json::object();
    for (const auto& cond : conds) cj[cond] = r4(row.at(cond));
    for (const auto& cond : conds)
      if (cond != "baseline") rj[cond] = r4(row.at(cond) / row.at("baseline"));
    p4n[ns] = cj;
    p4r[ns] = rj;
  }
  json p4j = p4n;
  p4j["ratios"] = p4r;
  p4j["max_tokens"] = c.param_int("p4_max_tokens", 50000);
  const int n_top = p4.rbegin()->first;
  const double ppl_baseline = p4.rbegin()->second.at("baseline");

  // K (2K, for comparison): the cumulative best curve's ratios at the
  // conditions' head counts.
  json k_cmp = json::object();
  if (const json* k = c.maybe("k/reduce"))
    if (k->contains("cumulative_best"))
      for (const auto& cond : conds) {
        if (cond == "baseline") continue;
        for (const auto& r : k->at("cumulative_best"))
          if (r.at("n_linearized").get<int>() == n_lin[cond]) k_cmp[cond] = r.at("ratio");
      }

  // A24: the conditions hard-code relu along best_ranking.
  const std::string best_method = c.input("j/reduce").value("best_method", std::string("relu"));
  const bool best_is_relu = best_method == "relu";

  json n_linear = json::object();
  for (const auto& cond : conds) n_linear[cond] = n_lin[cond];
  json doc = {{"model", c.param("model")},
              {"ppl_baseline", r4(ppl_baseline)},
              {"ppl_baseline_source", "P4 baseline at n = " + std::to_string(n_top)},
              {"conditions", conds},
              {"n_linear", n_linear},
              {"method", "relu"},
              {"best_method_2k", best_method},
              {"best_method_is_relu", best_is_relu},
              {"flop_constants", {{"heads", heads}, {"d_head", d_head}, {"d_head_assumed", d_assumed}}},
              {"p1_speed", p1},
              {"p2_self_refinement", p2},
              {"p3_best_of_n", p3},
              {"p4_context_length", p4j},
              {"k_ratio_2k", k_cmp}};

  // ---- figures
  namespace Rp = report;
  {
    Rp::Series tps{"tokens/s (full recompute)"}, kv{"tokens/s (KV cache)"};
    for (const auto& cond : conds) {
      tps.y.push_back(p1.at(cond).at("tokens_per_sec").get<double>());
      kv.y.push_back(p1_kv.contains(cond) ? p1_kv.at(cond).value("tokens_per_sec", std::nan("")) : std::nan(""));
    }
    Rp::Axis y;
    y.label = "tokens / s";
    std::vector<Rp::Series> groups = {tps};
    if (!p1_kv.empty()) groups.push_back(kv);
    c.emit_plot({"exp10p1_generation_speed_" + m,
                 "P1: greedy generation speed" + (p1_device.empty() ? "" : " (" + p1_device + ")") + " — " + m,
                 {Rp::bar_panel("", conds, groups, y, "condition")}});
  }
  {
    std::vector<Rp::Series> curves;
    for (const auto& cond : conds) {
      Rp::Series s{cond};
      s.style = Rp::Series::Style::linespoints;
      for (int k = 0; k < iters; ++k) {
        s.x.push_back(k + 1);
        s.y.push_back(p2_mean[cond][static_cast<size_t>(k)]);
      }
      curves.push_back(s);
    }
    Rp::Axis y;
    y.label = "mean PPL (unmodified model, after the prompt)";
    c.emit_plot({"exp10p2_self_refinement_" + m, "P2: self-refinement (A11: scored by the unhooked model) — " + m,
                 {Rp::line_panel("", Rp::count_axis("iteration"), y, curves)}});
  }
  {
    std::vector<Rp::Series> curves;
    for (const auto& cond : conds) {
      Rp::Series s{cond + " (FLOP ratio " + R::fixed(flops.at(cond).at("flops_per_token_ratio").get<double>(), 3) +
                   ")"};
      s.style = Rp::Series::Style::linespoints;
      for (size_t i = 0; i < Ns.size(); ++i) {
        s.x.push_back(Ns[i]);
        s.y.push_back(bon_mean[cond][i]);
      }
      curves.push_back(s);
    }
    Rp::Axis y;
    y.label = "mean best-of-N PPL";
    c.emit_plot({"exp10p3_equal_flops_" + m, "P3: best-of-N at T = 0.8 — " + m,
                 {Rp::line_panel("", Rp::count_axis("N (candidates)"), y, curves)}});
  }
  {
    std::vector<Rp::Series> curves;
    for (const auto& cond : conds) {
      Rp::Series s{cond};
      s.style = Rp::Series::Style::linespoints;
      for (const auto& [n, row] : p4) {
        s.x.push_back(n);
        s.y.push_back(row.at(cond));
      }
      curves.push_back(s);
    }
    Rp::Axis x;
    x.label = "context length n";
    x.scale = Rp::Scale::log;
    Rp::Axis y;
    y.label = "PPL";
    c.emit_plot({"exp10p4_context_length_" + m, "P4: PPL vs context length — " + m,
                 {Rp::line_panel("", x, y, curves)}});
  }

  // ---- report
  std::string md = "# exp10d Phase 3: spending the freed compute on generation (P1–P4) — " + m + "\n\n";
  md += "Conditions: `baseline` (no hooks), `relu_30` / `relu_70` = the first " + std::to_string(n_lin["relu_30"]) +
        " / " + std::to_string(n_lin["relu_70"]) +
        " heads of exp10j's best_ranking linearised with relu (method hard-coded, A24). Prompts are the first "
        "tokens of WikiText chunks (no natural-language task or CoT prompts exist).\n\n";
  if (!best_is_relu)
    md += "**Warning (A24):** exp10j's best method is " + best_method +
          ", not relu; as in the original these conditions still linearise with relu along that method's "
          "ranking.\n\n";
  md += "## P1: generation speed\n\n";
  {
    R::Table t({"condition", "heads", "mean time (s)", "std (s)", "tokens/s", "latency (ms/token)", "KV-cache tokens/s"},
               "lrrrrrr");
    for (const auto& cond : conds) {
      const json& r = p1.at(cond);
      t.row({cond, std::to_string(n_lin[cond]), R::fixed(r.at("mean_time").get<double>(), 3),
             R::fixed(r.at("std_time").get<double>(), 3), R::fixed(r.at("tokens_per_sec").get<double>(), 1),
             R::fixed(r.at("latency_ms").get<double>(), 1),
             p1_kv.contains(cond) && p1_kv.at(cond).contains("tokens_per_sec")
                 ? R::fixed(p1_kv.at(cond).at("tokens_per_sec").get<double>(), 1)
                 : ""});
    }
    md += t.str() + "\n";
    md += "Full recompute of the prefix at every step (no KV cache), as the original; device: " +
          (p1_device.empty() ? std::string("unknown") : p1_device) + ".\n\n";
    R::Table th({"n", "k = 30", "k = 70"}, "rrr");
    for (int n : {128, 512, 1024})
      th.row({std::to_string(n),
              R::fixed(p1.at("theoretical_kernel_speedup_seq" + std::to_string(n) + "_n30").get<double>(), 3) + "×",
              R::fixed(p1.at("theoretical_kernel_speedup_seq" + std::to_string(n) + "_n70").get<double>(), 3) + "×"});
    md += "Theoretical kernel speed-up H·s/((H − k)·s + k·κ), s = 4n²d + 5n², κ = 6nd² (H = " + std::to_string(heads) +
          ", d = " + std::to_string(d_head) + (d_assumed ? " assumed" : "") + "; k = heads really linearised):\n\n" +
          th.str() + "\n";
  }
  md += "## P2: self-refinement\n\n*Metric (A11): PPL of everything after the prompt under the unmodified model; "
        "iteration k scores all generated tokens so far.*\n\n";
  {
    std::vector<std::string> hdr = {"condition"};
    for (int k = 1; k <= iters; ++k) hdr.push_back("iter " + std::to_string(k) + " mean / median / std");
    R::Table t(hdr, std::string("l") + std::string(static_cast<size_t>(iters), 'r'));
    for (const auto& cond : conds) {
      std::vector<std::string> row = {cond};
      for (int k = 1; k <= iters; ++k) {
        const json& r = p2.at(cond).at("iter" + std::to_string(k));
        auto f = [](const json& v) { return v.is_null() ? std::string("n/a") : R::fixed(v.get<double>(), 2); };
        row.push_back(f(r.at("mean_ppl")) + " / " + f(r.at("median_ppl")) + " / " + f(r.at("std_ppl")));
      }
      t.row(row);
    }
    md += t.str() + "\n";
  }
  md += "## P3: best-of-N\n\n*Metric (A11): each candidate's generated tokens under the unmodified model; "
        "sampling seeded per (condition, prompt, candidate) (A10).*\n\n";
  {
    std::vector<std::string> hdr = {"condition", "FLOP ratio", "extra tokens"};
    for (int N : Ns) hdr.push_back("N=" + std::to_string(N) + " mean / median");
    R::Table t(hdr, "lrr" + std::string(Ns.size(), 'r'));
    for (const auto& cond : conds) {
      std::vector<std::string> row = {cond, R::fixed(flops.at(cond).at("flops_per_token_ratio").get<double>(), 3),
                                      std::to_string(flops.at(cond).at("extra_tokens_at_equal_flops").get<int64_t>())};
      for (int N : Ns) {
        const json& r = bon.at(cond).at("N" + std::to_string(N));
        auto f = [](const json& v) { return v.is_null() ? std::string("n/a") : R::fixed(v.get<double>(), 2); };
        row.push_back(f(r.at("mean_ppl")) + " / " + f(r.at("median_ppl")));
      }
      t.row(row);
    }
    md += t.str() + "\n";
  }
  md += "## P4: context length\n\n";
  {
    R::Table t({"n", "baseline", "relu_30 (ratio)", "relu_70 (ratio)"}, "rrrr");
    for (const auto& [n, row] : p4) {
      const std::string ns = std::to_string(n);
      t.row({ns, R::fixed(row.at("baseline"), 2),
             R::fixed(row.at("relu_30"), 2) + " (" + R::fixed(p4r.at(ns).at("relu_30").get<double>(), 3) + ")",
             R::fixed(row.at("relu_70"), 2) + " (" + R::fixed(p4r.at(ns).at("relu_70").get<double>(), 3) + ")"});
    }
    md += t.str() + "\n";
  }
  md += figures_section(c);
  json result = c.emit_json("exp10p_phase3_" + m, doc);
  md += provenance_md(result.at("provenance"));
  c.emit_text("exp10p_results_" + m + ".md", md, "text/markdown");
  if (!best_is_relu)
    c.out.notes.push_back("A24: exp10j's best_method is " + best_method + ", not relu; P conditions use relu");
  result["report_notes"] = c.out.notes;
  return result;
}

}  // namespace spt::exp10::detail
