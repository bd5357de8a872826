#pragma once
// Reads a model's activations at the target word of many prompts (spec
// §1.5, §2.3) and the logit lens (spec §4 Part C). LibTorch stays inside
// probe.cc; this header is torch-free.
//
// One probe() call runs all its prompts through one model in as few
// forwards as its memory budget allows: prompts are sorted by length,
// grouped, and right-padded to the longest of their group. Causal attention
// makes right padding exact at every position <= the prompt's own last
// token, and the target always lies there, so results do not depend on
// the grouping beyond float round-off of batched matrix products. Never
// left-pad (positions would shift).
//
// Not safe to call concurrently on the same Model (the engine's forward is
// not promised to be); different Models are independent.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "spt/gpt2.h"

namespace spt::platform {

// The target position of `word` in ids (spec §1.5, find_token_position):
// each token's text is tok.token_str(id) with ASCII whitespace stripped and
// ASCII letters lower-cased; word is lower-cased too. Scan from the END for
// the first token equal to word; failing that, from the end for the first
// token containing it. forwards=true scans from the start instead (first
// match; exp1 v1's legacy semantics). Throws std::invalid_argument for an
// empty word, std::runtime_error naming the word, the decoded prompt and its
// tokens when nothing matches.
int find_target(const Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& word,
                bool forwards = false);

// The special read name for the residual stream at every depth l = 0..L
// (spec §0.1): blocks.0.hook_resid_pre, then blocks.{l}.hook_resid_post for
// l = 0..L-1. Its read has shape [n_prompts, L+1, d_model].
inline constexpr const char* kResidDepths = "resid_depths";

struct ProbeRequest {
  std::vector<std::string> prompts;
  std::string word;       // the target word of every prompt ...
  std::vector<std::string> words;  // ... or one per prompt (then words.size() == prompts.size())
  bool forwards = false;  // find_target's scan direction
  bool bos = true;        // prepend <|endoftext|> (50256), as TransformerLens's to_tokens
  // TransformerLens hook names read at the target position, plus
  // kResidDepths. A hook of shape [B, T, ...] reads [...] at the target;
  // hook_attn_scores / hook_pattern ([B, H, Q, K]) read the target's query
  // row [H, Tmax], Tmax = the longest prompt of the request, keys past the
  // target holding what the causal mask puts there (-inf scores, 0 pattern).
  // No hooks: tokens and targets only, no forward. No prompts: each read
  // has shape {0}.
  std::vector<std::string> hooks;
  // Activation memory one forward may use; 0 = $SPT_PROBE_BUDGET_MB or
  // 256 MiB. A group always holds at least one prompt.
  int64_t budget_bytes = 0;
};

// Row-major; shape[0] = number of prompts (request order).
struct ProbeRead {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct ProbeResult {
  std::vector<std::vector<int32_t>> tokens;  // per prompt, BOS included when asked
  std::vector<int> target;                   // index into tokens[i]
  std::map<std::string, ProbeRead> reads;    // by requested name
  int forwards = 0;                          // how many batched forwards ran
};

// Tokenises (tok.encode, BOS prepended as id tok.eot()), finds the targets,
// and reads the requested hooks at them (float32, on the CPU). Logits are
// never formed; blocks after the last one a read needs are not run.
// Throws std::invalid_argument for an unknown hook name, or naming the
// prompt (index and text) when it is empty, longer than n_ctx, or has no
// target (std::runtime_error from find_target, prefixed with the prompt).
ProbeResult probe(gpt2::Model& m, const Tokenizer& tok, const ProbeRequest& req);

// Totals over every probe() call of this process that ran a forward: for
// benchmarks (how many forwards a batch of prompts took). Thread-safe.
struct ProbeStats {
  int64_t calls = 0, prompts = 0, forwards = 0;
};
ProbeStats probe_stats();

struct LensTop {
  std::vector<int32_t> ids;        // top-k, most probable first
  std::vector<std::string> tokens; // tok.token_str(id)
  std::vector<double> probs;
};

// Logit lens over n_rows residual vectors (rows: n_rows × d_model floats,
// row-major, centred residuals as probe() reads them): for each row r,
// p = softmax(LN(r)·W_U [+ b_U]) on the processed weights(model), top-k.
// LN is the model's ln_final: LNPre = (x − mean)/sqrt(var + eps) when LN is
// folded (the default); with fold_ln off, its γ is applied and β only when
// with_bias (β·W_U is exactly what folding moves into b_U).
// with_bias=false reproduces the original exp2 lens (no b_U: not the model's
// output distribution even at depth L, spec §4 issue (i); flag it in
// results); with_bias=true is the corrected lens (at depth L it equals the
// model's own next-token distribution). Softmax in float32, probs as double.
// Throws std::invalid_argument when rows.size() != n_rows·d_model or k is
// not in [1, vocab].
std::vector<LensTop> logit_lens(gpt2::Model& m, const Tokenizer& tok, const std::vector<float>& rows, int n_rows,
                                bool with_bias, int k);

}  // namespace spt::platform
