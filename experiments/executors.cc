// register_all_executors: every executor this build links (spt/job.h).
#include "spt/job.h"
#include "spt/selftest.h"

#if defined(SPT_HAVE_TORCH) && __has_include("exp10/executors.h")
#include "exp10/executors.h"
#define SPT_HAVE_MODEL_EXECUTORS 1
#include "sigma/executors.h"
#include "pi/executors.h"
#include "platform/canary_unit.h"
#include "exp7/executors.h"
#include "exp6/executors.h"
#include "spt/gpt2.h"
#endif

namespace spt {

void register_all_executors(ExecutorRegistry& reg) {
  reg.add(selftest::make_executor());
#ifdef SPT_HAVE_MODEL_EXECUTORS
  spt::exp10::register_executors(reg);
  spt::sigma::register_executors(reg);
  spt::pi::register_executors(reg);
  reg.hooks.canary = [](const std::string& device, const std::string& precision, const std::string& work_dir,
                        int threads) {
    const auto r = platform::canary_unit::run(device, precision, work_dir, threads);
    return DeviceHooks::CanaryRun{r.value, r.device};
  };
  reg.hooks.check_device = [](const std::string& device) { return gpt2::check_device(device); };
  spt::exp7::register_executors(reg);
  spt::exp6::register_executors(reg);
#endif
}

}  // namespace spt
