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
// memory_bytes: the registered memory; 0 = probe (default_memory_bytes).
v1::Capabilities probe_capabilities(const std::string& device, int slots, int threads,
                                    const std::vector<std::string>& models, const ExecutorRegistry& reg,
                                    int64_t memory_bytes = 0);

// What a worker offers to hold when --memory is not given: on a GPU, its
// total memory (nvidia-smi; 0 if unknown); on the CPU (and MPS, whose
// memory is the host's), physical RAM or the cgroup's limit if lower, less
// headroom for the OS and the daemon (1/8, at least 512 MiB, at most 4 GiB).
int64_t default_memory_bytes(const std::string& device);

// "16G", "1.5GiB", "512M", "2048MiB", "100k", "123456" (bytes); binary
// units. Throws std::invalid_argument naming the input.
int64_t parse_bytes(const std::string& s);

}  // namespace spt::worker
