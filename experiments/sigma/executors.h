#pragma once
// The σ family's executors, registered into the worker:
//   sigma.direction  e_A, e_B, e_diff, cos_AB of one word (spec §2.3)
//   sigma.profile    σ(l) of one prompt against its word's direction, with
//                    the logit lens when asked (spec §3, §4 C, §5)
//   sigma.reduce     CPU aggregation, fits, JSON, figures, reports
//                    (sigma/reduce.h)
//
// The model executor runs a leased batch per model on the worker's shared
// model host (platform/model_host.h); the profiles of one word go through
// the probe as one batched forward (platform/probe.h; $SPT_SIGMA_BATCH=0
// runs one forward per prompt instead, for benchmarks). Results carry the
// host's provenance plus prompts_sha256 and random_weights (true for the
// generated test checkpoints: numbers from them check the pipeline, not
// the science).
namespace spt {
class ExecutorRegistry;
}

namespace spt::sigma {

void register_executors(spt::ExecutorRegistry& reg);

}  // namespace spt::sigma
