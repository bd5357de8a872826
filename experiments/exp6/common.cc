#include "exp6/common.h"

#include <algorithm>
#include <cstdio>

namespace spt::exp6 {

std::vector<int64_t> default_ks(int64_t n_total) {
  std::vector<int64_t> base;
  if (n_total == 144)
    base = {1, 2, 3, 5, 8, 10, 16, 32, 64, 80, 100, 110, 120, 130, 140, 144};
  else if (n_total == 384)
    base = {1, 2, 3, 5, 8, 10, 16, 32, 64, 128, 384};
  else
    base = {1, 2, 3, 5, 8, 10, 16, 32, 64, n_total};
  std::vector<int64_t> out;
  for (int64_t k : base)
    if (k <= n_total && std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  if (std::find(out.begin(), out.end(), n_total) == out.end()) out.push_back(n_total);
  return out;
}

std::vector<int64_t> default_cluster_ks(int64_t n_total) {
  std::vector<int64_t> out;
  for (int64_t k : {4, 8, 12, 16, 32, 64})
    if (k < n_total) out.push_back(k);
  return out;
}

std::string variant_name(const std::string& type, int64_t k) {
  if (type == "baseline") return "baseline";
  return (type == "wqk_cluster" ? "cluster" : "k") + std::to_string(k);
}

}  // namespace spt::exp6
