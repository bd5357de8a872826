#pragma once
// Sub-graph builders of the σ family, torch-free (compiled into spt_plan).
// plan.cc's plan_exp1/2/3/3ef use them, and so does any plan that consumes
// the family's results through the job graph (exp10 D reads exp3ef).
//
// Each builder adds a unit only if the plan does not hold it yet (same name =
// same unit; see sigma/common.h) and returns the name of what it built.
#include <string>
#include <vector>

#include "platform/plan_builder.h"

namespace spt::sigma {

// Params every σ model job carries: the model block's base without the
// multi-model scope (σ job names always carry the model label, so a unit
// is the same job whether submitted alone or next to other models).
nlohmann::json model_params(const plan::ModelBlock& mb, const plan::ModelRef& m);
// A per-model reduce's params: model_params plus {"reduce": step, "label":
// m.label}, then `extra` merged over them (plan::with).
nlohmann::json reduce_params(const plan::ModelBlock& mb, const plan::ModelRef& m, const std::string& step,
                             nlohmann::json extra = nlohmann::json::object());
// A cross-model report's params: reduce, labels, models, precision, parts.
nlohmann::json report_params(const plan::ModelBlock& mb, const std::string& step, const std::string& parts);

// exp3 (directions for the gradient words, 20 profiles each, one regression
// unit per word, the per-model reduce): returns exp3/<label>.
std::string add_exp3(plan::Builder& b, const plan::ModelBlock& mb, const plan::ModelRef& m);
// exp3ef E+F for one model (pulls in exp3): returns exp3ef/<label>.
std::string add_exp3ef(plan::Builder& b, const plan::ModelBlock& mb, const plan::ModelRef& m);

}  // namespace spt::sigma
