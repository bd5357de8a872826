#include "exp6/wqk.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "spt/gpt2_hooks.h"
#include "spt/hash.h"

namespace spt::exp6 {

WFlat extract_wflat(const gpt2::Model& m) {
  at::NoGradGuard no_grad;
  const gpt2::Weights& w = gpt2::weights(m);
  const auto& cfg = m.info().config;
  WFlat out;
  out.n_layer = cfg.n_layer;
  out.n_head = cfg.n_head;
  out.d_head = cfg.d_head;
  const int64_t width = out.d_head * out.d_head;
  std::vector<float> bytes;
  bytes.reserve(static_cast<size_t>(out.n_total() * width));
  for (int l = 0; l < cfg.n_layer; ++l)
    for (int h = 0; h < cfg.n_head; ++h) {
      const at::Tensor qk = gpt2::qk_matrix(w, l, h).contiguous().cpu();
      const float* p = qk.data_ptr<float>();
      bytes.insert(bytes.end(), p, p + width);
    }
  out.w = {out.n_total(), width, std::vector<double>(bytes.begin(), bytes.end())};
  out.sha256 = sha256_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size() * sizeof(float)));
  return out;
}

analysis::Pca wflat_pca(const WFlat& w) { return analysis::pca(w.w); }

std::vector<gpt2::QkEdit> pca_edits(const WFlat& w, const analysis::Pca& p, int64_t k) {
  const int64_t nc = p.components.rows;
  if (k < 1 || k > nc)
    throw std::invalid_argument("wqk_pca: K = " + std::to_string(k) + " outside [1, " + std::to_string(nc) + "]");
  std::vector<gpt2::QkEdit> edits;
  const int64_t width = w.w.cols;
  for (int64_t i = 0; i < w.n_total(); ++i) {
    gpt2::QkEdit e{static_cast<int>(i / w.n_head), static_cast<int>(i % w.n_head), {}, "wqk_pca k=" + std::to_string(k)};
    e.target.resize(static_cast<size_t>(width));
    for (int64_t j = 0; j < width; ++j) {
      double v = p.mean[static_cast<size_t>(j)];
      for (int64_t c = 0; c < k; ++c) v += p.scores.at(i, c) * p.components.at(c, j);
      e.target[static_cast<size_t>(j)] = static_cast<float>(v);
    }
    edits.push_back(std::move(e));
  }
  return edits;
}

std::vector<gpt2::QkEdit> cluster_edits(const WFlat& w, const std::vector<int64_t>& labels,
                                        const std::vector<int64_t>& reps) {
  if (static_cast<int64_t>(labels.size()) != w.n_total())
    throw std::invalid_argument("wqk_cluster: " + std::to_string(labels.size()) + " labels for " +
                                std::to_string(w.n_total()) + " heads");
  std::vector<gpt2::QkEdit> edits;
  for (int64_t i = 0; i < w.n_total(); ++i) {
    const int64_t c = labels[static_cast<size_t>(i)];
    if (c < 0 || c >= static_cast<int64_t>(reps.size()))
      throw std::invalid_argument("wqk_cluster: label " + std::to_string(c) + " of head " + std::to_string(i) +
                                  " outside [0, " + std::to_string(reps.size()) + ")");
    const int64_t r = reps[static_cast<size_t>(c)];
    if (r < 0 || r >= w.n_total() || labels[static_cast<size_t>(r)] != c)
      throw std::invalid_argument("wqk_cluster: cluster " + std::to_string(c) + " has no valid representative");
    if (r == i) continue;  // the representative keeps its own W_QK
    gpt2::QkEdit e{static_cast<int>(i / w.n_head), static_cast<int>(i % w.n_head), {},
                   "wqk_cluster rep=" + std::to_string(r)};
    const auto row = w.w.v.begin() + r * w.w.cols;
    e.target.assign(row, row + w.w.cols);
    edits.push_back(std::move(e));
  }
  return edits;
}

EditedModel edited_model(const gpt2::Model& m, const std::vector<gpt2::QkEdit>& edits) {
  at::NoGradGuard no_grad;
  gpt2::Weights w = gpt2::weights(m).clone();
  gpt2::apply_qk_edits(w, edits);
  EditedModel out;
  for (const auto& e : edits) {
    const int64_t dh = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(e.target.size()))));
    const at::Tensor t = at::from_blob(const_cast<float*>(e.target.data()), {dh, dh}, at::kFloat);
    const at::Tensor got = gpt2::qk_matrix(w, e.layer, e.head).cpu();
    out.max_abs_error = std::max(out.max_abs_error, (got - t).abs().max().item<double>());
    out.max_abs_target = std::max(out.max_abs_target, t.abs().max().item<double>());
  }
  out.model = gpt2::with_weights(m, w);
  return out;
}

}  // namespace spt::exp6
