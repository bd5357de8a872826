#include "analysis/trf.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace spt::analysis {

namespace {

using Vec = std::vector<double>;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = std::numeric_limits<double>::epsilon();

// Row-major dense matrix.
struct Mat {
  size_t rows = 0, cols = 0;
  Vec a;
  Mat() = default;
  Mat(size_t r, size_t c) : rows(r), cols(c), a(r * c, 0.0) {}
  double& operator()(size_t i, size_t j) { return a[i * cols + j]; }
  double operator()(size_t i, size_t j) const { return a[i * cols + j]; }
};

double dot(const Vec& x, const Vec& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}
double norm(const Vec& x) { return std::sqrt(dot(x, x)); }
double norm_inf(const Vec& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::fabs(v));
  return m;
}
Vec mul(const Mat& m, const Vec& x) {  // m · x
  Vec y(m.rows, 0.0);
  for (size_t i = 0; i < m.rows; ++i)
    for (size_t j = 0; j < m.cols; ++j) y[i] += m(i, j) * x[j];
  return y;
}
Vec mul_t(const Mat& m, const Vec& x) {  // mᵀ · x
  Vec y(m.cols, 0.0);
  for (size_t i = 0; i < m.rows; ++i)
    for (size_t j = 0; j < m.cols; ++j) y[j] += m(i, j) * x[i];
  return y;
}
bool all_finite(const Vec& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

// Thin SVD A = U·diag(s)·Vᵀ by one-sided Jacobi (accurate for the tiny,
// possibly ill-conditioned matrices of curve fits); s descending.
void svd_thin(const Mat& A, Mat& U, Vec& s, Mat& V) {
  const size_t r = A.rows, n = A.cols;
  U = A;
  V = Mat(n, n);
  for (size_t i = 0; i < n; ++i) V(i, i) = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    bool rotated = false;
    for (size_t p = 0; p + 1 < n; ++p)
      for (size_t q = p + 1; q < n; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (size_t k = 0; k < r; ++k) {
          alpha += U(k, p) * U(k, p);
          beta += U(k, q) * U(k, q);
          gamma += U(k, p) * U(k, q);
        }
        if (gamma == 0 || std::fabs(gamma) <= kEps * std::sqrt(alpha * beta)) continue;
        rotated = true;
        const double zeta = (beta - alpha) / (2.0 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1.0 + zeta * zeta));
        const double c = 1.0 / std::sqrt(1.0 + t * t), sn = c * t;
        for (size_t k = 0; k < r; ++k) {
          const double up = U(k, p), uq = U(k, q);
          U(k, p) = c * up - sn * uq;
          U(k, q) = sn * up + c * uq;
        }
        for (size_t k = 0; k < n; ++k) {
          const double vp = V(k, p), vq = V(k, q);
          V(k, p) = c * vp - sn * vq;
          V(k, q) = sn * vp + c * vq;
        }
      }
    if (!rotated) break;
  }
  s.assign(n, 0.0);
  for (size_t j = 0; j < n; ++j) {
    double ss = 0;
    for (size_t k = 0; k < r; ++k) ss += U(k, j) * U(k, j);
    s[j] = std::sqrt(ss);
    for (size_t k = 0; k < r; ++k) U(k, j) = s[j] > 0 ? U(k, j) / s[j] : 0.0;
  }
  std::vector<size_t> order(n);
  for (size_t j = 0; j < n; ++j) order[j] = j;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  Mat U2(r, n), V2(n, n);
  Vec s2(n);
  for (size_t j = 0; j < n; ++j) {
    s2[j] = s[order[j]];
    for (size_t k = 0; k < r; ++k) U2(k, j) = U(k, order[j]);
    for (size_t k = 0; k < n; ++k) V2(k, j) = V(k, order[j]);
  }
  U = std::move(U2);
  V = std::move(V2);
  s = std::move(s2);
}

// ---- scipy.optimize._lsq.common, one function each

// Active bounds: −1 lower, +1 upper (rtol relative to max(1, |bound|)).
std::vector<int> find_active_constraints(const Vec& x, const Vec& lb, const Vec& ub, double rtol) {
  std::vector<int> active(x.size(), 0);
  for (size_t i = 0; i < x.size(); ++i) {
    if (rtol == 0) {
      if (x[i] <= lb[i]) active[i] = -1;
      if (x[i] >= ub[i]) active[i] = 1;
      continue;
    }
    const double ld = x[i] - lb[i], ud = ub[i] - x[i];
    const double lt = rtol * std::max(1.0, std::fabs(lb[i]));
    const double ut = rtol * std::max(1.0, std::fabs(ub[i]));
    if (std::isfinite(lb[i]) && ld <= std::min(ud, lt)) active[i] = -1;
    if (std::isfinite(ub[i]) && ud <= std::min(ld, ut)) active[i] = 1;
  }
  return active;
}

Vec make_strictly_feasible(const Vec& x, const Vec& lb, const Vec& ub, double rstep) {
  Vec out = x;
  const auto active = find_active_constraints(x, lb, ub, rstep);
  for (size_t i = 0; i < x.size(); ++i) {
    if (active[i] == -1)
      out[i] = rstep == 0 ? std::nextafter(lb[i], ub[i]) : lb[i] + rstep * std::max(1.0, std::fabs(lb[i]));
    else if (active[i] == 1)
      out[i] = rstep == 0 ? std::nextafter(ub[i], lb[i]) : ub[i] - rstep * std::max(1.0, std::fabs(ub[i]));
    if (out[i] < lb[i] || out[i] > ub[i]) out[i] = 0.5 * (lb[i] + ub[i]);
  }
  return out;
}

bool in_bounds(const Vec& x, const Vec& lb, const Vec& ub) {
  for (size_t i = 0; i < x.size(); ++i)
    if (!(x[i] >= lb[i] && x[i] <= ub[i])) return false;
  return true;
}

// Smallest step t along s from x that reaches a bound, and which components
// hit it (sign of s where they do, else 0).
double step_size_to_bound(const Vec& x, const Vec& s, const Vec& lb, const Vec& ub, std::vector<int>* hits) {
  Vec steps(x.size(), kInf);
  for (size_t i = 0; i < x.size(); ++i)
    if (s[i] != 0) steps[i] = std::max((lb[i] - x[i]) / s[i], (ub[i] - x[i]) / s[i]);
  const double m = *std::min_element(steps.begin(), steps.end());
  if (hits) {
    hits->assign(x.size(), 0);
    for (size_t i = 0; i < x.size(); ++i)
      if (steps[i] == m) (*hits)[i] = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0);
  }
  return m;
}

// Both t with ‖x + t·s‖ = Delta, smaller first (x inside the region).
std::pair<double, double> intersect_trust_region(const Vec& x, const Vec& s, double Delta) {
  const double a = dot(s, s);
  if (a == 0) throw std::logic_error("trf: zero direction");
  const double b = dot(x, s);
  const double c = dot(x, x) - Delta * Delta;
  if (c > 0) throw std::logic_error("trf: point outside the trust region");
  const double d = std::sqrt(b * b - a * c);
  const double q = -(b + std::copysign(d, b));
  const double t1 = q / a, t2 = c / q;
  return t1 < t2 ? std::make_pair(t1, t2) : std::make_pair(t2, t1);
}

// 0.5·sᵀ(JᵀJ + diag)s + gᵀs.
double evaluate_quadratic(const Mat& J, const Vec& g, const Vec& s, const Vec& diag) {
  const Vec Js = mul(J, s);
  double q = dot(Js, Js);
  for (size_t i = 0; i < s.size(); ++i) q += s[i] * diag[i] * s[i];
  return 0.5 * q + dot(s, g);
}

// Coefficients of f(t) = a·t² + b·t + c along s0 + t·s.
void build_quadratic_1d(const Mat& J, const Vec& g, const Vec& s, const Vec& diag, const Vec* s0, double& a,
                        double& b, double& c) {
  const Vec v = mul(J, s);
  a = dot(v, v);
  for (size_t i = 0; i < s.size(); ++i) a += s[i] * diag[i] * s[i];
  a *= 0.5;
  b = dot(g, s);
  c = 0;
  if (s0) {
    const Vec u = mul(J, *s0);
    b += dot(u, v);
    c = 0.5 * dot(u, u) + dot(g, *s0);
    for (size_t i = 0; i < s.size(); ++i) {
      b += (*s0)[i] * diag[i] * s[i];
      c += 0.5 * (*s0)[i] * diag[i] * (*s0)[i];
    }
  }
}

// Minimum of a·t² + b·t + c on [lb, ub]: candidates lb, ub, interior vertex;
// the first minimal one wins (numpy argmin).
std::pair<double, double> minimize_quadratic_1d(double a, double b, double lb, double ub, double c) {
  double ts[3] = {lb, ub, 0};
  int n = 2;
  if (a != 0) {
    const double e = -0.5 * b / a;
    if (lb < e && e < ub) ts[n++] = e;
  }
  double best_t = ts[0], best_y = ts[0] * (a * ts[0] + b) + c;
  for (int i = 1; i < n; ++i) {
    const double y = ts[i] * (a * ts[i] + b) + c;
    if (y < best_y) {
      best_y = y;
      best_t = ts[i];
    }
  }
  return {best_t, best_y};
}

// Coleman–Li scaling vector v and its derivative sign dv.
void cl_scaling_vector(const Vec& x, const Vec& g, const Vec& lb, const Vec& ub, Vec& v, Vec& dv) {
  v.assign(x.size(), 1.0);
  dv.assign(x.size(), 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    if (g[i] < 0 && std::isfinite(ub[i])) {
      v[i] = ub[i] - x[i];
      dv[i] = -1;
    }
    if (g[i] > 0 && std::isfinite(lb[i])) {
      v[i] = x[i] - lb[i];
      dv[i] = 1;
    }
  }
}

// Trust-region subproblem min ‖J p + f‖ s.t. ‖p‖ <= Delta from the SVD of
// the (augmented) Jacobian; returns p and the updated LM parameter alpha.
Vec solve_lsq_trust_region(size_t n, size_t m, const Vec& uf, const Vec& s, const Mat& V, double Delta,
                           double& alpha) {
  Vec suf(n);
  for (size_t i = 0; i < n; ++i) suf[i] = s[i] * uf[i];
  auto phi_and_derivative = [&](double al, double& phi, double& dphi) {
    double pn2 = 0, d3 = 0;
    for (size_t i = 0; i < n; ++i) {
      const double den = s[i] * s[i] + al;
      pn2 += (suf[i] / den) * (suf[i] / den);
      d3 += suf[i] * suf[i] / (den * den * den);
    }
    const double pn = std::sqrt(pn2);
    phi = pn - Delta;
    dphi = -d3 / pn;
  };
  bool full_rank = false;
  if (m >= n) full_rank = s[n - 1] > kEps * static_cast<double>(m) * s[0];
  if (full_rank) {
    Vec p(n, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) p[i] -= V(i, j) * (uf[j] / s[j]);
    if (norm(p) <= Delta) {
      alpha = 0.0;
      return p;
    }
  }
  double alpha_upper = norm(suf) / Delta;
  double alpha_lower = 0.0;
  if (full_rank) {
    double phi, dphi;
    phi_and_derivative(0.0, phi, dphi);
    alpha_lower = -phi / dphi;
  }
  double al = alpha;
  if (!full_rank && al == 0) al = std::max(0.001 * alpha_upper, std::sqrt(alpha_lower * alpha_upper));
  for (int it = 0; it < 10; ++it) {
    if (al < alpha_lower || al > alpha_upper) al = std::max(0.001 * alpha_upper, std::sqrt(alpha_lower * alpha_upper));
    double phi, dphi;
    phi_and_derivative(al, phi, dphi);
    if (phi < 0) alpha_upper = al;
    const double ratio = phi / dphi;
    alpha_lower = std::max(alpha_lower, al - ratio);
    al -= (phi + Delta) * ratio / Delta;
    if (std::fabs(phi) < 0.01 * Delta) break;
  }
  Vec p(n, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) p[i] -= V(i, j) * (suf[j] / (s[j] * s[j] + al));
  const double pn = norm(p);
  for (double& v : p) v *= Delta / pn;
  alpha = al;
  return p;
}

std::pair<double, double> update_tr_radius(double Delta, double actual, double predicted, double step_norm,
                                           bool bound_hit) {
  double ratio;
  if (predicted > 0)
    ratio = actual / predicted;
  else if (predicted == actual && actual == 0)
    ratio = 1;
  else
    ratio = 0;
  if (ratio < 0.25)
    Delta = 0.25 * step_norm;
  else if (ratio > 0.75 && bound_hit)
    Delta *= 2.0;
  return {Delta, ratio};
}

int check_termination(double dF, double F, double dx_norm, double x_norm, double ratio, double ftol, double xtol) {
  const bool f_ok = dF < ftol * F && ratio > 0.25;
  const bool x_ok = dx_norm < xtol * (xtol + x_norm);
  if (f_ok && x_ok) return 4;
  if (f_ok) return 2;
  if (x_ok) return 3;
  return -1;
}

// scipy.optimize._numdiff.approx_derivative(method="2-point") with bounds.
Mat jacobian_2point(const ResidualFn& fun, const Vec& x0, const Vec& f0, const Vec& lb, const Vec& ub) {
  const size_t n = x0.size(), m = f0.size();
  const double rstep = std::sqrt(kEps);
  Vec h(n);
  for (size_t i = 0; i < n; ++i) {
    const double sign = x0[i] >= 0 ? 1.0 : -1.0;
    h[i] = rstep * sign * std::max(1.0, std::fabs(x0[i]));
    // One-sided scheme adjusted to the bounds (_adjust_scheme_to_bounds).
    const double lower = x0[i] - lb[i], upper = ub[i] - x0[i];
    const double xh = x0[i] + h[i];
    const bool violated = xh < lb[i] || xh > ub[i];
    const bool fitting = std::fabs(h[i]) <= std::max(lower, upper);
    if (violated && fitting) h[i] = -h[i];
    if (!fitting) h[i] = upper >= lower ? upper : -lower;
  }
  Mat J(m, n);
  for (size_t j = 0; j < n; ++j) {
    Vec x = x0;
    x[j] = x0[j] + h[j];
    const double dx = x[j] - x0[j];  // the step actually taken
    const Vec f = fun(x);
    if (f.size() != m) throw std::invalid_argument("least_squares: residual size changed");
    for (size_t i = 0; i < m; ++i) J(i, j) = (f[i] - f0[i]) / dx;
  }
  return J;
}

// Inverse column norms of J (x_scale = "jac"), never decreasing.
void jac_scale(const Mat& J, Vec& scale, Vec& scale_inv, bool first) {
  Vec si(J.cols, 0.0);
  for (size_t j = 0; j < J.cols; ++j) {
    double s = 0;
    for (size_t i = 0; i < J.rows; ++i) s += J(i, j) * J(i, j);
    si[j] = std::sqrt(s);
  }
  for (size_t j = 0; j < J.cols; ++j) {
    if (first) {
      if (si[j] == 0) si[j] = 1;
    } else {
      si[j] = std::max(si[j], scale_inv[j]);
    }
  }
  scale_inv = si;
  scale.resize(si.size());
  for (size_t j = 0; j < si.size(); ++j) scale[j] = 1.0 / si[j];
}

struct StepChoice {
  Vec step, step_h;
  double predicted = 0;
};

// select_step of scipy's trf: the trust-region step if feasible, else the
// best of the reflected step, the step-back clipped step and the scaled
// anti-gradient step.
StepChoice select_step(const Vec& x, const Mat& J_h, const Vec& diag_h, const Vec& g_h, Vec p, Vec p_h,
                       const Vec& d, double Delta, const Vec& lb, const Vec& ub, double theta) {
  const size_t n = x.size();
  Vec xp(n);
  for (size_t i = 0; i < n; ++i) xp[i] = x[i] + p[i];
  if (in_bounds(xp, lb, ub)) return {p, p_h, -evaluate_quadratic(J_h, g_h, p_h, diag_h)};

  std::vector<int> hits;
  const double p_stride = step_size_to_bound(x, p, lb, ub, &hits);
  Vec r_h = p_h;
  for (size_t i = 0; i < n; ++i)
    if (hits[i] != 0) r_h[i] = -r_h[i];
  Vec r(n);
  for (size_t i = 0; i < n; ++i) r[i] = d[i] * r_h[i];
  for (size_t i = 0; i < n; ++i) {
    p[i] *= p_stride;
    p_h[i] *= p_stride;
  }
  Vec x_on_bound(n);
  for (size_t i = 0; i < n; ++i) x_on_bound[i] = x[i] + p[i];

  const double to_tr = intersect_trust_region(p_h, r_h, Delta).second;
  const double to_bound = step_size_to_bound(x_on_bound, r, lb, ub, nullptr);
  double r_stride = std::min(to_bound, to_tr);
  double r_lo, r_hi;
  if (r_stride > 0) {
    r_lo = (1 - theta) * p_stride / r_stride;
    r_hi = r_stride == to_bound ? theta * to_bound : to_tr;
  } else {
    r_lo = 0;
    r_hi = -1;
  }
  double r_value = kInf;
  if (r_lo <= r_hi) {
    double a, b, c;
    build_quadratic_1d(J_h, g_h, r_h, diag_h, &p_h, a, b, c);
    const auto [t, val] = minimize_quadratic_1d(a, b, r_lo, r_hi, c);
    r_value = val;
    for (size_t i = 0; i < n; ++i) {
      r_h[i] = r_h[i] * t + p_h[i];
      r[i] = r_h[i] * d[i];
    }
  }

  for (size_t i = 0; i < n; ++i) {
    p[i] *= theta;
    p_h[i] *= theta;
  }
  const double p_value = evaluate_quadratic(J_h, g_h, p_h, diag_h);

  Vec ag_h(n), ag(n);
  for (size_t i = 0; i < n; ++i) {
    ag_h[i] = -g_h[i];
    ag[i] = d[i] * ag_h[i];
  }
  const double ag_to_tr = Delta / norm(ag_h);
  const double ag_to_bound = step_size_to_bound(x, ag, lb, ub, nullptr);
  const double ag_max = ag_to_bound < ag_to_tr ? theta * ag_to_bound : ag_to_tr;
  double a, b, c;
  build_quadratic_1d(J_h, g_h, ag_h, diag_h, nullptr, a, b, c);
  const auto [ag_stride, ag_value] = minimize_quadratic_1d(a, b, 0, ag_max, 0);
  for (size_t i = 0; i < n; ++i) {
    ag_h[i] *= ag_stride;
    ag[i] *= ag_stride;
  }

  if (p_value < r_value && p_value < ag_value) return {p, p_h, -p_value};
  if (r_value < p_value && r_value < ag_value) return {r, r_h, -r_value};
  return {ag, ag_h, -ag_value};
}

}  // namespace

std::string LsqResult::message() const {
  switch (status) {
    case 0: return "The maximum number of function evaluations is exceeded.";
    case 1: return "`gtol` termination condition is satisfied.";
    case 2: return "`ftol` termination condition is satisfied.";
    case 3: return "`xtol` termination condition is satisfied.";
    case 4: return "Both `ftol` and `xtol` termination conditions are satisfied.";
    default: return "unknown status";
  }
}

LsqResult least_squares_trf(const ResidualFn& fun, Vec x0, const Vec& lb, const Vec& ub, const LsqOptions& opt) {
  const size_t n = x0.size();
  if (n == 0) throw std::invalid_argument("least_squares: no parameters");
  if (lb.size() != n || ub.size() != n) throw std::invalid_argument("least_squares: bounds size != x0 size");
  for (size_t i = 0; i < n; ++i)
    if (!(lb[i] < ub[i])) throw std::invalid_argument("least_squares: each lower bound must be < its upper bound");
  for (size_t i = 0; i < n; ++i)
    if (x0[i] < lb[i] || x0[i] > ub[i]) throw std::invalid_argument("least_squares: x0 is infeasible");
  x0 = make_strictly_feasible(x0, lb, ub, 1e-10);

  Vec x = x0;
  Vec f = fun(x);
  if (!all_finite(f)) throw std::invalid_argument("least_squares: residuals are not finite in the initial point");
  const size_t m = f.size();
  if (m == 0) throw std::invalid_argument("least_squares: no residuals");
  int nfev = 1;
  Mat J = jacobian_2point(fun, x, f, lb, ub);
  int njev = 1;
  double cost = 0.5 * dot(f, f);
  Vec g = mul_t(J, f);

  Vec scale(n, 1.0), scale_inv(n, 1.0);
  if (opt.x_scale_jac) {
    jac_scale(J, scale, scale_inv, true);
  } else if (!opt.x_scale.empty()) {
    if (opt.x_scale.size() != n) throw std::invalid_argument("least_squares: x_scale size != x0 size");
    for (size_t i = 0; i < n; ++i) {
      if (!(opt.x_scale[i] > 0) || !std::isfinite(opt.x_scale[i]))
        throw std::invalid_argument("least_squares: x_scale must be positive and finite");
      scale[i] = opt.x_scale[i];
      scale_inv[i] = 1.0 / opt.x_scale[i];
    }
  }

  Vec v, dv;
  cl_scaling_vector(x, g, lb, ub, v, dv);
  for (size_t i = 0; i < n; ++i)
    if (dv[i] != 0) v[i] *= scale_inv[i];
  double Delta = 0;
  {
    Vec t(n);
    for (size_t i = 0; i < n; ++i) t[i] = x0[i] * scale_inv[i] / std::sqrt(v[i]);
    Delta = norm(t);
  }
  if (Delta == 0) Delta = 1.0;

  const int max_nfev = opt.max_nfev > 0 ? opt.max_nfev : static_cast<int>(100 * n);
  double alpha = 0.0;
  int status = -1;
  double g_norm = 0;
  Vec f_true = f;

  Mat Jaug(m + n, n);
  Vec faug(m + n, 0.0);
  while (true) {
    cl_scaling_vector(x, g, lb, ub, v, dv);
    {
      Vec gv(n);
      for (size_t i = 0; i < n; ++i) gv[i] = g[i] * v[i];
      g_norm = norm_inf(gv);
    }
    if (g_norm < opt.gtol) status = 1;
    if (status != -1 || nfev == max_nfev) break;

    for (size_t i = 0; i < n; ++i)
      if (dv[i] != 0) v[i] *= scale_inv[i];
    Vec d(n), diag_h(n), g_h(n);
    for (size_t i = 0; i < n; ++i) {
      d[i] = std::sqrt(v[i]) * scale[i];
      diag_h[i] = g[i] * dv[i] * scale[i];
      g_h[i] = d[i] * g[i];
    }
    Mat J_h(m, n);
    for (size_t i = 0; i < m; ++i) {
      faug[i] = f[i];
      for (size_t j = 0; j < n; ++j) {
        J_h(i, j) = J(i, j) * d[j];
        Jaug(i, j) = J_h(i, j);
      }
    }
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) Jaug(m + i, j) = i == j ? std::sqrt(diag_h[i]) : 0.0;
    Mat U, V;
    Vec s;
    svd_thin(Jaug, U, s, V);
    const Vec uf = mul_t(U, faug);

    const double theta = std::max(0.995, 1 - g_norm);
    double actual_reduction = -1;
    Vec x_new, f_new;
    double cost_new = cost;
    while (actual_reduction <= 0 && nfev < max_nfev) {
      const Vec p_h = solve_lsq_trust_region(n, m, uf, s, V, Delta, alpha);
      Vec p(n);
      for (size_t i = 0; i < n; ++i) p[i] = d[i] * p_h[i];
      const StepChoice st = select_step(x, J_h, diag_h, g_h, p, p_h, d, Delta, lb, ub, theta);
      Vec xs(n);
      for (size_t i = 0; i < n; ++i) xs[i] = x[i] + st.step[i];
      x_new = make_strictly_feasible(xs, lb, ub, 0);
      f_new = fun(x_new);
      ++nfev;
      const double step_h_norm = norm(st.step_h);
      if (f_new.size() != m) throw std::invalid_argument("least_squares: residual size changed");
      if (!all_finite(f_new)) {
        Delta = 0.25 * step_h_norm;
        continue;
      }
      cost_new = 0.5 * dot(f_new, f_new);
      actual_reduction = cost - cost_new;
      const auto [Delta_new, ratio] =
          update_tr_radius(Delta, actual_reduction, st.predicted, step_h_norm, step_h_norm > 0.95 * Delta);
      const double step_norm = norm(st.step);
      status = check_termination(actual_reduction, cost, step_norm, norm(x), ratio, opt.ftol, opt.xtol);
      if (status != -1) break;
      alpha *= Delta / Delta_new;
      Delta = Delta_new;
    }
    if (actual_reduction > 0) {
      x = x_new;
      f = f_new;
      f_true = f;
      cost = cost_new;
      J = jacobian_2point(fun, x, f, lb, ub);
      ++njev;
      g = mul_t(J, f);
      if (opt.x_scale_jac) jac_scale(J, scale, scale_inv, false);
    }
  }
  LsqResult res;
  res.x = x;
  res.fun = f_true;
  res.cost = cost;
  res.optimality = g_norm;
  res.nfev = nfev;
  res.njev = njev;
  res.status = status == -1 ? 0 : status;
  res.active_mask = find_active_constraints(x, lb, ub, opt.xtol);
  return res;
}

CurveFitResult curve_fit(const ModelFn& f, const Vec& x, const Vec& y, const Vec& p0, const Vec& lb, const Vec& ub,
                         int maxfev) {
  if (x.size() != y.size()) throw std::invalid_argument("curve_fit: x and y have different lengths");
  if (x.size() < p0.size()) throw std::invalid_argument("curve_fit: fewer points than parameters");
  auto resid = [&](const Vec& p) {
    Vec r(x.size());
    for (size_t i = 0; i < x.size(); ++i) r[i] = f(x[i], p) - y[i];
    return r;
  };
  LsqOptions opt;
  opt.max_nfev = maxfev;
  CurveFitResult out;
  out.lsq = least_squares_trf(resid, p0, lb, ub, opt);
  if (!out.lsq.success()) throw FitError("Optimal parameters not found: " + out.lsq.message());
  out.params = out.lsq.x;
  out.rss = 2.0 * out.lsq.cost;
  return out;
}

}  // namespace spt::analysis
