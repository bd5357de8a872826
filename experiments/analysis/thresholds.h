#pragma once
// The exp10 threshold rule (spec §2.7): n*(t) is the largest *measured* step
// whose (already rounded) ratio is <= t, or 0 if there is none — not the end
// of the first run below t, so a curve that dips back under t later counts.
#include <vector>

namespace spt::analysis {

struct CurvePoint {
  int n = 0;           // heads ablated / linearised at this step
  double ratio = 0;    // PPL / baseline, rounded to 4 dp as stored
};

int threshold_steps(const std::vector<CurvePoint>& curve, double t);

}  // namespace spt::analysis
