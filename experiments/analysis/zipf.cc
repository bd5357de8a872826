#include "analysis/zipf.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "analysis/trf.h"

namespace spt::analysis {

std::optional<ZipfFit> zipf_fit(const std::vector<double>& abs_values, std::string* why) {
  std::vector<double> y;
  for (double v : abs_values) y.push_back(std::fabs(v));
  std::sort(y.begin(), y.end(), std::greater<double>());
  // Ranks are assigned before the zeros are dropped; sorted descending, the
  // zeros are last, so the kept points keep ranks 1..k.
  std::vector<double> ranks, ys;
  for (size_t i = 0; i < y.size(); ++i)
    if (y[i] > 0) {
      ranks.push_back(static_cast<double>(i + 1));
      ys.push_back(y[i]);
    }
  if (ys.size() <= 5) {
    if (why) *why = "needs more than 5 nonzero values, got " + std::to_string(ys.size());
    return std::nullopt;
  }
  const double inf = std::numeric_limits<double>::infinity();
  try {
    const auto fit = curve_fit([](double r, const std::vector<double>& p) { return p[0] * std::pow(r, -p[1]); },
                               ranks, ys, {ys[0], 1.0}, {0.0, 0.01}, {inf, 5.0});
    ZipfFit z;
    z.C = fit.params[0];
    z.alpha = fit.params[1];
    z.n_points = static_cast<int>(ys.size());
    z.nfev = fit.lsq.nfev;
    double m = 0;
    for (double v : ys) m += v;
    m /= static_cast<double>(ys.size());
    double ss = 0;
    for (double v : ys) ss += (v - m) * (v - m);
    z.r2 = ss > 0 ? 1.0 - fit.rss / ss : 0.0;
    return z;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return std::nullopt;
  }
}

}  // namespace spt::analysis
