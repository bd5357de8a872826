#pragma once
// Internal to the σ family's reduce steps (reduce_*.cc): the per-job
// context and readers of upstream results. Each experiment's file has its
// steps as three kinds of function: document (the JSON the spec lists),
// figures, report (markdown).
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/fit_models.h"
#include "platform/reduce_context.h"
#include "report/figure.h"

namespace spt::sigma::detail {

using nlohmann::json;

class Ctx : public platform::Reduce {
 public:
  Ctx(const JobSpec& job, const platform::ReduceContext& rc);

  std::string label;  // params.label: the model's file-name label
  std::string model;  // params.model
  int n_layer = 0;
  // Figures: platform::Reduce::emit_plot / figures_md.
};

// A double vector field; throws naming the input and the key.
std::vector<double> dvec(const json& j, const std::string& key, const std::string& from);
// The profile result of job `name` (a sigma.profile result); throws if absent.
const json& profile(const Ctx& c, const std::string& name);
// x = l/L over depths 0..L.
std::vector<double> depth_x(int n_layer);
// Depth index axis and the l/L axis.
report::Axis depth_axis();
report::Axis lnorm_axis();

// Loud banner for reports on random-weight checkpoints ("" otherwise).
using platform::random_banner;
using platform::provenance_md;
// "+0.298" style: sign always, `digits` decimals.
std::string sgn(double v, int digits = 3);
// The device(s) a document's numbers came from, as one string.
std::string device_of(const json& prov);

// JSON has no NaN or infinity (nlohmann writes them as null): write through
// nullable(), read back through num() (null → NaN, which report::fixed
// prints as "n/a").
json nullable(double v);
double num(const json& v);
// An AIC/BIC as the reports print it: 1 decimal, "inf" for null (+∞, §2.4).
std::string ic_str(const json& v);

// "exp3/<label>" → "<label>": the model label of a per-model reduce's name.
std::string label_of(const std::string& job_name);

// Fits (spec §2.4): maxfev of every σ-family fit, a fit as its JSON
// (params by name, y_fit only where the spec lists it), and a fitted
// curve evaluated on `x` from that JSON.
inline constexpr int kMaxfev = 20000;
json fit_json(const analysis::FitResult& f, bool with_y_fit);
std::vector<double> eval_fit(const std::vector<analysis::FitModel>& models, const json& fit,
                             const std::vector<double>& x);

// The names of the PNGs a per-model reduce drew, for the report to embed.
json png_names(const Ctx& c);
// Markdown embedding every PNG a per-model document lists.
std::string embed_figures(const json& doc);

// Step functions.
json exp1_v1(Ctx& c);
json exp1_v2(Ctx& c);
json exp1_report(Ctx& c);
json exp2_response(Ctx& c);
json exp2_fit(Ctx& c);
json exp2(Ctx& c);
json exp2_report(Ctx& c);
json exp3_regress(Ctx& c);
json exp3(Ctx& c);
json exp3_report(Ctx& c);
json exp3ef(Ctx& c);
json exp3ef_truncated(Ctx& c);
json exp3ef_cross(Ctx& c);
json exp3ef_report(Ctx& c);

}  // namespace spt::sigma::detail
