#include "sigma/science.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "analysis/fit_models.h"
#include "analysis/regress.h"
#include "analysis/spline.h"
#include "analysis/stats.h"

namespace spt::sigma {

using analysis::linspace;

namespace {

double dot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double norm(const float* a, size_t n) { return std::sqrt(dot(a, a, n)); }

Vec mean_of(const std::vector<Vec>& rows) {
  if (rows.empty()) throw std::invalid_argument("direction: no residuals for one side");
  const size_t d = rows.front().size();
  std::vector<double> acc(d, 0.0);
  for (const auto& r : rows) {
    if (r.size() != d) throw std::invalid_argument("direction: residuals of different widths");
    for (size_t i = 0; i < d; ++i) acc[i] += r[i];
  }
  Vec out(d);
  for (size_t i = 0; i < d; ++i) out[i] = static_cast<float>(acc[i] / static_cast<double>(rows.size()));
  return out;
}

Vec unit(const Vec& v, double n, const char* what) {
  if (!(n > 0)) throw std::invalid_argument(std::string("direction: ") + what + " has zero norm");
  Vec out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i] / n);
  return out;
}

void check_phi(const Vec& phi, int depths, size_t d) {
  if (depths < 1 || d == 0 || phi.size() != static_cast<size_t>(depths) * d)
    throw std::invalid_argument("sigma: residual stack of " + std::to_string(phi.size()) + " floats is not " +
                                std::to_string(depths) + " depths x " + std::to_string(d));
}

}  // namespace

Direction make_direction(const std::vector<Vec>& phi_A, const std::vector<Vec>& phi_B) {
  const Vec m_A = mean_of(phi_A), m_B = mean_of(phi_B);
  if (m_A.size() != m_B.size()) throw std::invalid_argument("direction: A and B residuals differ in width");
  Direction d;
  d.norm_m_A = norm(m_A.data(), m_A.size());
  d.norm_m_B = norm(m_B.data(), m_B.size());
  d.e_A = unit(m_A, d.norm_m_A, "m_A");
  d.e_B = unit(m_B, d.norm_m_B, "m_B");
  Vec diff(m_A.size());
  for (size_t i = 0; i < diff.size(); ++i) diff[i] = m_A[i] - m_B[i];
  d.norm_diff = norm(diff.data(), diff.size());
  d.e_diff = unit(diff, d.norm_diff, "m_A - m_B");
  d.cos_AB = dot(d.e_A.data(), d.e_B.data(), d.e_A.size());
  return d;
}

std::vector<double> sigma_contrastive(const Vec& phi, int depths, const Vec& e_diff) {
  const size_t d = e_diff.size();
  check_phi(phi, depths, d);
  std::vector<double> s(depths);
  for (int l = 0; l < depths; ++l) {
    const float* row = phi.data() + static_cast<size_t>(l) * d;
    const double n = norm(row, d);
    s[l] = n > 0 ? dot(row, e_diff.data(), d) / n : 0.0;
  }
  return s;
}

std::vector<double> sigma_v1(const Vec& phi, int depths, const Vec& e_A, const Vec& e_B) {
  const size_t d = e_A.size();
  if (e_B.size() != d) throw std::invalid_argument("sigma_v1: e_A and e_B differ in width");
  check_phi(phi, depths, d);
  std::vector<double> s(depths);
  for (int l = 0; l < depths; ++l) {
    const float* row = phi.data() + static_cast<size_t>(l) * d;
    const double n = norm(row, d);
    // e_A, e_B are unit vectors, so cos(φ, e) = φ·e / |φ|.
    s[l] = n > 0 ? (dot(row, e_A.data(), d) - dot(row, e_B.data(), d)) / n : 0.0;
  }
  return s;
}

SigmaSummary summarize(const std::vector<double>& s) {
  if (s.empty()) throw std::invalid_argument("summarize: empty profile");
  SigmaSummary out;
  out.sigma_final = s.back();
  const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  out.sigma_range = *mx - *mn;
  double best = -1;
  for (size_t l = 0; l + 1 < s.size(); ++l) {
    const double j = s[l + 1] - s[l];
    if (std::fabs(j) > best) {  // strict: the first index wins ties (numpy argmax)
      best = std::fabs(j);
      out.max_jump_layer = static_cast<int>(l);
      out.max_jump_value = j;
    }
  }
  return out;
}

Response response(const std::vector<std::string>& labels, const std::vector<std::vector<double>>& sigma) {
  if (labels.size() != sigma.size() || labels.empty()) throw std::invalid_argument("response: labels vs profiles");
  auto find = [&](const std::string& l) -> const std::vector<double>& {
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == l) return sigma[i];
    throw std::invalid_argument("response: no " + l + " condition");
  };
  const auto& sA = find("strong_A");
  const auto& sB = find("strong_B");
  Response r;
  r.labels = labels;
  const double mid = (sA.back() + sB.back()) / 2, half = (sA.back() - sB.back()) / 2;
  if (std::fabs(half) < 1e-8) return r;
  r.valid = true;
  const size_t depths = sA.size();
  for (const auto& s : sigma) {
    if (s.size() != depths) throw std::invalid_argument("response: profiles of different depth");
    const double h = (s.back() - mid) / half;
    r.h.push_back(h);
    const bool keep = std::fabs(h) > 0.05;
    r.kept.push_back(keep);
    std::vector<double> f;
    if (keep)
      for (double v : s) f.push_back(v / h);
    r.f.push_back(std::move(f));
  }
  std::vector<const std::vector<double>*> curves;
  for (const auto& f : r.f)
    if (!f.empty()) curves.push_back(&f);
  if (curves.empty()) {
    r.collapse_variance = std::numeric_limits<double>::infinity();
    return r;
  }
  r.f_mean.assign(depths, 0.0);
  double var_sum = 0;
  for (size_t l = 0; l < depths; ++l) {
    std::vector<double> col;
    for (const auto* c : curves) col.push_back((*c)[l]);
    r.f_mean[l] = analysis::mean(col);
    const double sd = analysis::pstdev(col);
    var_sum += sd * sd;
  }
  r.collapse_variance =
      curves.size() < 2 ? std::numeric_limits<double>::infinity() : var_sum / static_cast<double>(depths);
  return r;
}

Linearity linear_response(const std::vector<std::vector<double>>& sigma, double threshold) {
  if (sigma.size() < 3) throw std::invalid_argument("linear_response: needs at least 3 profiles");
  const size_t depths = sigma.front().size();
  for (const auto& s : sigma)
    if (s.size() != depths || depths == 0) throw std::invalid_argument("linear_response: ragged profiles");
  Linearity out;
  for (const auto& s : sigma) out.M = std::max(out.M, std::fabs(s.back()));
  if (!(out.M > 0)) throw std::invalid_argument("linear_response: every final sigma is zero");
  std::vector<double> h;
  for (const auto& s : sigma) h.push_back(s.back() / out.M);
  out.order.resize(h.size());
  std::iota(out.order.begin(), out.order.end(), 0);
  // numpy's argsort is not stable, but only equal h values (the duplicated
  // first prompt) can swap, and they carry equal profiles.
  std::stable_sort(out.order.begin(), out.order.end(), [&](int a, int b) { return h[a] < h[b]; });
  for (int i : out.order) out.h_sorted.push_back(h[i]);

  for (size_t l = 0; l < depths; ++l) {
    std::vector<double> y;
    for (int i : out.order) y.push_back(sigma[i][l]);
    const auto lr = analysis::linregress(out.h_sorted, y);
    DepthFit df;
    df.layer = static_cast<int>(l);
    df.slope = lr.slope;
    df.intercept = lr.intercept;
    df.r2 = lr.r * lr.r;
    df.p_value = lr.p_value;
    df.std_err = lr.std_err;
    const auto [ymn, ymx] = std::minmax_element(y.begin(), y.end());
    const double range = *ymx - *ymn;
    for (size_t p = 0; p < y.size(); ++p) {
      const double res = y[p] - (lr.slope * out.h_sorted[p] + lr.intercept);
      df.residuals.push_back(res);
      df.max_abs_residual = std::max(df.max_abs_residual, std::fabs(res));
      if (range >= 1e-8 && std::fabs(res) / range > threshold) {
        const double ah = std::fabs(out.h_sorted[p]);
        if (!df.hstar || ah < *df.hstar) df.hstar = ah;
      }
    }
    out.f.push_back(df.slope);
    out.depths.push_back(std::move(df));
  }
  out.f_max = *std::max_element(out.f.begin(), out.f.end());
  return out;
}

UniversalG universal_g(const std::vector<std::string>& words, const std::vector<std::vector<double>>& f) {
  if (words.size() != f.size() || words.empty()) throw std::invalid_argument("universal_g: words vs profiles");
  UniversalG u;
  size_t depths = 0;
  for (size_t w = 0; w < words.size(); ++w) {
    const double fmax = *std::max_element(f[w].begin(), f[w].end());
    if (fmax < 1e-8) {
      u.skipped.push_back(words[w]);
      continue;
    }
    if (depths && f[w].size() != depths) throw std::invalid_argument("universal_g: profiles of different depth");
    depths = f[w].size();
    u.words.push_back(words[w]);
    u.fmax.push_back(fmax);
    std::vector<double> g;
    for (double v : f[w]) g.push_back(v / fmax);
    u.g.push_back(std::move(g));
  }
  if (u.words.empty()) throw std::invalid_argument("universal_g: no word has f_max >= 1e-8");
  for (size_t l = 0; l < depths; ++l) {
    std::vector<double> col;
    for (const auto& g : u.g) col.push_back(g[l]);
    u.g_mean.push_back(analysis::mean(col));
    u.g_std.push_back(analysis::pstdev(col));
  }
  u.l_norm = linspace(0, 1, static_cast<int>(depths));
  for (const auto& g : u.g) {
    std::vector<double> r;
    double mx = 0, ss = 0;
    for (size_t l = 0; l < depths; ++l) {
      r.push_back(g[l] - u.g_mean[l]);
      mx = std::max(mx, std::fabs(r.back()));
      ss += r.back() * r.back();
    }
    u.resid_max_abs.push_back(mx);
    u.resid_rmse.push_back(std::sqrt(ss / static_cast<double>(depths)));
    u.residuals.push_back(std::move(r));
  }
  return u;
}

Peak peak_of(const std::vector<double>& g) {
  if (g.size() < 2) throw std::invalid_argument("peak_of: fewer than 2 depths");
  Peak p;
  p.depth = static_cast<int>(std::max_element(g.begin(), g.end()) - g.begin());
  p.x = static_cast<double>(p.depth) / static_cast<double>(g.size() - 1);
  p.value = g[p.depth];
  p.last = g.back();
  p.drop = p.value - p.last;
  return p;
}

CurveCompare compare_curves(const std::vector<double>& coarse, const std::vector<double>& fine) {
  if (coarse.size() < 3 || fine.size() < 4)
    throw std::invalid_argument("compare_curves: needs >= 3 coarse and >= 4 fine points");
  CurveCompare c;
  c.x = linspace(0, 1, static_cast<int>(coarse.size()));
  c.coarse = coarse;
  const analysis::CubicSpline spline(linspace(0, 1, static_cast<int>(fine.size())), fine);
  double ss = 0;
  for (size_t i = 0; i < c.x.size(); ++i) {
    c.fine_on_coarse.push_back(spline(c.x[i]));
    const double d = c.fine_on_coarse.back() - coarse[i];
    ss += d * d;
    c.max_diff = std::max(c.max_diff, std::fabs(d));
  }
  c.rmse = std::sqrt(ss / static_cast<double>(c.x.size()));
  c.correlation = analysis::pearson(c.coarse, c.fine_on_coarse).r;
  return c;
}

std::vector<double> minmax_scaled(const std::vector<double>& v) {
  if (v.empty()) return {};
  const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  const double span = *mx - *mn;
  std::vector<double> out;
  for (double x : v) out.push_back(span > 0 ? (x - *mn) / span : 0.0);
  return out;
}

}  // namespace spt::sigma
