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
  // {"model","precision","n_layer","n_head"[,"model_sha256" if known]}, and
  // with several models "scope" (= prefix(m)), against which the job's
  // inputs are named (platform/reduce_context.h: find_input).
  nlohmann::json base(const ModelRef& m) const;
  // "" with one model, else "<label>/": the prefix of m's job names.
  std::string prefix(const ModelRef& m) const;
  // The block as the plan's normalised params: plain values for one model,
  // comma lists for several.
  void add_params(nlohmann::json& params) const;
};

// Reads params model (default "gpt2"), model_sha256, n_layer, n_head,
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

// A plan under construction. Jobs added after setting `model` carry it as
// their affinity key.
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

}  // namespace spt::plan
