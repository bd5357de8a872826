#pragma once
// Internal to the π family's reduce steps (reduce_*.cc).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/fit_models.h"
#include "pi/science.h"
#include "platform/reduce_context.h"

namespace spt::pi::detail {

using nlohmann::json;

class Ctx : public platform::Reduce {
 public:
  Ctx(const JobSpec& job, const platform::ReduceContext& rc);
  std::string label, model;  // params.label, params.model
  int n_layer = 0;
};

// JSON has no NaN/∞: written as null, read back as NaN.
json nullable(double v);
double num(const json& v);
std::vector<double> dvec(const json& j, const std::string& key, const std::string& from);
json fit_json(const analysis::FitResult& f);
json stats_json(const RotationStats& s);
std::string random_banner(const json& prov);
std::string devices_of(const json& prov);  // "cpu", "cuda:0, cpu", … ("?" when absent)

// Step functions.
json exp8(Ctx& c);
json exp8_report(Ctx& c);
json exp9_a(Ctx& c);
json exp9_c(Ctx& c);
json exp9_convergence(Ctx& c);
json exp9_b(Ctx& c);
json exp9_report(Ctx& c);

}  // namespace spt::pi::detail
