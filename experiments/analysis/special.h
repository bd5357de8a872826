#pragma once
// Special functions behind the p-values of spec §2.5, in double precision.
// Accuracy: ~1e-14 relative over the ranges the experiments use.
namespace spt::analysis {

// Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1].
// Throws std::domain_error outside that domain.
double incomplete_beta(double a, double b, double x);

// Two-sided p-value of Student's t statistic with df > 0 degrees of
// freedom: P(|T| >= |t|) = I_{df/(df+t²)}(df/2, 1/2). NaN t gives NaN.
double student_t_two_sided_p(double t, double df);

}  // namespace spt::analysis
