#pragma once
// Distribution functions and the likelihood-ratio statistic of spec §2.5,
// §8 Part A and §9 Part A (torch-free, double precision).
//
// chi2_sf and student_t_quantile are Boost.Math's (header-only, accurate to
// a few ulp); this file only fixes the domains and the error policy: bad
// arguments throw std::domain_error naming the function, never NaN.
namespace spt::analysis {

// Survival function 1 − CDF_χ²(x; df) = scipy.stats.chi2.sf(x, df), for
// df > 0 and x >= 0 (x = +∞ gives 0).
double chi2_sf(double x, double df);

// Quantile t_{p, df} of Student's t = scipy.stats.t.ppf(p, df), for
// 0 < p < 1 and df > 0 (e.g. t_{0.975, 2} = 4.302652729911275).
double student_t_quantile(double p, double df);

// exp8 Part A's likelihood-ratio statistic for nested least-squares fits
// (Gaussian errors): Λ = n·ln(rss_fixed/rss_free) when rss_free > 0 and
// rss_fixed >= rss_free, else 0 (the original's guard). n > 0.
double lr_statistic(int n, double rss_free, double rss_fixed);

}  // namespace spt::analysis
