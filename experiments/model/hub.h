#pragma once
// Downloading a model from the Hugging Face Hub into the HF cache layout, so
// that `gpt2` just works on a machine that is online, and every later run
// (and the Python tools) finds it in the same place:
//
//   <cache_root>/models--<id with / as -->/snapshots/<rev>/{config.json, ...}
//   <cache_root>/models--<...>/refs/main   (holds <rev>)
//
// Files come from $HF_ENDPOINT (default https://huggingface.co) at
// <endpoint>/<id>/resolve/main/<file>, fetched with the curl program; a
// bearer $HF_TOKEN is sent when set. Nothing is attempted when
// $HF_HUB_OFFLINE=1. Files land as <file>.part and are renamed when
// complete, so an interrupted download is never taken for a model.
#include <string>

namespace spt::gpt2 {

// Returns the snapshot folder. Throws std::runtime_error saying what failed
// (offline, curl missing, HTTP error) for the first required file.
std::string download_from_hub(const std::string& repo_id, const std::string& cache_root);

// True when $HF_HUB_OFFLINE (or $TRANSFORMERS_OFFLINE) is set to 1/true/yes.
bool hub_offline();

}  // namespace spt::gpt2
