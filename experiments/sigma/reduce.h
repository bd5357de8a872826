#pragma once
// The σ family's reduce steps (kind sigma.reduce), torch-free: CPU
// aggregation of direction/profile units into the original's JSON
// documents (spec §3–§5 field names, plus provenance), figures through the
// figure library, and one markdown report per experiment.
//
// job.params["reduce"] selects the step:
//   exp1_v1          exp1_{m}.json + figures              (legacy v1, §3.1)
//   exp1_v2          exp1_v2_{m}.json + figures           (§3.2)
//   exp1_report      exp1_basic.md / exp1_v2_results.md   (all models)
//   exp2_response    Part A of one word (CPU unit)
//   exp2_fit         Part B: one fit family of one word (CPU unit)
//   exp2             exp2_{m}.json + figures (A, B, C)
//   exp2_report      exp2_results.md
//   exp3_regress     Parts B+C of one word: per-depth linregress, h*
//   exp3             exp3_{m}.json + figures (D: f(l) correlations, f_max)
//   exp3_report      exp3_results.md
//   exp3ef           exp3ef_{m}.json + figures (E, F)
//   exp3ef_truncated exp3ef_truncated_{m}.json (non-binding, spec A8)
//   exp3ef_cross     exp3g_cross_model.json + figures (G)
//   exp3ef_report    exp3ef_results.md
// Errors: std::runtime_error naming the job and what is missing.
#include "platform/reduce_context.h"
#include "spt/job.h"

namespace spt::sigma {

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& ctx);

}  // namespace spt::sigma
