#pragma once
// Checkpoint → processed Weights (spec §1.3, §1.7). Internal to the engine.
//
// raw_weights() lays the HF tensors out in TransformerLens form without
// changing any value; the four processing steps then run in TransformerLens's
// order (fold_ln → center_writing_weights → center_unembed →
// fold_value_biases), each in place, in float32 on the CPU. process() applies
// the ones switched on in Processing.
#include "checkpoint.h"
#include "spt/gpt2_hooks.h"

namespace spt::gpt2 {

Weights raw_weights(const Checkpoint& ck);

// LN γ/β folded into the reading weights, which are then centred over
// d_model; LayerNorms become LNPre (ln*_w/ln*_b left undefined).
void fold_ln(Weights& w, const Config& c);
// Weights writing to the residual stream lose their mean over d_model.
void center_writing_weights(Weights& w, const Config& c);
// W_U and b_U lose their mean over the vocabulary.
void center_unembed(Weights& w, const Config& c);
// b_O += Σ_h b_V[h]·W_O[h]; b_V = 0.
void fold_value_biases(Weights& w, const Config& c);

void process(Weights& w, const Config& c, const Processing& p);

// Copies to device; matrices (W_QKV, W_O, W_in, W_out, W_U) in `matrix_dtype`,
// everything else float32. Views re-created.
Weights to_device(const Weights& w, const Config& c, at::Device dev, at::ScalarType matrix_dtype);

}  // namespace spt::gpt2
