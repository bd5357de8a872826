#pragma once
// The models and data of one worker process, shared by every family's
// executors (LibTorch inside, this header torch-free):
//   - model resolution: a Hugging Face name (HF cache), a local folder,
//     "sha256:<hex>" of a tar of a model folder in the coordinator's blob
//     store (unpacked once under ctx.cache_dir/models/<digest>), or, when a
//     name fails locally, a coordinator blob registered under that name;
//   - a model cache, most recently used first, keyed by (model, precision,
//     device); size $SPT_MODEL_CACHE (the old $SPT_EXP10_MODEL_CACHE is read
//     too), default 2;
//   - dataset search (dataset_file) and a cache of chunk sets (V chunker:
//     spec §2.2; at most 8 kept);
//   - provenance of a result computed on a model (and a chunk set).
//
// Thread-safety: every method may be called from several threads; the
// caches are guarded by one mutex (a load or tokenization holds it, so a
// second caller waits rather than loading twice). Models and chunk sets are
// handed out as shared_ptr, so eviction never pulls one from under a user.
// A gpt2::Model itself is not thread-safe: hold compute_mutex() while
// running one (LibTorch already uses every core).
//
// Errors: PermanentError for what retrying elsewhere cannot fix (bad
// params, a blob that is no model, a dataset digest mismatch);
// std::runtime_error for the rest (e.g. a file not found on this worker).
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/grouped_run.h"  // PermanentError
#include "spt/gpt2.h"
#include "spt/job.h"

namespace spt {
class Tokenizer;
}

namespace spt::platform {

// What a chunk set is made of (params dataset, dataset_sha256, split,
// max_tokens, chunk_len, bos). The split picks the chunker (spec §2.1):
// "valid" → chunker V (exp10 family), "test" → chunker T (exp6–exp9).
struct ChunkKey {
  std::string dataset, dataset_sha, split = "valid";
  int64_t max_tokens = 0, chunk_len = 0;
  bool bos = false;

  // Defaults: wikitext-2-raw, split valid, chunks of 1024, no BOS;
  // max_tokens 2048 for valid (V2K), 200000 for test (T200K).
  // std::invalid_argument for a split other than valid/test.
  static ChunkKey from_params(const nlohmann::json& p);
  std::string str() const;
};

// "model|precision|chunk key" of a job's params: jobs with the same key run
// on one loaded model over one chunk set (run_grouped's key for them).
std::string model_data_key(const nlohmann::json& params);

// True for a generated checkpoint (experiments/model/testmodel.h marks its
// config.json): results on it are pipeline checks, not science, and reports
// say so (provenance "random_weights"). False when config.json is unreadable.
bool random_weights(const std::string& model_dir);

struct LoadedModel {
  std::string name;  // the model param
  std::unique_ptr<gpt2::Model> model;
  std::shared_ptr<Tokenizer> tokenizer;  // the model folder's, else GPT-2's
  bool random_weights = false;           // random_weights(model dir), read once at load
};

struct ChunkSet {
  gpt2::Chunks chunks;
  std::string data_file, data_sha256, tokenizer_sha256, tokens_sha256;
  int64_t total_tokens = 0;
  bool bos = false;
};

class ModelHost {
 public:
  // The model of params "model" (default gpt2) at "precision" (default
  // fp32) on ctx.device, loaded on first use. PermanentError when params
  // name n_layer/n_head other than the model's (the plan was made for
  // another model).
  std::shared_ptr<LoadedModel> model_for(const nlohmann::json& params, ExecContext& ctx);
  // The dataset file `k` names: "sha256:<hex>" (fetched), a path (a file or
  // a folder holding wiki.valid.raw), a coordinator-registered name, or a
  // name under $SPT_DATA_DIR / ~/.cache/spt/data.
  std::string dataset_file(const ChunkKey& k, ExecContext& ctx);
  // `k`'s tokens under m's tokenizer, cut by the split's chunker; checks
  // dataset_sha256 when given.
  std::shared_ptr<const ChunkSet> chunks_for(const ChunkKey& k, const LoadedModel& m, ExecContext& ctx);
  // {model, model_sha256, model_dir, precision, device, torch_version,
  //  code_version, seed, worker, config[, model_sha256_requested]} plus,
  // with a chunk set, {data_file, data_sha256, tokenizer_sha256,
  // tokens_sha256, bos}.
  nlohmann::json provenance(const nlohmann::json& params, const LoadedModel& m, const ChunkSet* cs,
                            const ExecContext& ctx) const;
  // Model params currently loaded, most recently used first (lease affinity).
  std::vector<std::string> loaded_models() const;
  // Serialises model computation across every executor of the process.
  std::mutex& compute_mutex() { return compute_mu_; }

 private:
  std::shared_ptr<LoadedModel> cached_or_loaded(const nlohmann::json& params, ExecContext& ctx);

  mutable std::mutex mu_;  // the caches below
  std::list<std::pair<std::string, std::shared_ptr<LoadedModel>>> models_;  // most recently used first
  std::map<std::string, std::shared_ptr<const ChunkSet>> chunks_;
  mutable std::mutex names_mu_;  // separate: heartbeats must not wait for a load
  std::vector<std::string> names_;
  std::mutex compute_mu_;
};

// The worker process's one host.
ModelHost& shared_model_host();

}  // namespace spt::platform
