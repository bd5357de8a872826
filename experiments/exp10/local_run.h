#pragma once
// Forwarding header: the in-process plan runner lives in the platform.
#include "platform/local_run.h"

namespace spt::exp10 {
using platform::LocalRun;
using platform::run_plan_in_process;
}  // namespace spt::exp10
