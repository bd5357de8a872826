#pragma once
// exp7's CPU steps (kind exp7.reduce), torch-free apart from the PCA's
// LAPACK (analysis/pca.h). job.params["reduce"] selects the step:
//   pca     PCA of one slab of a capture artifact (params source, index,
//           block, what, basis): explained_variance_ratio, thresholds; with
//           basis=true also the basis as an artifact — shape [1 + n_comp, d],
//           row 0 μ, rows 1.. the components — named in "basis" by sha256.
//   shared  PCA of every block's Δφ stacked (7C): thresholds, the
//           reconstruction metrics for recon_ks per block, the basis artifact.
//   exp7    the document exp7_<label>.json (spec §7 fields), figures, and
//           exp7_results_<label>.md; sums 7D's (variant, chunk range)
//           sub-units in double and checks they cover the chunk set once.
// Errors: std::runtime_error naming what is missing or inconsistent.
#include "platform/reduce_context.h"
#include "spt/job.h"

namespace spt::exp7 {

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& ctx);

}  // namespace spt::exp7
