#pragma once
// The exp7 family's executors, registered into the worker:
//   exp7.capture  one forward per chunk until max_samples positions are
//                 collected (chunk 0 first, position 0 included: A17);
//                 points "dphi": Δφ_b = resid_post_b − resid_pre_b, shape
//                 [L, n, d]; points "attn_mlp": hook_attn_out then
//                 hook_mlp_out, shape [2, L, n, d]. The array goes out as an
//                 artifact (exp7/arrays.h); the result names it by sha256
//                 and carries ‖·‖ statistics per block and, for "dphi", the
//                 largest |Δφ − (attn_out + mlp_out)| seen.
//   exp7.ppl      Σ NLL of one variant over chunks [chunk_begin, chunk_end)
//                 of the chunk set (clipped to the chunks that exist), the
//                 variant's projections built from the basis artifacts its
//                 inputs name (gpt2::ResidualProjection). Jobs of one model
//                 and data run as a group, one variant's bases in memory at
//                 a time.
//   exp7.reduce   CPU steps (exp7/reduce.h).
// Errors: bad params or inputs fail a job for good (PermanentError); a
// failed fetch or compute failure is retried.
namespace spt {
class ExecutorRegistry;
}

namespace spt::exp7 {

void register_executors(spt::ExecutorRegistry& reg);

}  // namespace spt::exp7
