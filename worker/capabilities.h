#pragma once
// What a worker tells the coordinator about itself at registration.
#include <string>
#include <vector>

#include "spt/job.h"
#include "spt/v1/spt.pb.h"

namespace spt::worker {

// Device kind/name and memory for `device` ("cpu", "cuda", "cuda:N", "mps"),
// host name, code version, and from the registry the job kinds and
// precisions. Probing is best effort: an unknown name or size is left empty
// or 0 rather than failing. `models` are the models it can load without
// fetching, merged with those the executors have resident.
v1::Capabilities probe_capabilities(const std::string& device, int slots, int threads,
                                    const std::vector<std::string>& models, const ExecutorRegistry& reg);

}  // namespace spt::worker
