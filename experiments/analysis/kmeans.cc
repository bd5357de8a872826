// k-means++ / Lloyd with sklearn's KMeans semantics. See kmeans.h. Written
// here rather than taken from a library: no Debian C/C++ package offers
// sklearn's greedy k-means++ and its convergence rule, and the data are tiny
// (exp6 C: 144 points × 20 scores).
#include "analysis/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

namespace spt::analysis {
namespace {

// Uniform in [0, 1) from the top 53 bits: the same on every platform,
// unlike std::uniform_real_distribution.
double uniform01(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1.0p-53; }

double sqdist(const Matrix& a, int64_t i, const Matrix& b, int64_t j) {
  double s = 0;
  for (int64_t c = 0; c < a.cols; ++c) {
    const double d = a.at(i, c) - b.at(j, c);
    s += d * d;
  }
  return s;
}

void copy_row(const Matrix& from, int64_t i, Matrix& to, int64_t j) {
  for (int64_t c = 0; c < from.cols; ++c) to.at(j, c) = from.at(i, c);
}

// Greedy k-means++ (sklearn's _kmeans_plusplus): the first centre uniform,
// then per centre 2 + ⌊ln k⌋ candidates drawn ∝ D², keep the one that
// lowers the potential most.
Matrix seed_plusplus(const Matrix& x, int64_t k, std::mt19937_64& g) {
  const int64_t n = x.rows;
  Matrix centers{k, x.cols, std::vector<double>(static_cast<size_t>(k * x.cols))};
  copy_row(x, static_cast<int64_t>(uniform01(g) * static_cast<double>(n)), centers, 0);
  std::vector<double> closest(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) closest[i] = sqdist(x, i, centers, 0);
  const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  std::vector<double> cum(static_cast<size_t>(n)), cand_d(static_cast<size_t>(n)), best_d;
  for (int64_t c = 1; c < k; ++c) {
    double pot = 0;
    for (int64_t i = 0; i < n; ++i) cum[i] = (pot += closest[i]);
    double best_pot = std::numeric_limits<double>::infinity();
    int64_t best_id = 0;
    for (int t = 0; t < trials; ++t) {
      const double r = uniform01(g) * pot;
      const int64_t id = std::min<int64_t>(std::lower_bound(cum.begin(), cum.end(), r) - cum.begin(), n - 1);
      double cand_pot = 0;
      for (int64_t i = 0; i < n; ++i) cand_pot += (cand_d[i] = std::min(closest[i], sqdist(x, i, x, id)));
      if (cand_pot < best_pot) best_pot = cand_pot, best_id = id, best_d = cand_d;
    }
    copy_row(x, best_id, centers, c);
    closest = best_d;
  }
  return centers;
}

// E-step: nearest centre per point (ties: lowest index); returns inertia.
double assign(const Matrix& x, const Matrix& centers, std::vector<int64_t>& labels,
              std::vector<double>& dist) {
  double inertia = 0;
  for (int64_t i = 0; i < x.rows; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < centers.rows; ++c) {
      const double d = sqdist(x, i, centers, c);
      if (d < best) best = d, labels[i] = c;
    }
    inertia += (dist[i] = best);
  }
  return inertia;
}

// M-step: means of the members. An empty cluster takes the point farthest
// from its current centre (sklearn relocates empty clusters the same way).
Matrix update(const Matrix& x, const std::vector<int64_t>& labels, const std::vector<double>& dist,
              int64_t k) {
  Matrix out{k, x.cols, std::vector<double>(static_cast<size_t>(k * x.cols), 0.0)};
  std::vector<int64_t> count(static_cast<size_t>(k), 0);
  for (int64_t i = 0; i < x.rows; ++i) {
    ++count[labels[i]];
    for (int64_t c = 0; c < x.cols; ++c) out.at(labels[i], c) += x.at(i, c);
  }
  std::vector<int64_t> far(static_cast<size_t>(x.rows));
  for (int64_t i = 0; i < x.rows; ++i) far[i] = i;
  std::stable_sort(far.begin(), far.end(), [&](int64_t a, int64_t b) { return dist[a] > dist[b]; });
  size_t next_far = 0;
  for (int64_t c = 0; c < k; ++c) {
    if (count[c] == 0) {
      copy_row(x, far[next_far++ % far.size()], out, c);
      continue;
    }
    for (int64_t j = 0; j < x.cols; ++j) out.at(c, j) /= static_cast<double>(count[c]);
  }
  return out;
}

double tolerance(const Matrix& x, double tol) {  // tol · mean per-feature variance
  double total = 0;
  for (int64_t c = 0; c < x.cols; ++c) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < x.rows; ++i) m += x.at(i, c);
    m /= static_cast<double>(x.rows);
    for (int64_t i = 0; i < x.rows; ++i) v += (x.at(i, c) - m) * (x.at(i, c) - m);
    total += v / static_cast<double>(x.rows);
  }
  return tol * total / static_cast<double>(x.cols);
}

KMeansResult lloyd(const Matrix& x, Matrix centers, const KMeansOptions& opt, double tol) {
  KMeansResult r;
  r.labels.assign(static_cast<size_t>(x.rows), 0);
  std::vector<double> dist(static_cast<size_t>(x.rows));
  std::vector<int64_t> previous;
  for (r.n_iter = 1; r.n_iter <= opt.max_iter; ++r.n_iter) {
    assign(x, centers, r.labels, dist);
    if (r.labels == previous) break;  // labels stable: centres are already their means
    previous = r.labels;
    Matrix next = update(x, r.labels, dist, opt.k);
    double shift = 0;
    for (size_t i = 0; i < next.v.size(); ++i) shift += (next.v[i] - centers.v[i]) * (next.v[i] - centers.v[i]);
    centers = std::move(next);
    if (shift <= tol) break;
  }
  r.n_iter = std::min(r.n_iter, opt.max_iter);
  // Labels and inertia of the final centres (sklearn's closing E-step).
  r.inertia = assign(x, centers, r.labels, dist);
  r.centers = std::move(centers);
  return r;
}

void check(const Matrix& x, const KMeansOptions& opt) {
  if (x.rows <= 0 || x.cols <= 0 || x.v.size() != static_cast<size_t>(x.rows * x.cols))
    throw std::invalid_argument("kmeans: empty or ragged matrix");
  if (opt.k < 1 || opt.k > x.rows)
    throw std::invalid_argument("kmeans: k " + std::to_string(opt.k) + " outside [1, " +
                                std::to_string(x.rows) + "]");
  if (opt.n_init < 1 || opt.max_iter < 1)
    throw std::invalid_argument("kmeans: n_init and max_iter must be ≥ 1");
}

}  // namespace

KMeansResult kmeans(const Matrix& x, const KMeansOptions& opt) {
  check(x, opt);
  std::mt19937_64 g(opt.seed);
  const double tol = tolerance(x, opt.tol);
  KMeansResult best;
  for (int run = 0; run < opt.n_init; ++run) {
    KMeansResult r = lloyd(x, seed_plusplus(x, opt.k, g), opt, tol);
    if (run == 0 || r.inertia < best.inertia) {
      best = std::move(r);
      best.best_init = run;
    }
  }
  best.seed = opt.seed;
  return best;
}

std::vector<int64_t> nearest_members(const Matrix& x, const KMeansResult& r) {
  std::vector<int64_t> rep(static_cast<size_t>(r.centers.rows), -1);
  std::vector<double> best(static_cast<size_t>(r.centers.rows), std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < x.rows; ++i) {
    const int64_t c = r.labels[i];
    const double d = sqdist(x, i, r.centers, c);
    if (d < best[c]) best[c] = d, rep[c] = i;
  }
  return rep;
}

std::vector<int64_t> cluster_sizes(const KMeansResult& r) {
  std::vector<int64_t> n(static_cast<size_t>(r.centers.rows), 0);
  for (int64_t l : r.labels) ++n[l];
  return n;
}

}  // namespace spt::analysis
