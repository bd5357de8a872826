#pragma once
// The pieces every family's plan reads and builds with (torch-free, compiled
// into spt_plan, so the coordinator links it):
//   ModelBlock  the models a submission names and their precision
//   DataBlock   the dataset and its chunking
//   Builder     a plan under construction (unique job names, affinity)
//
// Multi-model params travel as aligned comma lists, one entry per model:
//   model=gpt2,/path/m2 n_layer=12,2 n_head=12,4 model_sha256=,<hex>
// Empty entries are allowed (no sha; a known name's dims). With one model
// the params are plain values, exactly as a single-model plan always had.
//
// Errors: readers throw PlanError with a message prefixed by the
// experiment's name; Builder throws std::logic_error on a plan bug (a job
// name used twice). Nothing here is shared between threads.
#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/model_names.h"
#include "spt/plan.h"

namespace spt::plan {

class ParamReader;  // experiments/plans.h

struct ModelRef {
  std::string name;    // the model param: hub name, folder, "sha256:<hex>"
  std::string sha256;  // expected weights digest; "" = not checked
  std::string label;   // model_label(name): file names, job-name prefix
  int n_layer = 0, n_head = 0, n_ctx = 0;  // n_ctx: 0 where unknown
};

struct ModelBlock {
  std::vector<ModelRef> models;  // at least one, no two alike
  std::string precision;         // fp32, tf32 or bf16

  // Params every job on model `m` carries:
  // {"model","precision","n_layer","n_head"[,"model_sha256" if known]
  //  [,"model_label" where it is not model_label(model): uploads]}, and
  // with several models "scope" (= prefix(m)), against which the job's
  // inputs are named (platform/reduce_context.h: find_input).
  nlohmann::json base(const ModelRef& m) const;
  // "" with one model, else "<label>/": the prefix of m's job names.
  std::string prefix(const ModelRef& m) const;
  // The block as the plan's normalised params: plain values for one model,
  // comma lists for several.
  void add_params(nlohmann::json& params) const;
};

// Reads params model (default "gpt2"), model_sha256, n_layer, n_head, n_ctx
// (the client sends it from a folder's config.json; a plan refuses a chunk
// longer than it at submission), model_label (the name an uploaded
// sha256:<hex> model was submitted under; labels default to model_label()),
// precision (default fp32) and validates them: dims are required for names
// not in known_model() and must match those that are; sha256s are 64
// lower-case hex digits; no model twice; allow_many=false takes one model.
ModelBlock read_models(ParamReader& p, const std::string& experiment, bool allow_many);

struct DataBlock {
  std::string dataset, dataset_sha256, split = "valid";
  int64_t max_tokens = 0, chunk_len = 0, bos = 0;

  // {"dataset","max_tokens","chunk_len","bos"[,"dataset_sha256" if known]
  //  [,"split" unless valid: the family's, not a user param]}
  nlohmann::json data_json() const;
};

struct DataDefaults {
  std::string dataset = "wikitext-2-raw";
  std::string split = "valid";  // "test": chunker T (spec §2.1)
  int64_t max_tokens = 2048;
  int64_t chunk_len = 1024;
};

// Reads params dataset, dataset_sha256, max_tokens [2, 1e9],
// chunk_len [2, 1e6], bos (0/1).
DataBlock read_data(ParamReader& p, const std::string& experiment, const DataDefaults& defaults = {});

// Planned device memory of one job on a GPT-2-shaped model (bytes), known
// at plan time without reading any file:
//   weights      parameters as the engine holds them after processing: the
//                checkpoint's V·d + P·d + L·(12d² + 13d) + 2d, plus its own
//                copy of the unembedding (V·d, centred, so untied); 4 bytes
//                each, matrices 2 bytes under bf16. gpt2-xl fp32: 6.55e9
//                (6.23e9 of checkpoint weights + the unembedding copy).
//   activations  one forward of one row of `tokens` tokens: 4 bytes ×
//                T·(16d + 3H·T + V) (stream, qkv, MLP hidden; scores, pattern
//                and mask; one row of logits). The engine batches more rows
//                only within its own memory budget, so this is the least a
//                job needs, not what it may use.
//   overhead     512 MiB for the runtime (allocator slack, CUDA context).
// d_model = the known model's, else 64·n_head (GPT-2's head width); vocab
// and n_ctx likewise (50257, 1024).
struct Footprint {
  int64_t weights = 0, activations = 0, overhead = 0;
  int64_t total() const { return weights + activations + overhead; }
};
Footprint model_footprint(const std::string& model, int n_layer, int n_head, const std::string& precision,
                          int64_t tokens);
// The footprint of a job from its params ("model", "n_layer", "n_head",
// "precision", optional "chunk_len" (else n_ctx)); 0 when they name no model.
int64_t job_mem_bytes(const nlohmann::json& params);

// Splittable perplexity units (spec §2.2): a variant's NLL over chunk set
// T is planned as sub-units over chunk ranges [begin, end) that a reduce
// sums in double. Chunker T's count at plan time: starts 0, len, …
// strictly below max_tokens − len (spec §2.1; T200K → 195).
int64_t t_chunk_count(int64_t max_tokens, int64_t chunk_len);
struct ChunkRange {
  int64_t begin = 0, end = 0;
  std::string name() const;  // "c000-013": the job-name segment of [begin, end)
};
// [0, per_unit), [per_unit, 2·per_unit), … covering [0, n_chunks) once.
std::vector<ChunkRange> chunk_ranges(int64_t n_chunks, int64_t per_unit);

// A plan under construction. Jobs added after setting `model` carry it as
// their affinity key, and (unless they are reduces) the memory footprint
// their params imply (job_mem_bytes).
struct Builder {
  Plan plan;
  std::set<std::string> names;
  std::string model;

  JobSpec& add(const std::string& name, const std::string& kind, nlohmann::json params,
               std::vector<std::string> deps, bool reduce = false);
  bool has(const std::string& name) const { return names.count(name) > 0; }
  // The subset of `deps` that exist in this plan, in the given order.
  std::vector<std::string> present(std::initializer_list<std::string> deps) const;
};

// `base` with every key of `extra` set (extra wins).
nlohmann::json with(nlohmann::json base, const nlohmann::json& extra);

// Letters of `parts` (case-insensitive, ',' and ' ' ignored) checked
// against `known`, returned in `known`'s order without repeats; "" → `def`,
// "all" → every known part. Throws PlanError "<exp>: unknown part 'X'
// (parts are letters of \"<known>\", or \"all\")".
std::string normalise_parts(const std::string& exp, std::string parts, const std::string& known,
                            const std::string& def);

}  // namespace spt::plan
