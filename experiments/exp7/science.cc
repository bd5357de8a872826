#include "exp7/science.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "exp7/common.h"

namespace spt::exp7 {

using analysis::Matrix;

int64_t slab_count(const F32Array& a) {
  if (a.shape.size() < 2) throw std::invalid_argument("array needs at least 2 dimensions");
  return a.numel() / (a.shape[a.shape.size() - 2] * a.shape.back());
}

analysis::Matrix slab(const F32Array& a, int64_t index) {
  const int64_t count = slab_count(a);
  if (index < 0 || index >= count)
    throw std::invalid_argument("slab " + std::to_string(index) + " of " + std::to_string(count));
  Matrix m;
  m.rows = a.shape[a.shape.size() - 2];
  m.cols = a.shape.back();
  const float* p = a.data.data() + index * m.rows * m.cols;
  m.v.assign(p, p + m.rows * m.cols);
  return m;
}

analysis::Matrix stacked(const F32Array& a, int64_t count) {
  if (count < 1 || count > slab_count(a)) throw std::invalid_argument("bad slab count " + std::to_string(count));
  Matrix m;
  m.rows = count * a.shape[a.shape.size() - 2];
  m.cols = a.shape.back();
  m.v.assign(a.data.begin(), a.data.begin() + m.rows * m.cols);
  return m;
}

nlohmann::json thresholds_json(const std::vector<double>& ratio) {
  nlohmann::json j = nlohmann::json::object();
  for (double t : kThresholds)
    j[threshold_key(t)] = analysis::components_for(ratio, t).value_or(static_cast<int64_t>(ratio.size()));
  return j;
}

// With orthonormal components U and scores s_i = (X_i − μ)·Uᵀ (from the
// PCA), recon_i − μ = s_i[:k]·U_k, so every metric follows from s_i and a
// few dot products, without forming recon (12 blocks × 6 K × 1000 × 768):
//   ‖X_i − recon_i‖² = Σ_{j≥k} s_ij²
//   X_i·recon_i      = X_i·μ + Σ_{j<k} s_ij (s_ij + μ·U_j)
//   ‖recon_i‖²       = ‖μ‖² + 2 Σ_{j<k} s_ij (μ·U_j) + ‖s_i[:k]‖²
// The first line needs every component (a PCA with min(n, d) of them spans
// all centred rows it was fitted on); it sums the tail rather than taking
// ‖X_i − μ‖² − ‖s_i[:k]‖², whose cancellation near a complete k would leave
// an error of √ε·‖X_i − μ‖.
Recon reconstruction(const Matrix& X, const analysis::Pca& p, int64_t row0, int64_t k) {
  const int64_t n = X.rows, d = X.cols, nc = p.components.rows;
  if (d != p.components.cols || static_cast<int64_t>(p.mean.size()) != d)
    throw std::invalid_argument("reconstruction: X has " + std::to_string(d) + " columns, the PCA " +
                                std::to_string(p.components.cols));
  if (k < 1 || k > nc)
    throw std::invalid_argument("reconstruction: k = " + std::to_string(k) + " outside [1, " + std::to_string(nc) +
                                "]");
  if (row0 < 0 || row0 + n > p.scores.rows) throw std::invalid_argument("reconstruction: rows outside the scores");
  if (nc != std::min(p.scores.rows, d) || p.scores.cols != nc)
    throw std::invalid_argument("reconstruction: needs a PCA with all min(n_samples, n_features) components");
  std::vector<double> mu_u(static_cast<size_t>(k));
  double mu2 = 0;
  for (int64_t c = 0; c < d; ++c) mu2 += p.mean[c] * p.mean[c];
  for (int64_t j = 0; j < k; ++j) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += p.mean[c] * p.components.at(j, c);
    mu_u[j] = s;
  }
  double cos_sum = 0, err_sum = 0, norm_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double x2 = 0, xmu = 0;
    for (int64_t c = 0; c < d; ++c) {
      const double x = X.at(i, c);
      x2 += x * x;
      xmu += x * p.mean[c];
    }
    double sk2 = 0, ss_mu = 0, tail2 = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double s = p.scores.at(row0 + i, j);
      sk2 += s * s;
      ss_mu += s * mu_u[j];
    }
    for (int64_t j = k; j < nc; ++j) tail2 += p.scores.at(row0 + i, j) * p.scores.at(row0 + i, j);
    const double err = std::sqrt(tail2);
    const double dot = xmu + sk2 + ss_mu;
    const double r2 = std::max(0.0, mu2 + 2 * ss_mu + sk2);
    cos_sum += dot / (std::max(std::sqrt(x2), 1e-10) * std::max(std::sqrt(r2), 1e-10));
    err_sum += err;
    norm_sum += std::sqrt(x2);
  }
  Recon r;
  r.cos_sim = cos_sum / n;
  r.l2_error = err_sum / n;
  r.relative_l2 = norm_sum > 0 ? err_sum / norm_sum : 0;
  return r;
}

NormStats row_norms(const float* x, int64_t n, int64_t d) {
  if (n < 1) throw std::invalid_argument("row_norms of no rows");
  std::vector<double> norms(static_cast<size_t>(n));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += static_cast<double>(x[i * d + c]) * x[i * d + c];
    norms[i] = std::sqrt(s);
    sum += norms[i];
  }
  NormStats r;
  r.mean = sum / n;
  double v = 0;
  for (double x2 : norms) v += (x2 - r.mean) * (x2 - r.mean);
  r.std = std::sqrt(v / n);
  return r;
}

}  // namespace spt::exp7
