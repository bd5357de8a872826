#pragma once
// TF32 settings per forward (spec §1.6). LibTorch's TF32 switches are
// process-global, while a worker keeps several models (of different
// precisions) loaded at once; so every forward of a Model sets them from ITS
// precision when it starts and restores the previous state when it ends:
//   fp32, bf16: cuBLAS and cuDNN TF32 off, float32 matmul precision "highest";
//   tf32:       cuBLAS and cuDNN TF32 on,  float32 matmul precision "high".
// Loading a model no longer touches them.
//
// Thread-safety: the settings are global; two forwards of models with
// different precisions must not run at the same time (the worker's
// ModelHost::compute_mutex() serialises model computation).
//
// Internal to the engine; tests include it to check what a forward ran under
// (on the CPU the flags change no numbers, so the state itself is the
// observable).
#include <string>

#include "spt/gpt2.h"

namespace spt::gpt2 {

struct MatmulFlags {
  bool tf32_cublas = false;               // at::globalContext().allowTF32CuBLAS()
  bool tf32_cudnn = false;                // at::globalContext().allowTF32CuDNN()
  std::string float32_matmul_precision;   // "highest" | "high" | "medium"
  bool operator==(const MatmulFlags& o) const {
    return tf32_cublas == o.tf32_cublas && tf32_cudnn == o.tf32_cudnn &&
           float32_matmul_precision == o.float32_matmul_precision;
  }
  bool operator!=(const MatmulFlags& o) const { return !(*this == o); }
};

// The process's current settings.
MatmulFlags matmul_flags();
// The settings a model of precision p computes under.
MatmulFlags matmul_flags_for(Precision p);

// Sets the flags for `p` on construction, restores the previous ones on
// destruction. Nests.
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  bool cudnn_;
  std::string matmul_;
};

// The settings the last forward (nll, nll_many, head_z_sums, run,
// nll_with_hooks) of `m` ran under, read back from LibTorch after they were
// set; all false/empty before its first forward.
MatmulFlags last_forward_flags(const Model& m);

}  // namespace spt::gpt2
