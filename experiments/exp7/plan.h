#pragma once
// exp7's plan (spec §7), torch-free, compiled into spt_plan. Per model
// (job names prefixed "<label>/" when several models are given):
//   a/capture            exp7.capture  Δφ of every block at the first
//                                      max_samples positions of chunk 0 (A17)
//   b/pca/<b>            exp7.reduce   PCA of block b's Δφ, thresholds, basis artifact
//   c/shared             exp7.reduce   PCA of all blocks stacked, 7C metrics, basis artifact
//   d/ppl/<v>/<r>        exp7.ppl      Σ NLL of variant v (baseline, individual/K,
//                                      shared/K) over chunk range r of T200K
//   e/capture            exp7.capture  hook_attn_out and hook_mlp_out at the same positions
//   e/pca/{attn,mlp}/<b> exp7.reduce   PCA thresholds of each
//   report               exp7.reduce   exp7_<label>.json, figures, exp7_results_<label>.md
// Params: the model block, the data block (chunker T: split test, default
// max_tokens 200000), max_samples (1000), ks (7D's K list), recon_ks (7C's),
// chunks_per_unit (13: T200K's 195 chunks in 15 sub-units per variant).
// Parts: letters of "abcde"; d pulls in a, b and c, b and c pull in a.
// Chunk ranges and chunker T's count: platform/plan_builder.h.
