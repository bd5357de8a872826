#pragma once
// exp10.gen (spec §10.4 P1–P3): one generation unit of exp10d Phase 3 on the
// worker's shared model host, with the job's condition (variant, resolved as
// exp10.ppl resolves it: exp10/variants.h) active at every step.
//
// Params (plan.cc, part p): the VFULL chunk-set params (the prompt is the
// first prompt_len tokens of chunk prompt_index), variant, condition,
// n_linear, new_tokens, n_ctx_needed (checked against the model: a
// permanent error naming the params to lower), kv_cache (default false:
// full recompute, as the original), and per task:
//   speed      runs, warmup_runs: greedy; warm-up, then `runs` timed
//              generations (steady clock; generate() syncs every step);
//              then the same with the KV cache. Planned exclusive.
//   refine     iterations: each appends new_tokens greedy tokens to the
//              whole sequence; after each, score_tail(from = prompt_len).
//   best_of_n  candidates, temperature, seeds (one per candidate, planned):
//              sampled; each scored by score_tail(from = prompt_len).
// Result: {task, condition, n_linear, variant, prompt_index, prompt_len,
//   new_tokens, device, chunks, provenance, kv_cache, and
//   speed: times_s, mean_time, std_time (population), tokens_per_sec,
//          latency_ms, runs, warmup_runs, tokens, kv_cache_timing {mean_time,
//          std_time, tokens_per_sec, latency_ms}, kv_cache_same_tokens;
//   refine: iterations [{iteration, nll_sum, n_tokens, ppl, length}], tokens;
//   best_of_n: candidates [{candidate, seed, nll_sum, n_tokens, ppl,
//          tokens}], temperature}.
#include <memory>

#include "spt/job.h"

namespace spt::exp10 {

std::unique_ptr<Executor> make_gen_executor();

}  // namespace spt::exp10
