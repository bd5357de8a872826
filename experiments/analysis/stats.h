#pragma once
// Descriptive statistics and correlation tests with numpy/scipy semantics
// (spec §2.5): population variance (ddof = 0), median of the middle pair,
// average ranks for ties, two-sided p-values from Student's t with n − 2
// degrees of freedom.
#include <vector>

namespace spt::analysis {

double mean(const std::vector<double>& v);    // NaN if empty
double median(std::vector<double> v);         // NaN if empty
double pstdev(const std::vector<double>& v);  // population std (ddof = 0)
double max_of(const std::vector<double>& v);  // NaN if empty
double min_of(const std::vector<double>& v);  // NaN if empty

// 1-based ranks; tied values share the mean of their ranks (scipy rankdata
// "average").
std::vector<double> average_ranks(const std::vector<double>& v);

struct Correlation {
  double r = 0;  // coefficient in [-1, 1]; NaN if either input is constant
  double p = 0;  // two-sided p-value; NaN when r is
  int n = 0;
};

// scipy.stats.pearsonr. Throws std::invalid_argument if the sizes differ or
// n < 3 (scipy needs 2; with 2 points the p-value is always 1, useless here).
Correlation pearson(const std::vector<double>& x, const std::vector<double>& y);
// scipy.stats.spearmanr: Pearson on average ranks, t-test p-value.
Correlation spearman(const std::vector<double>& x, const std::vector<double>& y);

// numpy.histogram(v, bins): equal-width bins over [min, max] (the last bin
// is closed); a constant input uses [v − 0.5, v + 0.5].
struct Histogram {
  std::vector<double> edges;  // bins + 1
  std::vector<int> counts;    // bins
};
Histogram histogram(const std::vector<double>& v, int bins);

}  // namespace spt::analysis
