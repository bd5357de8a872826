#pragma once
// k-means with scikit-learn's KMeans semantics (spec §2.6): greedy k-means++
// seeding (2 + ⌊ln k⌋ candidates per centre), Lloyd iterations (max_iter
// 300, tol = 1e-4 · mean per-feature variance on the total squared centre
// shift), best inertia of n_init restarts, final labels recomputed from the
// final centres. The RNG is this project's (a seeded mt19937_64), so labels
// cannot match sklearn's for the same seed (spec §12 A13): compare inertia.
//
// Deterministic for a given (x, options) on any platform (the uniform
// draws are derived bit-wise, not via <random> distributions). Errors:
// std::invalid_argument for an empty/ragged x, k outside [1, n_samples] or
// n_init < 1. Thread-safe (no shared state). Torch-free.
#include <cstdint>
#include <vector>

#include "analysis/pca.h"

namespace spt::analysis {

struct KMeansOptions {
  int64_t k = 8;
  int n_init = 10;
  uint64_t seed = 42;   // recorded with every result; not sklearn's stream
  int max_iter = 300;
  double tol = 1e-4;    // relative, as sklearn's tol
};

struct KMeansResult {
  Matrix centers;                 // k × n_features
  std::vector<int64_t> labels;    // n_samples, in [0, k)
  double inertia = 0;             // Σ squared distance to the own centre
  int n_iter = 0;                 // Lloyd iterations of the best restart
  int best_init = 0;              // which restart won (0-based)
  uint64_t seed = 0;
};

KMeansResult kmeans(const Matrix& x, const KMeansOptions& opt);

// Per cluster, the index of the member nearest its centre (Euclidean; ties:
// lowest index); -1 for an empty cluster. Sizes: members per cluster.
std::vector<int64_t> nearest_members(const Matrix& x, const KMeansResult& r);
std::vector<int64_t> cluster_sizes(const KMeansResult& r);

}  // namespace spt::analysis
