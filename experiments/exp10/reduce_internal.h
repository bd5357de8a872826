#pragma once
// Internal to the exp10 reduce steps (reduce*.cc): the per-job context,
// readers of upstream results, and the cumulative-curve helpers they share.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "exp10/common.h"
#include "exp10/orders.h"
#include "exp10/reduce.h"
#include "report/figure.h"

namespace spt::exp10::detail {

using nlohmann::json;

double r1(double x);
double r2(double x);
double r4(double x);
double r6(double x);

// numpy.mean of a float64 vector, summed as numpy does (pairwise, 8-way
// unrolled blocks of 128): the original's unrounded means, last bit included.
double np_mean(const std::vector<double>& v);

// One exp10.ppl result.
struct PplPoint {
  double ppl = 0;      // exp(nll / n), unrounded
  double nll = 0;
  int64_t n_tokens = 0;
  int64_t n_chunks = 0;
  int64_t total_tokens = 0;
  bool skipped = false;
  json variant;        // the executor's description of what it ran
};
PplPoint read_ppl(const json& result, const std::string& job_name);

// "L3H7" → {3, 7}; throws on anything else.
HeadId parse_head(const std::string& s);

// One exp10 reduce job: the platform's Reduce plus the model's shape.
class Ctx : public platform::Reduce {
 public:
  Ctx(const JobSpec& job, const ReduceContext& rc);

  const std::string label;  // model label for file names
  int n_layer = 0, n_head = 0;

  // Step inputs "<prefix><n>" → PPL point, skipped ones dropped; "all" is
  // keyed by the n the executor reports in variant.n_additional.
  std::map<int, PplPoint> steps(const std::string& prefix) const;
};

// Cumulative table rows {n_key: n, "ppl": 4dp, "ratio": 4dp}; step 0 is the
// baseline (ppl = round(base_ppl_shown, 4), ratio 1.0).
json cumulative_rows(const std::map<int, double>& ppl_by_n, double base_for_ratio, double base_shown,
                     const char* n_key);
// {"1.1": n*, "1.5": n*, "2.0": n*} by the §2.7 rule over rows' "ratio".
json thresholds_of(const json& rows, const char* n_key);
// ---- figures (report/figure.h): every exp10 figure shows ΔPPL on
// report::dppl_axis() (fractions in, "ΔPPL (%)" out); ratios stay ratios.
// ΔPPL axis titled `label` ("ΔPPL zero-ablation", "|ΔPPL|").
report::Axis dppl_axis(const std::string& label, report::Scale s = report::Scale::linear);
// The PPL-ratio axis, "PPL / baseline".
report::Axis ratio_axis(report::Scale s = report::Scale::linear);
// A cumulative table as a series: x = row[n_key], y = row[y_key].
report::Series curve_series(const json& rows, const char* n_key, std::string label, const char* y_key = "ratio");
// Ratio curves vs a step axis, with dashed lines at the thresholds 1.1, 1.5, 2.0.
report::Panel ratio_panel(std::string title, report::Axis x, std::vector<report::Series> curves,
                          report::Scale s = report::Scale::linear);
// Colour i of n along a sequential scale (dark blue → yellow), "#rrggbb":
// series coloured by layer.
std::string layer_color(int i, int n);
// "## Figures" and every figure emitted so far (Reduce::figures_md).
std::string figures_section(const Ctx& c);
using platform::provenance_md;
// "the WikiText-2 validation split" when every worker read wiki.valid.raw,
// else the file names, said plainly (a report never claims data it did not use).
std::string data_description(const json& prov);
// Verifies that every step in `want` (except 0) is present; throws naming
// the missing ones.
void require_steps(const std::map<int, PplPoint>& got, const std::vector<int>& want, const std::string& what);

json head_rows(const std::vector<HeadDelta>& rows, bool with_ppl, const char* ppl_key = "ppl_ablated");

// Step functions, one per reduce kind.
json reduce_a(Ctx& c);
json reduce_c(Ctx& c);
json reduce_exp10(Ctx& c);
json reduce_e(Ctx& c);
json reduce_f(Ctx& c);
json reduce_g(Ctx& c);
json reduce_h(Ctx& c);
json reduce_exp10b(Ctx& c);
json reduce_i(Ctx& c);
json reduce_j(Ctx& c);
json reduce_k(Ctx& c);
json reduce_l(Ctx& c);
json reduce_exp10c(Ctx& c);
json reduce_v(Ctx& c);
json reduce_p(Ctx& c);  // exp10d Phase 3 (reduce_p.cc)

// Phase 3 formulas (spec §10.4), exposed for tests:
// H·s / ((H − k)·s + k·κ), s = 4n²d + 5n², κ = 6nd².
double p_kernel_speedup(int n, int d, int heads, int k);
// {n_linear, flops_per_token_softmax, flops_per_token, flops_per_token_ratio (4 dp),
//  extra_tokens_at_equal_flops} for P3's equal-FLOP analysis.
json p_flops(int avg_seq, int d, int heads, int k, int new_tokens);

}  // namespace spt::exp10::detail
