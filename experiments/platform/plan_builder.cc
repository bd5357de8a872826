#include <cstdio>
#include "platform/plan_builder.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

#include "plans.h"
#include "spt/util.h"

namespace spt::plan {

using nlohmann::json;
using spt::platform::known_model;
using spt::platform::model_label;

namespace {


std::string join_commas(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

void check_sha(const std::string& sha, const std::string& experiment) {
  if (!sha.empty() && (sha.size() != 64 || sha.find_first_not_of("0123456789abcdef") != std::string::npos))
    throw PlanError(experiment + ": a *_sha256 param must be 64 lower-case hex digits");
}

// One entry per model from a comma-list param ("" = absent: all entries empty).
std::vector<std::string> list_param(ParamReader& p, const std::string& key, size_t n, const std::string& experiment) {
  const std::string raw = p.str(key, "");
  if (raw.empty()) return std::vector<std::string>(n);
  auto v = split_commas(raw);
  if (v.size() != n)
    throw PlanError(experiment + ": param " + key + "=" + raw + " lists " + std::to_string(v.size()) +
                    " values for " + std::to_string(n) + " models");
  return v;
}

// A list entry as a dimension; "" → `def`.
int64_t dim_entry(const std::string& key, const std::string& v, int64_t def, int64_t max = 4096) {
  if (v.empty()) return def;
  size_t pos = 0;
  int64_t x = 0;
  try {
    x = std::stoll(v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != v.size()) throw PlanError("param " + key + " entry '" + v + "' is not an integer");
  if (x < 0 || x > max)
    throw PlanError("param " + key + " entry '" + v + "' is out of range [0, " + std::to_string(max) + "]");
  return x;
}

void validate(const ModelRef& m, const std::string& experiment) {
  if (m.name.empty()) throw PlanError(experiment + ": param model must not be empty");
  const auto* known = known_model(m.name);
  if (m.n_layer < 1 || m.n_head < 1)
    throw PlanError(experiment + ": model '" + m.name +
                    "' is not a known name (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2); give "
                    "n_layer and n_head (spt-client reads them from a local folder's config.json)");
  if (known && (m.n_layer != known->n_layer || m.n_head != known->n_head))
    throw PlanError(experiment + ": " + m.name + " has n_layer=" + std::to_string(known->n_layer) + ", n_head=" +
                    std::to_string(known->n_head) + "; the params say " + std::to_string(m.n_layer) + " x " +
                    std::to_string(m.n_head));
}

}  // namespace

json ModelBlock::base(const ModelRef& m) const {
  json b = {{"model", m.name}, {"precision", precision}, {"n_layer", m.n_layer}, {"n_head", m.n_head}};
  if (!m.sha256.empty()) b["model_sha256"] = m.sha256;
  if (models.size() > 1) b["scope"] = prefix(m);
  // An uploaded sha256:<hex> model keeps the name it was submitted under in
  // file names; absent otherwise, so every other job's params stay as they were.
  if (m.label != model_label(m.name)) b["model_label"] = m.label;
  return b;
}

std::string ModelBlock::prefix(const ModelRef& m) const { return models.size() > 1 ? m.label + "/" : ""; }

void ModelBlock::add_params(json& params) const {
  params["precision"] = precision;
  if (models.size() == 1) {
    const ModelRef& m = models.front();
    params["model"] = m.name;
    params["model_sha256"] = m.sha256;
    params["n_layer"] = m.n_layer;
    params["n_head"] = m.n_head;
    return;
  }
  std::vector<std::string> name, sha, nl, nh;
  for (const auto& m : models) {
    name.push_back(m.name);
    sha.push_back(m.sha256);
    nl.push_back(std::to_string(m.n_layer));
    nh.push_back(std::to_string(m.n_head));
  }
  params["model"] = join_commas(name);
  params["model_sha256"] = join_commas(sha);
  params["n_layer"] = join_commas(nl);
  params["n_head"] = join_commas(nh);
}

ModelBlock read_models(ParamReader& p, const std::string& experiment, bool allow_many) {
  ModelBlock b;
  const std::string model = p.str("model", "gpt2");
  const auto names = split_commas(model);
  if (names.size() == 1) {
    // One model: plain params, read exactly as single-model plans always did.
    ModelRef m;
    m.name = model;
    m.sha256 = p.str("model_sha256", "");
    const auto* known = known_model(model);
    m.n_layer = static_cast<int>(p.integer("n_layer", known ? known->n_layer : 0, 0, 4096));
    m.n_head = static_cast<int>(p.integer("n_head", known ? known->n_head : 0, 0, 4096));
    m.n_ctx = static_cast<int>(p.integer("n_ctx", known ? known->n_ctx : 0, 0, 100000000));
    m.label = p.str("model_label", "");
    b.models.push_back(std::move(m));
  } else {
    if (!allow_many)
      throw PlanError(experiment + ": takes one model; param model lists " + std::to_string(names.size()) + " (" +
                      model + ")");
    const auto shas = list_param(p, "model_sha256", names.size(), experiment);
    const auto layers = list_param(p, "n_layer", names.size(), experiment);
    const auto heads = list_param(p, "n_head", names.size(), experiment);
    const auto ctxs = list_param(p, "n_ctx", names.size(), experiment);
    const auto labels = list_param(p, "model_label", names.size(), experiment);
    for (size_t i = 0; i < names.size(); ++i) {
      ModelRef m;
      m.name = names[i];
      m.sha256 = shas[i];
      const auto* known = known_model(m.name);
      m.n_layer = static_cast<int>(dim_entry("n_layer", layers[i], known ? known->n_layer : 0));
      m.n_head = static_cast<int>(dim_entry("n_head", heads[i], known ? known->n_head : 0));
      m.n_ctx = static_cast<int>(dim_entry("n_ctx", ctxs[i], known ? known->n_ctx : 0, 100000000));
      m.label = labels[i];
      b.models.push_back(std::move(m));
    }
  }
  b.precision = p.str("precision", "fp32");
  std::set<std::string> seen_names;
  std::map<std::string, std::string> seen_labels;
  for (auto& m : b.models) {
    validate(m, experiment);
    check_sha(m.sha256, experiment);
    if (const auto* known = known_model(m.name); known && m.n_ctx == 0) m.n_ctx = known->n_ctx;
    // An uploaded model (sha256:<hex>) keeps the name it was submitted under
    // (param model_label, set by the client) in job and file names.
    m.label = model_label(m.label.empty() ? m.name : m.label);
    if (!seen_names.insert(m.name).second) throw PlanError(experiment + ": model '" + m.name + "' is listed twice");
    const auto [it, fresh] = seen_labels.emplace(m.label, m.name);
    if (!fresh)
      throw PlanError(experiment + ": models '" + it->second + "' and '" + m.name + "' share the label '" + m.label +
                      "' (their job and file names would collide)");
  }
  if (b.precision != "fp32" && b.precision != "tf32" && b.precision != "bf16")
    throw PlanError(experiment + ": precision must be fp32, tf32 or bf16 (got '" + b.precision + "')");
  return b;
}

json DataBlock::data_json() const {
  json d = {{"dataset", dataset}, {"max_tokens", max_tokens}, {"chunk_len", chunk_len}, {"bos", bos}};
  if (!dataset_sha256.empty()) d["dataset_sha256"] = dataset_sha256;
  if (split != "valid") d["split"] = split;
  return d;
}

DataBlock read_data(ParamReader& p, const std::string& experiment, const DataDefaults& defaults) {
  DataBlock d;
  d.dataset = p.str("dataset", defaults.dataset);
  d.dataset_sha256 = p.str("dataset_sha256", "");
  d.split = defaults.split;
  d.max_tokens = p.integer("max_tokens", defaults.max_tokens, 2, 1000000000);
  d.chunk_len = p.integer("chunk_len", defaults.chunk_len, 2, 1000000);
  d.bos = p.integer("bos", 0, 0, 1);
  check_sha(d.dataset_sha256, experiment);
  return d;
}

int64_t t_chunk_count(int64_t n, int64_t len) { return n > len ? (n - len + len - 1) / len : 0; }

std::string ChunkRange::name() const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "c%03lld-%03lld", static_cast<long long>(begin), static_cast<long long>(end));
  return buf;
}

std::vector<ChunkRange> chunk_ranges(int64_t n_chunks, int64_t per_unit) {
  if (per_unit < 1) throw std::invalid_argument("chunk_ranges: per_unit must be >= 1");
  std::vector<ChunkRange> out;
  for (int64_t c = 0; c < n_chunks; c += per_unit) out.push_back({c, std::min(n_chunks, c + per_unit)});
  return out;
}

JobSpec& Builder::add(const std::string& name, const std::string& kind, json params, std::vector<std::string> deps,
                      bool reduce) {
  if (!names.insert(name).second) throw std::logic_error("plan bug: duplicate job " + name);
  count_job();  // the submission's job budget (plans.h)
  JobSpec j;
  j.name = name;
  j.kind = kind;
  j.params = std::move(params);
  j.deps = std::move(deps);
  j.model = model;
  j.reduce = reduce;
  // Model jobs load the model; reduces only read their inputs.
  if (!model.empty() && !reduce) j.mem_bytes = job_mem_bytes(j.params);
  plan.jobs.push_back(std::move(j));
  return plan.jobs.back();
}

std::vector<std::string> Builder::present(std::initializer_list<std::string> deps) const {
  std::vector<std::string> out;
  for (const auto& d : deps)
    if (has(d)) out.push_back(d);
  return out;
}

Footprint model_footprint(const std::string& model, int n_layer, int n_head, const std::string& precision,
                          int64_t tokens) {
  const auto* k = known_model(model);
  const int64_t L = n_layer, H = n_head, d = k && k->d_model > 0 ? k->d_model : 64 * int64_t{n_head};
  const int64_t V = k ? k->vocab : 50257, P = k ? k->n_ctx : 1024;
  const int64_t T = std::clamp<int64_t>(tokens > 0 ? tokens : P, 1, P);
  const int64_t matrices = L * 12 * d * d + V * d;  // block matrices + the unembedding copy
  const int64_t rest = V * d + P * d + L * 13 * d + 2 * d;
  Footprint f;
  f.weights = matrices * (precision == "bf16" ? 2 : 4) + rest * 4;
  f.activations = 4 * T * (16 * d + 3 * H * T + V);
  f.overhead = int64_t{512} << 20;
  return f;
}

int64_t job_mem_bytes(const json& params) {
  if (!params.is_object()) return 0;
  const auto model = params.find("model");
  const auto nl = params.find("n_layer");
  const auto nh = params.find("n_head");
  if (model == params.end() || !model->is_string() || model->get<std::string>().empty() || nl == params.end() ||
      !nl->is_number_integer() || nh == params.end() || !nh->is_number_integer())
    return 0;
  const auto cl = params.find("chunk_len");
  const int64_t tokens = cl != params.end() && cl->is_number_integer() ? cl->get<int64_t>() : 0;
  return model_footprint(model->get<std::string>(), nl->get<int>(), nh->get<int>(),
                         params.value("precision", std::string("fp32")), tokens)
      .total();
}

json with(json base, const json& extra) {
  for (auto it = extra.begin(); it != extra.end(); ++it) base[it.key()] = it.value();
  return base;
}

std::string normalise_parts(const std::string& exp, std::string parts, const std::string& known,
                            const std::string& def) {
  if (parts.empty()) parts = def;
  if (parts == "all") parts = known;
  std::set<char> want;
  for (char c : parts) {
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (l == ',' || l == ' ') continue;
    if (known.find(l) == std::string::npos)
      throw PlanError(exp + ": unknown part '" + c + "' (parts are letters of \"" + known + "\", or \"all\")");
    want.insert(l);
  }
  std::string out;
  for (char c : known)
    if (want.count(c)) out += c;
  return out;
}

}  // namespace spt::plan
