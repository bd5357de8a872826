#include "analysis/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "analysis/special.h"

namespace spt::analysis {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double pstdev(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? kNaN : *std::max_element(v.begin(), v.end());
}

double min_of(const std::vector<double>& v) {
  return v.empty() ? kNaN : *std::min_element(v.begin(), v.end());
}

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double r = 0.5 * (static_cast<double>(i) + static_cast<double>(j)) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[idx[k]] = r;
    i = j + 1;
  }
  return ranks;
}

Correlation pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    throw std::invalid_argument("pearson: x and y have different lengths");
  if (x.size() < 3) throw std::invalid_argument("pearson: needs at least 3 points");
  Correlation c;
  c.n = static_cast<int>(x.size());
  const double mx = mean(x), my = mean(y);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) {
    c.r = c.p = kNaN;
    return c;
  }
  c.r = std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
  const double df = c.n - 2;
  if (std::fabs(c.r) == 1.0) {
    c.p = 0.0;
  } else {
    const double t = c.r * std::sqrt(df / ((1.0 - c.r) * (1.0 + c.r)));
    c.p = student_t_two_sided_p(t, df);
  }
  return c;
}

Correlation spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    throw std::invalid_argument("spearman: x and y have different lengths");
  return pearson(average_ranks(x), average_ranks(y));
}

Histogram histogram(const std::vector<double>& v, int bins) {
  if (bins < 1) throw std::invalid_argument("histogram: bins must be >= 1");
  Histogram h;
  double lo = v.empty() ? 0.0 : min_of(v), hi = v.empty() ? 1.0 : max_of(v);
  if (lo == hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  h.edges.resize(static_cast<size_t>(bins) + 1);
  for (int i = 0; i <= bins; ++i) h.edges[static_cast<size_t>(i)] = lo + (hi - lo) * i / bins;
  h.counts.assign(static_cast<size_t>(bins), 0);
  for (double x : v) {
    int b = static_cast<int>((x - lo) / (hi - lo) * bins);
    b = std::clamp(b, 0, bins - 1);
    // numpy compares against the edges themselves; nudge across an edge the
    // division put us on the wrong side of.
    while (b > 0 && x < h.edges[static_cast<size_t>(b)]) --b;
    while (b < bins - 1 && x >= h.edges[static_cast<size_t>(b) + 1]) ++b;
    ++h.counts[static_cast<size_t>(b)];
  }
  return h;
}

}  // namespace spt::analysis
