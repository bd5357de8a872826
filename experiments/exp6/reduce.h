#pragma once
// exp6's CPU steps (exp6.reduce), chosen by params.reduce:
//   kmeans  6C: k-means++ (n_init, recorded seed; analysis/kmeans.h) on the
//           first n_scores PCA scores of a/pca; labels, representatives
//           (member nearest its centroid), cluster sizes, n_replaced, inertia
//   exp6    the report: sums every variant's (nll, count) sub-units in
//           double (checking that their chunk ranges tile T exactly once),
//           PPL and ratios, the K = all check, and writes exp6_<label>.json,
//           exp6_results_<label>.md and the §6 figures
// Errors: std::runtime_error naming the job and what is missing.
#include "platform/reduce_context.h"

namespace spt::exp6 {

platform::ReduceOutput run_reduce(const JobSpec& job, const platform::ReduceContext& rc);

// Sums the sub-unit results of one variant: (nll, count, chunks). Throws
// std::runtime_error when their chunk ranges overlap or leave a gap.
struct VariantSum {
  double nll = 0;
  int64_t count = 0, n_chunks = 0;
  double ppl() const;
};
VariantSum sum_units(const std::vector<const nlohmann::json*>& units, const std::string& variant);

}  // namespace spt::exp6
