// register_all_executors: every executor this build links (spt/job.h).
#include "spt/job.h"
#include "spt/selftest.h"

#if defined(SPT_HAVE_TORCH) && __has_include("exp10/executors.h")
#include "exp10/executors.h"
#define SPT_HAVE_MODEL_EXECUTORS 1
#include "sigma/executors.h"
#endif

namespace spt {

void register_all_executors(ExecutorRegistry& reg) {
  reg.add(selftest::make_executor());
#ifdef SPT_HAVE_MODEL_EXECUTORS
  spt::exp10::register_executors(reg);
  spt::sigma::register_executors(reg);
#endif
}

}  // namespace spt
