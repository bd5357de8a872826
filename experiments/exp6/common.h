#pragma once
// Names and small rules the exp6 plan, executors and reduces share
// (torch-free). Spec §6.
#include <cstdint>
#include <string>
#include <vector>

namespace spt::exp6 {

inline constexpr const char* kKindWeights = "exp6.weights";  // 6A: W_QK extraction + PCA (one unit)
inline constexpr const char* kKindPpl = "exp6.ppl";          // 6B/6C: NLL of one variant over a chunk range
inline constexpr const char* kKindReduce = "exp6.reduce";    // 6C k-means units; the report

inline constexpr int64_t kScoresForClustering = 20;  // k-means on S[:, :20]
inline constexpr uint64_t kKMeansSeed = 42;          // sklearn's random_state, recorded (not its stream)
inline constexpr int kKMeansInits = 10;

// 6B's K list for a model with `n_total` heads (spec §6 B): gpt2 (144) and
// gpt2-medium (384) have their own; others [1,2,3,5,8,10,16,32,64,n_total].
// Values above n_total are dropped; n_total itself (the K = all check) is
// always in the list.
std::vector<int64_t> default_ks(int64_t n_total);
// 6C's k list [4, 8, 12, 16, 32, 64] without k ≥ n_total.
std::vector<int64_t> default_cluster_ks(int64_t n_total);
// Variant names used in job names and documents: "baseline", "k10", "cluster8".
std::string variant_name(const std::string& type, int64_t k);

}  // namespace spt::exp6
