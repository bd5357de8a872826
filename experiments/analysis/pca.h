#pragma once
// PCA with scikit-learn's semantics (spec §2.6), in float64.
//
// X is row-major n_samples × n_features. The column mean μ is subtracted;
// the centred matrix's thin SVD gives components (right singular vectors,
// rows, decreasing singular value) and
//   explained_variance_ratio[i] = s_i² / Σ_all s²,
//   explained_variance[i]       = s_i² / (n_samples − 1),
//   scores                      = (X − μ)·componentsᵀ.
// Signs of components are arbitrary (nothing in the project depends on
// them). The SVD is LAPACK's, through LibTorch; this header is torch-free.
//
// Errors: std::invalid_argument for an empty or ragged X, or
// n_components outside [1, min(n_samples, n_features)]. Thread-safe (no
// shared state).
#include <cstdint>
#include <optional>
#include <vector>

namespace spt::analysis {

struct Matrix {  // row-major
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double at(int64_t r, int64_t c) const { return v[static_cast<size_t>(r * cols + c)]; }
  double& at(int64_t r, int64_t c) { return v[static_cast<size_t>(r * cols + c)]; }
};

struct Pca {
  std::vector<double> mean;                      // n_features
  Matrix components;                             // n_components × n_features
  std::vector<double> singular_values;           // n_components
  std::vector<double> explained_variance;        // n_components
  std::vector<double> explained_variance_ratio;  // n_components (of the total, all components)
  Matrix scores;                                 // n_samples × n_components
};

// n_components < 0: min(n_samples, n_features).
Pca pca(const Matrix& x, int64_t n_components = -1);

// K(t) = 1 + first i with cumsum(ratio)[i] ≥ t; nullopt if never reached
// (exp6 stores null, exp7 stores the component count — the caller decides).
std::optional<int64_t> components_for(const std::vector<double>& explained_variance_ratio, double t);

}  // namespace spt::analysis
