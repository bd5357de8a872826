#pragma once
// Turns the friendly submit flags (--model, --dataset, --precision, ...) into
// experiment params, describing local files so results name what they ran on:
//
//   --model gpt2            → model=gpt2 (workers resolve it in their HF cache)
//   --model ./my-gpt2/      → model=<absolute path>, model_sha256, n_layer,
//                             n_head (from the folder's config.json)
//   --model gpt2,./m2/      → one entry per model, each resolved as above,
//                             as aligned comma lists (model=gpt2,<path>
//                             n_layer=12,2 n_head=12,4 model_sha256=,<hex>);
//                             dims/sha listed only if some entry is a folder
//   --dataset wiki.valid.raw or a folder holding it
//                           → dataset=<absolute path>, dataset_sha256
//   with upload set, local folders/files go into the coordinator's artifact
//   store first and the params name them as sha256:<digest>, so workers on
//   other machines can fetch them.
//
// Torch-free and engine-free: only config.json and file digests are read.
#include <functional>
#include <map>
#include <string>

namespace spt::client {

struct SubmitFlags {
  std::string model, dataset, precision;
  long long max_tokens = 0, chunk_len = 0;  // 0 = the experiment's default
  bool upload = false;
};

// Uploads a local file under a name; returns its sha256.
using Uploader = std::function<std::string(const std::string& path, const std::string& name)>;
// The sha256 of the blob the coordinator has under `name`, or "" if none:
// an upload whose content is already stored is skipped (a model archive is
// registered as model/<weights sha256>.tar, so the same weights upload once).
using Lookup = std::function<std::string(const std::string& name)>;

// Params implied by `f`, to merge under explicit --param values (which win).
// With f.upload, a hub name found in this machine's HF cache is uploaded
// like a folder. Throws std::runtime_error with a clear message for
// unreadable or malformed local inputs.
std::map<std::string, std::string> submission_params(const SubmitFlags& f, const Uploader& upload,
                                                     const Lookup& lookup = {});

// The snapshot folder of hub model `id` in this machine's HF cache, found
// exactly as a worker's loader finds it (spt::hf::cached_snapshot), or "".
std::string hf_cache_snapshot(const std::string& id);

}  // namespace spt::client
