#pragma once
// A Hugging Face model folder as files on disk, without reading tensors:
// which files hold the weights and their digest. Shared by the engine (which
// loads them) and spt-client (which describes a local folder in a submission
// without linking the engine), so both name a model by the same sha256.
#include <string>
#include <vector>

namespace spt::hf {

// The weight files in shard order: dir/model.safetensors, or the files of
// dir/model.safetensors.index.json's weight_map (unique, sorted by name).
// Throws std::runtime_error if neither exists (mentioning pytorch_model.bin
// if that is all there is), or if a listed shard is missing.
std::vector<std::string> weight_files(const std::string& dir);

// sha256 over the bytes of `files` concatenated in order: a model's identity
// in every result's provenance.
std::string weights_sha256(const std::vector<std::string>& files);

// dir holds safetensors weights (model.safetensors or its shard index).
bool has_weights(const std::string& dir);

// The Hugging Face cache folders a hub model is looked for in, in order:
// $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub (unique).
std::vector<std::string> cache_roots();

// The repository ids a model name has on the hub ("gpt2" is also
// "openai-community/gpt2"), the name itself first.
std::vector<std::string> hub_ids(const std::string& name);

// The cached snapshot folder of hub model `name` (config.json and
// safetensors weights present): refs/main's snapshot, else the first
// complete one by name; "" if none. `looked` (optional) receives every
// repository folder searched. Reads the file system only; never downloads.
std::string cached_snapshot(const std::string& name, std::vector<std::string>* looked = nullptr);

}  // namespace spt::hf
