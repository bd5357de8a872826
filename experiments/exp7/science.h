#pragma once
// exp7's numerics on plain arrays (spec §7, §2.6), torch-free: slabs of a
// capture as PCA input, variance thresholds, the shared-basis
// reconstruction metrics of 7C, ‖Δφ‖ statistics. PCA itself is
// analysis/pca.h. Thread-safe (no shared state); std::invalid_argument on
// inconsistent shapes.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "analysis/pca.h"
#include "exp7/arrays.h"

namespace spt::exp7 {

// Slab `index` of an array of shape [..., n, d] (leading dims flattened) as
// an n × d float64 matrix.
analysis::Matrix slab(const F32Array& a, int64_t index);
// Slabs [0, count) stacked: (count·n) × d, slab-major (7C's 12000 × 768).
analysis::Matrix stacked(const F32Array& a, int64_t count);
int64_t slab_count(const F32Array& a);

// {"0.5": K, "0.8": K, "0.9": K, "0.95": K}: K(t) of §2.6, the number of
// components when a threshold is never reached (exp7's convention).
nlohmann::json thresholds_json(const std::vector<double>& explained_variance_ratio);

// 7C: recon = ((X − μ)·U_kᵀ)·U_k + μ for each row of X, with U_k the first
// k components of `p`; metrics averaged over rows:
//   cos_sim     mean cos(X_i, recon_i), each norm clamped at 1e-10
//   l2_error    mean ‖X_i − recon_i‖
//   relative_l2 l2_error / mean ‖X_i‖
// X's rows must be rows [row0, row0 + n) of the data `p` was fitted on, so
// p.scores holds their projections; p must have all min(n_samples,
// n_features) components (k ≤ that).
struct Recon {
  double cos_sim = 0, l2_error = 0, relative_l2 = 0;
};
Recon reconstruction(const analysis::Matrix& X, const analysis::Pca& p, int64_t row0, int64_t k);

// Mean and population std (ddof 0) of the row norms ‖X_i‖.
struct NormStats {
  double mean = 0, std = 0;
};
NormStats row_norms(const float* x, int64_t n, int64_t d);

}  // namespace spt::exp7
