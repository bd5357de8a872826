#include "platform/probe.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>

#include "spt/gpt2_hooks.h"

namespace spt::platform {

namespace {

std::atomic<int64_t> g_calls{0}, g_prompts{0}, g_forwards{0};  // probe_stats()


std::string normalise_token(std::string s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  s = s.substr(b, s.find_last_not_of(ws) - b + 1);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// The JSON-ish quoted form of a string for error messages.
std::string quoted(const std::string& s) { return "\"" + Tokenizer::to_valid_utf8(s) + "\""; }

std::string describe_prompt(size_t i, const std::string& text) {
  return "prompt #" + std::to_string(i) + " " + quoted(text);
}

// Block index of a "blocks.{l}.…" name, -1 for other names.
int block_of(const std::string& name) {
  if (name.rfind("blocks.", 0) != 0) return -1;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos || dot == 7) return -1;
  int l = 0;
  for (size_t i = 7; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9' || l > 100000) return -1;
    l = l * 10 + (name[i] - '0');
  }
  return l;
}

const char* const kBlockPoints[] = {
    "hook_resid_pre",      "ln1.hook_normalized",   "attn.hook_q",       "attn.hook_k",
    "attn.hook_v",         "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",
    "hook_attn_out",       "hook_resid_mid",        "ln2.hook_normalized", "mlp.hook_pre",
    "mlp.hook_post",       "hook_mlp_out",          "hook_resid_post",
};

bool known_hook(const std::string& name, int n_layer) {
  if (name == "hook_embed" || name == "hook_pos_embed" || name == "ln_final.hook_normalized") return true;
  const int l = block_of(name);
  if (l < 0 || l >= n_layer) return false;
  const std::string point = name.substr(name.find('.', 7) + 1);
  for (const char* p : kBlockPoints)
    if (point == p) return true;
  return false;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// [B, H, Q, K] hooks: read the target's query row, keys padded to Tmax.
bool is_attention_map(const std::string& name) {
  return ends_with(name, "attn.hook_attn_scores") || ends_with(name, "attn.hook_pattern");
}

int64_t default_budget() {
  if (const char* e = std::getenv("SPT_PROBE_BUDGET_MB")) {
    const long long mb = std::atoll(e);
    if (mb > 0) return static_cast<int64_t>(mb) << 20;
  }
  return int64_t{256} << 20;
}

// Rough float32 working set of one prompt row of padded length T in one
// forward: residual-sized temporaries (resid, LN, q/k/v, z, attention and
// MLP outputs, …), the MLP hidden layer twice, scores + pattern + mask.
int64_t row_bytes(const gpt2::Config& c, int64_t T) {
  return 4 * T * (16 * int64_t{c.d_model} + 3 * int64_t{c.d_mlp} + 3 * int64_t{c.n_head} * T);
}

// Where one engine hook's per-row read goes.
struct Dest {
  std::string read;   // key in ProbeResult::reads
  int64_t slot = -1;  // depth index for kResidDepths, else -1
};

}  // namespace

int find_target(const Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& word, bool forwards) {
  if (word.empty()) throw std::invalid_argument("find_target: empty word");
  const std::string w = lower(word);
  const int n = static_cast<int>(ids.size());
  std::vector<std::string> strs(ids.size());
  for (int i = 0; i < n; ++i) strs[i] = normalise_token(tok.token_str(ids[i]));
  // Index order of the scan: backwards (spec §1.5) or forwards (exp1 v1).
  auto scan = [&](const std::function<bool(const std::string&)>& match) {
    for (int k = 0; k < n; ++k) {
      const int i = forwards ? k : n - 1 - k;
      if (match(strs[i])) return i;
    }
    return -1;
  };
  int i = scan([&](const std::string& s) { return s == w; });
  if (i < 0) i = scan([&](const std::string& s) { return s.find(w) != std::string::npos; });
  if (i >= 0) return i;
  std::string toks;
  for (int k = 0; k < n; ++k) toks += (k ? ", " : "") + quoted(tok.token_str(ids[k]));
  throw std::runtime_error("no token matches word " + quoted(word) + " in prompt " + quoted(tok.decode_utf8(ids)) +
                           " (tokens: [" + toks + "])");
}

ProbeResult probe(gpt2::Model& m, const Tokenizer& tok, const ProbeRequest& req) {
  const gpt2::Config& c = m.info().config;
  const size_t N = req.prompts.size();
  if (!req.words.empty() && req.words.size() != N)
    throw std::invalid_argument("probe: " + std::to_string(req.words.size()) + " words for " + std::to_string(N) +
                                " prompts");
  ProbeResult out;

  // Which engine hooks feed which reads, and how far the forward must run.
  std::map<std::string, std::vector<Dest>> taps;
  int stop = 0;
  std::set<std::string> seen;
  for (const auto& name : req.hooks) {
    if (!seen.insert(name).second) continue;
    if (name == kResidDepths) {
      taps[gpt2::hook_name(0, "hook_resid_pre")].push_back({name, 0});
      for (int l = 0; l < c.n_layer; ++l) taps[gpt2::hook_name(l, "hook_resid_post")].push_back({name, l + 1});
      stop = c.n_layer;
      continue;
    }
    if (!known_hook(name, c.n_layer))
      throw std::invalid_argument("probe: unknown hook name " + quoted(name) + " for a model with " +
                                  std::to_string(c.n_layer) + " layers");
    taps[name].push_back({name, -1});
    if (name == "ln_final.hook_normalized") stop = c.n_layer;
    stop = std::max(stop, block_of(name) + 1);
  }

  // Tokens and targets, checked up front so errors come before any forward.
  const int32_t eot = tok.eot();
  if (req.bos && (eot < 0 || eot >= c.vocab))
    throw std::invalid_argument("probe: BOS id " + std::to_string(eot) + " is outside the model's vocab of " +
                                std::to_string(c.vocab));
  out.tokens.resize(N);
  out.target.resize(N);
  int64_t t_max = 0;
  for (size_t i = 0; i < N; ++i) {
    std::vector<int32_t>& ids = out.tokens[i];
    if (req.bos) ids.push_back(eot);
    const std::vector<int32_t> body = tok.encode(req.prompts[i]);
    ids.insert(ids.end(), body.begin(), body.end());
    if (ids.empty()) throw std::invalid_argument("probe: " + describe_prompt(i, req.prompts[i]) + " has no tokens");
    if (static_cast<int64_t>(ids.size()) > c.n_ctx)
      throw std::invalid_argument("probe: " + describe_prompt(i, req.prompts[i]) + " has " +
                                  std::to_string(ids.size()) + " tokens, more than the model's n_ctx " +
                                  std::to_string(c.n_ctx));
    for (int32_t id : ids)
      if (id < 0 || id >= c.vocab)
        throw std::invalid_argument("probe: " + describe_prompt(i, req.prompts[i]) + " has token id " +
                                    std::to_string(id) + ", outside the model's vocab of " + std::to_string(c.vocab));
    try {
      out.target[i] = find_target(tok, ids, req.words.empty() ? req.word : req.words.at(i), req.forwards);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("probe: " + describe_prompt(i, req.prompts[i]) + ": " + e.what());
    }
    t_max = std::max<int64_t>(t_max, static_cast<int64_t>(ids.size()));
  }
  if (taps.empty() || N == 0) {
    for (const auto& name : seen) out.reads[name].shape = {0};
    return out;
  }

  // Groups: shortest first, each as large as the budget allows (≥ 1 row).
  const int64_t budget = req.budget_bytes > 0 ? req.budget_bytes : default_budget();
  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return out.tokens[a].size() < out.tokens[b].size(); });
  std::vector<std::vector<size_t>> groups;
  for (size_t i : order) {
    const int64_t T = static_cast<int64_t>(out.tokens[i].size());
    if (groups.empty() || static_cast<int64_t>(groups.back().size() + 1) * row_bytes(c, T) > budget)
      groups.emplace_back();
    groups.back().push_back(i);
  }

  const int32_t pad = (eot >= 0 && eot < c.vocab) ? eot : 0;  // any id works: never attended to
  const at::Device dev = gpt2::device(m);
  at::NoGradGuard no_grad;
  for (const auto& g : groups) {
    const int64_t B = static_cast<int64_t>(g.size());
    const int64_t T = static_cast<int64_t>(out.tokens[g.back()].size());  // sorted: the last is longest
    at::Tensor tokens = at::full({B, T}, pad, at::kLong);
    at::Tensor tgt = at::empty({B}, at::kLong);
    auto tok_a = tokens.accessor<int64_t, 2>();
    auto tgt_a = tgt.accessor<int64_t, 1>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& ids = out.tokens[g[b]];
      for (size_t t = 0; t < ids.size(); ++t) tok_a[b][static_cast<int64_t>(t)] = ids[t];
      tgt_a[b] = out.target[g[b]];
    }
    const at::Tensor rows = at::arange(B, at::TensorOptions().dtype(at::kLong).device(dev));
    const at::Tensor tgt_dev = tgt.to(dev);

    // User hooks keep only the target rows (B × …, not B × T × …); caching
    // whole activations would hold L+1 full residual streams for resid_depths.
    std::map<std::string, at::Tensor> got;
    gpt2::RunOptions o;
    o.logits = false;
    o.stop_at_layer = stop;
    for (const auto& [name, dests] : taps) {
      (void)dests;
      o.hooks.push_back({name, [&got, &rows, &tgt_dev](const at::Tensor& act, const std::string& n) {
                           at::Tensor sel = is_attention_map(n) ? act.permute({0, 2, 1, 3}).index({rows, tgt_dev})
                                                                : act.index({rows, tgt_dev});
                           got[n] = sel.to(at::kCPU, at::kFloat).contiguous();
                           return at::Tensor();
                         }});
    }
    gpt2::run(m, tokens, o);
    ++out.forwards;

    for (const auto& [name, dests] : taps) {
      auto it = got.find(name);
      if (it == got.end()) throw std::logic_error("probe: the engine did not call hook " + name);
      at::Tensor sel = it->second;  // [B, ...]
      if (is_attention_map(name) && sel.size(2) < t_max) {
        // Keys past T: what a forward padded to Tmax would hold there for a
        // query at the target (masked: -inf scores, 0 pattern).
        const float fill = ends_with(name, "hook_attn_scores") ? -std::numeric_limits<float>::infinity() : 0.f;
        sel = at::cat({sel, at::full({B, sel.size(1), t_max - sel.size(2)}, fill, at::kFloat)}, 2);
      }
      std::vector<int64_t> row_shape(sel.sizes().begin() + 1, sel.sizes().end());
      const int64_t row_numel = sel.numel() / B;
      for (const Dest& d : dests) {
        ProbeRead& r = out.reads[d.read];
        if (r.shape.empty()) {
          r.shape = {static_cast<int64_t>(N)};
          if (d.slot >= 0) r.shape.push_back(c.n_layer + 1);
          r.shape.insert(r.shape.end(), row_shape.begin(), row_shape.end());
          int64_t total = 1;
          for (int64_t s : r.shape) total *= s;
          r.data.assign(static_cast<size_t>(total), 0.f);
        }
        const int64_t per_prompt = static_cast<int64_t>(r.data.size()) / static_cast<int64_t>(N);
        const float* src = sel.data_ptr<float>();
        for (int64_t b = 0; b < B; ++b) {
          const int64_t off = static_cast<int64_t>(g[b]) * per_prompt + (d.slot >= 0 ? d.slot * row_numel : 0);
          std::copy(src + b * row_numel, src + (b + 1) * row_numel, r.data.begin() + off);
        }
      }
    }
  }
  g_calls.fetch_add(1, std::memory_order_relaxed);
  g_prompts.fetch_add(static_cast<int64_t>(N), std::memory_order_relaxed);
  g_forwards.fetch_add(out.forwards, std::memory_order_relaxed);
  return out;
}

ProbeStats probe_stats() {
  return {g_calls.load(std::memory_order_relaxed), g_prompts.load(std::memory_order_relaxed),
          g_forwards.load(std::memory_order_relaxed)};
}

std::vector<LensTop> logit_lens(gpt2::Model& m, const Tokenizer& tok, const std::vector<float>& rows, int n_rows,
                                bool with_bias, int k) {
  const gpt2::Config& c = m.info().config;
  if (n_rows < 0 || rows.size() != static_cast<size_t>(n_rows) * static_cast<size_t>(c.d_model))
    throw std::invalid_argument("logit_lens: " + std::to_string(rows.size()) + " floats for " +
                                std::to_string(n_rows) + " rows of d_model " + std::to_string(c.d_model));
  if (k < 1 || k > c.vocab)
    throw std::invalid_argument("logit_lens: k = " + std::to_string(k) + " not in [1, " + std::to_string(c.vocab) + "]");
  std::vector<LensTop> out(static_cast<size_t>(n_rows));
  if (n_rows == 0) return out;
  const gpt2::Weights& w = gpt2::weights(m);
  at::NoGradGuard no_grad;
  const at::Tensor x = at::from_blob(const_cast<float*>(rows.data()), {n_rows, c.d_model}, at::kFloat)
                           .to(w.W_U.device(), at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  // The model's ln_final: LNPre when folded (lnf_w/lnf_b undefined); with
  // fold_ln off its β is what folding would move into b_U, so it goes with it.
  const at::Tensor xn = at::layer_norm(x, {c.d_model}, w.lnf_w, with_bias ? w.lnf_b : at::Tensor(), c.eps);
  at::Tensor logits = w.W_U.scalar_type() == at::kFloat ? at::mm(xn, w.W_U)
                                                        : at::mm(xn.to(w.W_U.scalar_type()), w.W_U).to(at::kFloat);
  if (with_bias) logits.add_(w.b_U);
  const at::Tensor probs = at::softmax(logits, -1);
  const auto top = at::topk(probs, k, /*dim=*/-1, /*largest=*/true, /*sorted=*/true);
  const at::Tensor p = std::get<0>(top).to(at::kCPU).contiguous();
  const at::Tensor ids = std::get<1>(top).to(at::kCPU).contiguous();
  auto pa = p.accessor<float, 2>();
  auto ia = ids.accessor<int64_t, 2>();
  for (int r = 0; r < n_rows; ++r) {
    LensTop& t = out[static_cast<size_t>(r)];
    for (int j = 0; j < k; ++j) {
      const auto id = static_cast<int32_t>(ia[r][j]);
      t.ids.push_back(id);
      t.tokens.push_back(static_cast<size_t>(id) < tok.vocab_size() ? tok.token_str(id) : std::string());
      t.probs.push_back(static_cast<double>(pa[r][j]));
    }
  }
  return out;
}

}  // namespace spt::platform
