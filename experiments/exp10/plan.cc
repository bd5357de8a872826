// Placeholder until the exp10 plan lands (owned by the exp10 engineer).
#include "plans.h"

namespace spt::plan {

Plan plan_exp10(const Request&) { throw PlanError("exp10 planning is not built yet"); }

}  // namespace spt::plan
