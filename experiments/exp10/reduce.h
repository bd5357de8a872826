#pragma once
// The exp10 family's reduce steps (kind exp10.reduce): CPU aggregation of
// upstream results into the original's JSON documents (same field names,
// spec §10), markdown reports and gnuplot figures. Torch-free.
//
// job.params["reduce"] selects the step:
//   a       exp10a_{m}.json           (baseline + zero-ablation table)
//   c       exp10c_{m}.json           (10C cumulative zero-ablation)
//   exp10   exp10_{m}.json + exp10_results_{m}.md + figures  (B, C, D)
//   e f g h exp10e…, exp10f…, exp10g…, exp10h… json
//   exp10b  exp10_phase1.5_{m}.json + exp10b_results_{m}.md + figures
//   i j k l exp10i…, exp10j…, exp10k…, exp10l… json
//   exp10c  exp10c_results_{m}.md + figures
//   v       exp10v_validation_{m}.json + exp10d_results_{m}.md + figures
// Every document carries "provenance" (model/data/tokenizer hashes,
// precision, devices, LibTorch and code versions, seed) merged from the
// inputs; disagreeing inputs are listed under provenance.conflicts.
//
// Rounding follows spec §2.7: PPL 4 dp, ΔPPL 6 dp, ratios 4 dp; rankings
// and thresholds use the rounded values; exp10a/10c divide by the freshly
// computed (unrounded) baseline, every later part by exp10a's rounded one.
#include <string>

#include "platform/reduce_context.h"
#include "spt/job.h"

namespace spt::exp10 {

// The platform's reduce vocabulary under the family's names.
using ReduceContext = spt::platform::ReduceContext;
using ReduceOutput = spt::platform::ReduceOutput;

// Throws std::runtime_error with a message naming what is missing or
// inconsistent (e.g. a head reported twice or not at all).
ReduceOutput run_reduce(const JobSpec& job, const ReduceContext& ctx);

// The PPL of a summed NLL (spec §2.2); the one formula every stage uses.
double ppl_of(double nll_sum, double n_tokens);

}  // namespace spt::exp10
