#pragma once
// exp6's weight side (spec §6 A–C, A21), torch-free header, LibTorch inside:
// W_QK = W_Qᵀ·W_K (d_head × d_head) of every head of the processed weights,
// the injection targets of the 6B/6C variants, and the per-variant model.
//
// Ownership: functions read the model's weights (gpt2_hooks.h weights())
// and never modify them; edited_model returns a new model holding its own
// weight copy. Not thread-safe against a concurrent forward of `m` (hold
// the host's compute mutex). Errors: std::invalid_argument for K or labels
// that do not fit the model.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/pca.h"
#include "spt/gpt2.h"

namespace spt::exp6 {

struct WFlat {
  int64_t n_layer = 0, n_head = 0, d_head = 0;
  analysis::Matrix w;  // n_layer·n_head × d_head², layer-major, row-major W_QK (float32 values)
  std::string sha256;  // of the float32 bytes: which weights a result came from
  int64_t n_total() const { return n_layer * n_head; }
};

// W_QK of every head, computed in float32 as the original (spec §6 A).
WFlat extract_wflat(const gpt2::Model& m);

// PCA with every component (min(n_total, d_head²)), float64.
analysis::Pca wflat_pca(const WFlat& w);

// 6B: every head's target W_rec = S[:, :K]·C[:K] + μ (float64, then
// float32). std::invalid_argument unless 1 ≤ K ≤ the component count.
std::vector<gpt2::QkEdit> pca_edits(const WFlat& w, const analysis::Pca& p, int64_t k);

// 6C: every head that is not its cluster's representative gets the
// representative's original W_QK (from W_flat). labels: n_total, in
// [0, reps.size()); reps[c]: head index of cluster c's representative
// (-1 for an empty cluster, which no head may then carry).
std::vector<gpt2::QkEdit> cluster_edits(const WFlat& w, const std::vector<int64_t>& labels,
                                        const std::vector<int64_t>& reps);

struct EditedModel {
  std::unique_ptr<gpt2::Model> model;
  double max_abs_error = 0;  // max over edited heads of |W_QᵀW_K − target| after the edit (fp32)
  double max_abs_target = 0; // scale of the targets, for a relative reading
};
// A new model: m's weights copied, `edits` applied, W_Q..b_V repacked.
EditedModel edited_model(const gpt2::Model& m, const std::vector<gpt2::QkEdit>& edits);

}  // namespace spt::exp6
