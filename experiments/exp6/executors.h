#pragma once
// exp6's executors, registered into the worker (spec §6):
//   exp6.weights  6A: W_QK of every head, PCA, thresholds, the scores 6C
//                 clusters (weights only, no data)
//   exp6.ppl      6B/6C: Σ NLL of one variant over a chunk range of T; the
//                 variant is data in params.variant:
//                   {"type":"baseline"}            the model as loaded
//                   {"type":"wqk_pca","k":K}       every head's W_QK → its
//                       rank-K PCA reconstruction; the worker recomputes the
//                       PCA from the model's processed weights (float64
//                       SVD: deterministic for given weights), so the unit
//                       needs no 6A input
//                   {"type":"wqk_cluster","k":k}   non-representatives get
//                       their representative's W_QK; labels and
//                       representatives from the c/kmeans/k<k> input
//                 The injected weights are a copy (never the host's shared
//                 model); a worker keeps the last $SPT_EXP6_VARIANT_CACHE
//                 (default 1) variant models, keyed by model, precision
//                 and variant content, so the many chunk ranges of one
//                 variant inject once.
//   exp6.reduce   CPU: k-means units (6C) and the report (exp6/reduce.h)
namespace spt {
class ExecutorRegistry;
}

namespace spt::exp6 {

void register_executors(spt::ExecutorRegistry& reg);

}  // namespace spt::exp6
