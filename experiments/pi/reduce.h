#pragma once
// The π family's reduce steps (kind pi.reduce), torch-free: documents with
// the spec's field names (§8, §9) plus provenance, figures through the
// figure library, and one markdown report per experiment.
//
// job.params["reduce"] selects the step:
//   exp8              exp8_{m}.json + figures: A (erf width vs 1/√π), B (π
//                     models merged with exp3ef's fits), C (rotation angles)
//   exp8_report       exp8_results.md (all models)
//   exp9_a            exp9_part_a_{m}.json: σ_free, per-word σ, h_source
//   exp9_c            one model's cos_pi_0p vs erf vs sin_pi_1p (ΔBIC)
//   exp9_convergence  A's regression of σ_free on 1/L + figures
//   exp9_b            exp9_part_b_{m}.json per model + Θ scaling fits
//   exp9_report       exp9_convergence.json + exp9_results.md
// Errors: std::runtime_error naming the job and what is missing.
#include "platform/reduce_context.h"
#include "spt/job.h"

namespace spt::pi {

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& ctx);

}  // namespace spt::pi
