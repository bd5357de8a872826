#pragma once
// The exp10 family's executors, registered into the worker:
//   exp10.ppl    fused perplexity of model variants (one job = one variant)
//   exp10.means  per-head mean of hook_z over a chunk set
//   exp10.reduce CPU aggregation, reports and figures (exp10/reduce.h)
//   exp10.gen    Phase 3 generation units, P1–P3 (exp10/phase3.h), where
//                the engine has gpt2::generate (SPT_EXP10_GEN)
//
// The model executor groups a leased batch by (model, precision, dataset,
// chunking); per group it loads the model once per worker (cached across
// batches; loaded_models() reports the cache for lease affinity), tokenizes
// and chunks the dataset once (cached), resolves every job's variant from
// its params and inputs (exp10/variants.h), evaluates the group with
// Model::nll_many — the clean prefix below each variant's first touched
// layer is shared — and reports each job on its own as soon as its
// sub-batch is done. Fusion can be switched off per job (params.fuse =
// false) or per worker ($SPT_EXP10_FUSE=0): then each job is one nll().
// Other knobs (environment): SPT_EXP10_FUSE_MAX (variants per fused call,
// 48), SPT_EXP10_FUSE_TOKENS (variant-tokens per fused call, 2^20),
// and the platform model host's SPT_MODEL_CACHE (models kept loaded, 2;
// platform/model_host.h, shared with every family on the worker).
//
// Result of an exp10.ppl job:
//   {ppl (4 dp), nll_sum, n_tokens (predicted), n_chunks, total_tokens,
//    chunks ("v2k"|"vfull"), variant (what ran), delta_ppl (6 dp, vs an
//    input's rounded baseline_ppl on v2k, when present), fused (bool),
//    provenance {model, model_sha256, data_sha256, tokenizer_sha256,
//    tokens_sha256, precision, device, torch_version, code_version, seed, bos,
//    config, worker}}
// or {skipped: true, reason, variant} for a step past the real total.
//
// Model params: a Hugging Face name (via the HF cache), a local folder, or
// "sha256:<hex>" of a tar archive of a model folder in the coordinator's
// blob store (extracted once into the worker's cache). Dataset params: a
// path to wiki.valid.raw (or a folder holding it), "sha256:<hex>" of that
// file, or a name the coordinator has registered or found under
// $SPT_DATA_DIR / ~/.cache/spt/data. dataset_sha256, when given, must match
// the file's digest.
namespace spt {
class ExecutorRegistry;
}

namespace spt::exp10 {

void register_executors(spt::ExecutorRegistry& reg);

}  // namespace spt::exp10
