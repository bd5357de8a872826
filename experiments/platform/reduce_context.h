#pragma once
// A reduce job's view of the world, shared by every family (torch-free):
//   ReduceContext  what the worker gives a reduce (output folder, device, …)
//   ReduceOutput   what a reduce hands back (result, files, notes)
//   Reduce         one reduce job: inputs by name or prefix, params,
//                  provenance merged from the inputs, emit_json/text/plot,
//                  the markdown embedding its figures
//   make_reduce_executor  the Executor running a family's reduce function
//
// Input names are relative to the job's scope (params.scope, "" unless a
// multi-model plan put "<label>/" there; platform/plan_builder.h), so a
// reduce reads "a/reduce" whichever model's graph it belongs to.
//
// Ownership: a Reduce borrows its JobSpec and ReduceContext (they must
// outlive it) and owns its ReduceOutput. Not thread-safe; one per job.
// Errors: std::runtime_error naming the job and what is missing or
// inconsistent; emit_* throw on I/O failure.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/figure.h"
#include "spt/job.h"

namespace spt::platform {

struct ReduceContext {
  std::string out_dir;        // files are written here (created if needed)
  std::string device;         // of the worker running the reduce
  std::string worker;
  std::string torch_version;  // "" where the reduce runs without LibTorch
  // Resolves "sha256:<hex>" or a registered name to a local file (the
  // worker's blob cache); may be empty, then only local paths work.
  std::function<std::string(const std::string&)> fetch;
};

struct ReduceOutput {
  nlohmann::json result;
  std::vector<report::File> files;
  std::vector<std::string> notes;  // problems, e.g. "NAME: NAME.png and NAME.svg not drawn: …"
};

// The result of the input `name` (relative to the job's scope); nullptr
// when the job has no such input.
const nlohmann::json* find_input(const JobSpec& job, const std::string& name);

class Reduce {
 public:
  Reduce(const JobSpec& j, const ReduceContext& r) : job(j), rc(r) {}
  virtual ~Reduce() = default;

  const JobSpec& job;
  const ReduceContext& rc;
  ReduceOutput out;

  // The input named `name`'s result; throws naming the job and the input.
  const nlohmann::json& input(const std::string& name) const;
  // nullptr when absent (optional upstream parts).
  const nlohmann::json* maybe(const std::string& name) const;
  // Inputs whose name starts with `prefix`, by the remainder of the name;
  // throws if one appears twice.
  std::map<std::string, const nlohmann::json*> with_prefix(const std::string& prefix) const;

  // A string/integer param, or `def` when absent or of another type.
  std::string param(const std::string& key, const std::string& def = "") const;
  int64_t param_int(const std::string& key, int64_t def) const;

  // Merged from the inputs' provenance (model, data, tokenizer hashes,
  // precision, versions, seed, config, bos; devices and data files as
  // sets), plus the reduce's own; disagreeing inputs under "conflicts".
  nlohmann::json provenance() const;
  // Writes `doc` (plus provenance) as <name>.json; returns the document
  // with provenance so it can be the job's result.
  nlohmann::json emit_json(const std::string& name, nlohmann::json doc);
  void emit_text(const std::string& name, const std::string& text, const std::string& media_type);
  // Renders `plot` (report/figure.h) into rc.out_dir and records its files
  // (.dat, .gp, .png and .svg when drawn); returns the PNG's name for the
  // report. Its notes, prefixed "NAME: ": why an image is missing goes to
  // out.notes (a problem); the drawing policies that applied (log axis drawn
  // linear, values not drawn, …) are kept for figures_md().
  std::string emit_plot(const report::Plot& plot);
  // Markdown for every plot emitted so far, in order: the PNG embedded
  // (alt text = the plot's title, else its name), or, where it was not
  // rendered, its name and its script; then the notes, one list item each.
  // "" when nothing was emitted.
  std::string figures_md() const;

 private:
  struct Image {
    std::string name, title;
    bool png = false;
  };
  std::vector<Image> images_;
  std::vector<std::string> drawing_notes_;
};

// The "## Provenance" section of a report: every provenance field present
// (model, data, tokenizer and prompt hashes, random weights, precision,
// devices, versions, seed, BOS), and the inputs' disagreements loudly.
std::string provenance_md(const nlohmann::json& prov);

// The banner opening a report on a generated checkpoint: `text` when
// prov.random_weights is true, else "" (also when prov is not an object).
inline constexpr const char* kRandomWeightsBanner =
    "> **RANDOM WEIGHTS.** This model is a generated checkpoint with random weights: every number below "
    "checks the pipeline, not the science. Published values refer to GPT-2's real weights.\n\n";
std::string random_banner(const nlohmann::json& prov, const std::string& text = kRandomWeightsBanner);

using ReduceFn = std::function<ReduceOutput(const JobSpec&, const ReduceContext&)>;

// An Executor of `kinds` that runs `fn` once per job, serially, with files
// under <scratch>/<scratch_subdir>/<id>-<name>-<attempt>/. A throwing `fn`
// fails the job permanently with "<scratch_subdir> reduce <params.reduce>:
// <what>". `torch_version` goes into ReduceContext ("" without LibTorch).
std::unique_ptr<Executor> make_reduce_executor(std::vector<std::string> kinds, ReduceFn fn,
                                               std::string scratch_subdir, std::string torch_version = "");

}  // namespace spt::platform
