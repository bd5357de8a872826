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

}  // namespace spt::hf
