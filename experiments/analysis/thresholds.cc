#include "analysis/thresholds.h"

#include <algorithm>

namespace spt::analysis {

int threshold_steps(const std::vector<CurvePoint>& curve, double t) {
  int best = 0;
  for (const auto& p : curve)
    if (p.ratio <= t) best = std::max(best, p.n);
  return best;
}

}  // namespace spt::analysis
