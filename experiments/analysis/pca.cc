// PCA (spec §2.6) over LibTorch's LAPACK SVD, float64. See pca.h.
#include "analysis/pca.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace spt::analysis {
namespace {

void check_shape(const Matrix& x) {
  if (x.rows <= 0 || x.cols <= 0)
    throw std::invalid_argument("pca: empty matrix (" + std::to_string(x.rows) + "×" +
                                std::to_string(x.cols) + ")");
  if (x.v.size() != static_cast<size_t>(x.rows * x.cols))
    throw std::invalid_argument("pca: matrix holds " + std::to_string(x.v.size()) + " values, not " +
                                std::to_string(x.rows) + "×" + std::to_string(x.cols));
}

Matrix to_matrix(const at::Tensor& t) {  // 2-D float64, contiguous
  Matrix m{t.size(0), t.size(1), {}};
  const double* p = t.data_ptr<double>();
  m.v.assign(p, p + t.numel());
  return m;
}

std::vector<double> to_vector(const at::Tensor& t) {
  const double* p = t.data_ptr<double>();
  return {p, p + t.numel()};
}

// scikit-learn's svd_flip with u_based_decision=True: each component's sign
// makes the largest-|·| entry of its U column positive. Only to make runs
// reproducible; the spec assigns the sign no meaning.
void flip_signs(at::Tensor& u, at::Tensor& vh) {
  const at::Tensor rows = u.abs().argmax(0);                          // k
  const at::Tensor cols = at::arange(u.size(1), rows.options());
  const at::Tensor signs = u.index({rows, cols}).sign();  // k
  const at::Tensor s = at::where(signs == 0, at::ones_like(signs), signs);
  u.mul_(s.unsqueeze(0));
  vh.mul_(s.unsqueeze(1));
}

}  // namespace

Pca pca(const Matrix& x, int64_t n_components) {
  check_shape(x);
  const int64_t rank = std::min(x.rows, x.cols);
  if (n_components < 0) n_components = rank;
  if (n_components < 1 || n_components > rank)
    throw std::invalid_argument("pca: n_components " + std::to_string(n_components) +
                                " outside [1, " + std::to_string(rank) + "]");

  const at::Tensor xt =
      at::from_blob(const_cast<double*>(x.v.data()), {x.rows, x.cols}, at::kDouble).clone();
  const at::Tensor mean = xt.mean(0);
  const at::Tensor centred = xt - mean;
  auto [u, s, vh] = at::linalg_svd(centred, /*full_matrices=*/false);
  flip_signs(u, vh);

  const at::Tensor var_all = s.square();
  const at::Tensor k_s = s.slice(0, 0, n_components).contiguous();
  const at::Tensor k_vh = vh.slice(0, 0, n_components).contiguous();
  const at::Tensor k_var = var_all.slice(0, 0, n_components);
  // n_samples − 1 as sklearn; a single sample has zero variance (not 0/0).
  const double dof = x.rows > 1 ? static_cast<double>(x.rows - 1) : 1.0;
  const double total = var_all.sum().item<double>();

  Pca out;
  out.mean = to_vector(mean.contiguous());
  out.components = to_matrix(k_vh);
  out.singular_values = to_vector(k_s);
  out.explained_variance = to_vector((k_var / dof).contiguous());
  out.explained_variance_ratio =
      total > 0 ? to_vector((k_var / total).contiguous())
                : std::vector<double>(static_cast<size_t>(n_components), 0.0);
  out.scores = to_matrix(centred.matmul(k_vh.transpose(0, 1)).contiguous());
  return out;
}

std::optional<int64_t> components_for(const std::vector<double>& ratio, double t) {
  double cum = 0;
  for (size_t i = 0; i < ratio.size(); ++i) {
    cum += ratio[i];
    if (cum >= t) return static_cast<int64_t>(i + 1);
  }
  return std::nullopt;
}

}  // namespace spt::analysis
