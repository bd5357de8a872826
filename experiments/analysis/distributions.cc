#include "analysis/distributions.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/students_t.hpp>

namespace spt::analysis {

double chi2_sf(double x, double df) {
  if (!(df > 0) || !(x >= 0)) throw std::domain_error("chi2_sf: needs df > 0 and x >= 0");
  if (std::isinf(x)) return 0.0;
  return boost::math::cdf(boost::math::complement(boost::math::chi_squared_distribution<double>(df), x));
}

double student_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0)) throw std::domain_error("student_t_quantile: needs 0 < p < 1 and df > 0");
  return boost::math::quantile(boost::math::students_t_distribution<double>(df), p);
}

double lr_statistic(int n, double rss_free, double rss_fixed) {
  if (n <= 0) throw std::domain_error("lr_statistic: n must be positive, got " + std::to_string(n));
  if (rss_free > 0 && rss_fixed >= rss_free) return n * std::log(rss_fixed / rss_free);
  return 0.0;
}

}  // namespace spt::analysis
