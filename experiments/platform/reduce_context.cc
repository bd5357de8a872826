#include "platform/reduce_context.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "spt/util.h"
#include "spt/version.h"

namespace spt::platform {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string scope_of(const JobSpec& job) {
  const auto it = job.params.find("scope");
  return it != job.params.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

const json* find_input(const JobSpec& job, const std::string& name) {
  const std::string full = scope_of(job) + name;
  for (const auto& in : job.inputs)
    if (in.name == full) return &in.result;
  return nullptr;
}

const json& Reduce::input(const std::string& name) const {
  if (const json* p = maybe(name)) return *p;
  throw std::runtime_error("reduce " + job.name + " needs the result of " + name + " (not among its inputs)");
}

const json* Reduce::maybe(const std::string& name) const { return find_input(job, name); }

std::map<std::string, const json*> Reduce::with_prefix(const std::string& prefix) const {
  const std::string full = scope_of(job) + prefix;
  std::map<std::string, const json*> out;
  for (const auto& in : job.inputs)
    if (in.name.rfind(full, 0) == 0) {
      const std::string key = in.name.substr(full.size());
      if (!out.emplace(key, &in.result).second)
        throw std::runtime_error("reduce " + job.name + ": input " + in.name + " appears twice");
    }
  return out;
}

std::string Reduce::param(const std::string& key, const std::string& def) const {
  const auto& p = job.params;
  return p.contains(key) && p.at(key).is_string() ? p.at(key).get<std::string>() : def;
}

int64_t Reduce::param_int(const std::string& key, int64_t def) const {
  const auto& p = job.params;
  return p.contains(key) && p.at(key).is_number_integer() ? p.at(key).get<int64_t>() : def;
}

json Reduce::provenance() const {
  // Fields every input must agree on (paths and devices may differ per
  // worker and are not compared).
  static const char* kKeys[] = {"model",        "model_sha256", "data_sha256", "tokenizer_sha256", "precision",
                                "torch_version", "code_version", "seed",        "config",           "bos",
                                "prompts_sha256", "random_weights"};
  json out = json::object();
  json conflicts = json::array();
  std::set<std::string> devices, data_files;
  for (const auto& in : job.inputs) {
    if (!in.result.is_object() || !in.result.contains("provenance")) continue;
    const json& p = in.result.at("provenance");
    if (!p.is_object()) continue;
    for (const char* k : kKeys) {
      if (!p.contains(k)) continue;
      if (!out.contains(k))
        out[k] = p.at(k);
      else if (out.at(k) != p.at(k))
        conflicts.push_back({{"field", k}, {"input", in.name}, {"value", p.at(k)}, {"kept", out.at(k)}});
    }
    if (p.contains("device") && p.at("device").is_string()) devices.insert(p.at("device").get<std::string>());
    if (p.contains("devices") && p.at("devices").is_array())
      for (const auto& d : p.at("devices"))
        if (d.is_string()) devices.insert(d.get<std::string>());
    if (p.contains("data_file") && p.at("data_file").is_string()) data_files.insert(p.at("data_file").get<std::string>());
    if (p.contains("data_files") && p.at("data_files").is_array())
      for (const auto& d : p.at("data_files"))
        if (d.is_string()) data_files.insert(d.get<std::string>());
  }
  out["devices"] = devices;
  out["data_files"] = data_files;
  out["reduce"] = {{"worker", rc.worker},
                   {"device", rc.device},
                   {"code_version", SPT_CODE_VERSION},
                   {"torch_version", rc.torch_version}};
  if (!out.contains("code_version")) out["code_version"] = SPT_CODE_VERSION;
  if (!out.contains("seed")) out["seed"] = 0;
  if (!conflicts.empty()) out["conflicts"] = conflicts;
  return out;
}

json Reduce::emit_json(const std::string& name, json doc) {
  doc["provenance"] = provenance();
  emit_text(name + ".json", doc.dump(2) + "\n", "application/json");
  return doc;
}

void Reduce::emit_text(const std::string& name, const std::string& text, const std::string& media_type) {
  fs::create_directories(rc.out_dir);
  const std::string path = (fs::path(rc.out_dir) / name).string();
  write_file_atomic(path, text);
  out.files.push_back({name, path, media_type});
}

std::string Reduce::emit_plot(const report::Plot& plot) {
  const auto r = report::render_plot(plot, rc.out_dir);
  for (const auto& f : r.files) out.files.push_back(f);
  // render_plot says why an image is missing in its last note.
  const bool missing = !r.png || !r.svg;
  for (size_t i = 0; i < r.notes.size(); ++i)
    (missing && i + 1 == r.notes.size() ? out.notes : drawing_notes_).push_back(plot.name + ": " + r.notes[i]);
  images_.push_back({plot.name, plot.title.empty() ? plot.name : plot.title, r.png});
  return plot.name + ".png";
}

std::string Reduce::figures_md() const {
  std::string s;
  for (const auto& im : images_)
    s += im.png ? report::image_md(im.name + ".png", im.title) + "\n\n"
                : "`" + im.name + ".png` not rendered (data and gnuplot script alongside: `" + im.name + ".gp`)\n\n";
  for (const auto& n : out.notes) s += "- note: " + n + "\n";
  for (const auto& n : drawing_notes_) s += "- note: " + n + "\n";
  if (!out.notes.empty() || !drawing_notes_.empty()) s += "\n";
  return s;
}

namespace {

class ReduceExecutor : public Executor {
 public:
  ReduceExecutor(std::vector<std::string> kinds, ReduceFn fn, std::string subdir, std::string torch_version)
      : kinds_(std::move(kinds)), fn_(std::move(fn)), subdir_(std::move(subdir)), torch_(std::move(torch_version)) {}

  std::vector<std::string> kinds() const override { return kinds_; }

  void run(const std::vector<JobSpec>& jobs, ExecContext& ctx,
           const std::function<void(size_t, Outcome)>& done) override {
    for (size_t i = 0; i < jobs.size(); ++i) {
      const JobSpec& job = jobs[i];
      try {
        ReduceOutput out = fn_(job, context_for(job, ctx));
        std::vector<OutputFile> files;
        for (const auto& f : out.files) files.push_back({f.name, f.path, f.media_type});
        done(i, Outcome::success(std::move(out.result), std::move(files)));
      } catch (const std::exception& e) {
        done(i, Outcome::failure(subdir_ + " reduce " + job.params.value("reduce", std::string("?")) + ": " + e.what(),
                                 false));
      }
    }
  }

 private:
  ReduceContext context_for(const JobSpec& job, const ExecContext& ctx) const {
    ReduceContext rc;
    const std::string scratch = ctx.scratch_dir.empty() ? fs::temp_directory_path().string() : ctx.scratch_dir;
    std::string safe = job.name;
    std::replace(safe.begin(), safe.end(), '/', '_');
    rc.out_dir =
        (fs::path(scratch) / subdir_ / (std::to_string(job.id) + "-" + safe + "-" + std::to_string(job.attempt)))
            .string();
    rc.device = ctx.device;
    rc.worker = ctx.worker_name;
    rc.torch_version = torch_;
    if (ctx.fetch_blob) rc.fetch = ctx.fetch_blob;
    return rc;
  }

  std::vector<std::string> kinds_;
  ReduceFn fn_;
  std::string subdir_, torch_;
};

}  // namespace

std::unique_ptr<Executor> make_reduce_executor(std::vector<std::string> kinds, ReduceFn fn, std::string scratch_subdir,
                                               std::string torch_version) {
  return std::make_unique<ReduceExecutor>(std::move(kinds), std::move(fn), std::move(scratch_subdir),
                                          std::move(torch_version));
}

std::string random_banner(const json& prov, const std::string& text) {
  if (!prov.is_object() || !prov.value("random_weights", false)) return "";
  return text;
}

std::string provenance_md(const json& prov) {
  std::string s = "## Provenance\n\n";
  auto line = [&](const char* label, const char* key) {
    if (!prov.is_object() || !prov.contains(key)) return;
    const json& v = prov.at(key);
    s += std::string("- ") + label + ": `" + (v.is_string() ? v.get<std::string>() : v.dump()) + "`\n";
  };
  line("model", "model");
  line("model sha256", "model_sha256");
  line("random weights (a generated checkpoint: a pipeline check, not science)", "random_weights");
  line("data files (as each worker saw them)", "data_files");
  line("data sha256", "data_sha256");
  line("tokenizer sha256", "tokenizer_sha256");
  line("prompts sha256", "prompts_sha256");
  line("precision", "precision");
  line("devices", "devices");
  line("LibTorch", "torch_version");
  line("code version", "code_version");
  line("seed", "seed");
  line("BOS prepended", "bos");
  if (prov.is_object() && prov.contains("conflicts"))
    s += "- **inputs disagree**: `" + prov.at("conflicts").dump() + "`\n";
  return s + "\n";
}

}  // namespace spt::platform
