#pragma once
// The π family's executors, registered into the worker:
//   pi.rotation  rotation angles θ_b of the residual stream between depths
//                (spec §8 C, §9 B): over the first max_samples positions of
//                chunk 0 of the test split, or at the last token of each
//                prompt tokenised without BOS
//   pi.reduce    CPU aggregation, fits, JSON, figures, reports (pi/reduce.h)
// Model work runs on the worker's shared model host (platform/model_host.h)
// under its compute mutex. Results carry the host's provenance plus
// random_weights (true for generated test checkpoints).
namespace spt {
class ExecutorRegistry;
}

namespace spt::pi {

void register_executors(spt::ExecutorRegistry& reg);

}  // namespace spt::pi
