#include "exp10/variants.h"

#include <cstring>
#include <set>
#include <stdexcept>

#include "exp10/orders.h"
#include "platform/reduce_context.h"

namespace spt::exp10 {

using nlohmann::json;

namespace {

// Inputs are named relative to the job's scope (multi-model plans).
const json& input_doc(const JobSpec& job, const std::string& name) {
  if (const json* r = platform::find_input(job, name)) return *r;
  throw std::runtime_error("job " + job.name + " needs the result of " + name + " as an input");
}

gpt2::HeadOp op_of(const std::string& op) {
  if (op == "zero") return gpt2::HeadOp::zero;
  if (op == "mean") return gpt2::HeadOp::mean;
  if (op == "relu") return gpt2::HeadOp::attn_relu;
  if (op == "l1") return gpt2::HeadOp::attn_l1;
  if (op == "identity") return gpt2::HeadOp::attn_identity;
  throw std::runtime_error("unknown head operation '" + op + "' (zero, mean, relu, l1, identity)");
}

struct Builder {
  const JobSpec& job;
  int n_layer, n_head;
  bool means_loaded = false;
  HeadMeans means;
  ResolvedVariant out;
  json names = json::array();

  void add(int layer, int head, const std::string& op) {
    if (layer < 0 || layer >= n_layer || head < 0 || head >= n_head)
      throw std::runtime_error("head " + head_name(layer, head) + " is outside the model (" + std::to_string(n_layer) +
                               " layers x " + std::to_string(n_head) + " heads)");
    gpt2::HeadIntervention h;
    h.layer = layer;
    h.head = head;
    h.op = op_of(op);
    if (h.op == gpt2::HeadOp::mean) {
      if (!means_loaded) {
        const auto& p = job.params;
        if (!p.contains("means")) throw std::runtime_error("job " + job.name + " mean-ablates but names no means input");
        means = means_from_json(input_doc(job, p.at("means").get<std::string>()));
        means_loaded = true;
      }
      h.values = means.of(layer, head);
    }
    out.variant.ops.push_back(std::move(h));
    names.push_back(head_name(layer, head) + (op == "zero" ? "" : ":" + op));
  }
};

}  // namespace

ResolvedVariant resolve_variant(const JobSpec& job) {
  const json& p = job.params;
  if (!p.contains("variant")) throw std::runtime_error("job " + job.name + " has no variant");
  const json& v = p.at("variant");
  const std::string type = v.value("type", "");
  Builder b{job, p.value("n_layer", 0), p.value("n_head", 0)};
  json& d = b.out.describe;
  d["type"] = type;

  if (type == "clean") {
  } else if (type == "heads") {
    const std::string op = v.at("op").get<std::string>();
    d["op"] = op;
    for (const auto& h : v.at("heads")) b.add(h.at(0).get<int>(), h.at(1).get<int>(), op);
  } else if (type == "cumulative") {
    const std::string order = v.at("order").get<std::string>();
    const int n = v.at("n").get<int>();
    const std::string op = v.at("op").get<std::string>();
    static const json kNull;
    const bool uses_a = order.rfind("zero", 0) == 0 || order == "harmful_rest";
    const bool uses_e = order == "mean_l0prot" || order == "harmful_rest";
    const bool uses_j = order.rfind("j_", 0) == 0;
    const auto rows = named_order(order, uses_a ? input_doc(job, "a/reduce") : kNull,
                                  uses_e ? input_doc(job, "e/reduce") : kNull,
                                  uses_j ? input_doc(job, "j/reduce") : kNull);
    if (n < 0 || static_cast<size_t>(n) > rows.size())
      throw std::runtime_error("step n=" + std::to_string(n) + " exceeds the " + std::to_string(rows.size()) +
                               " heads of order " + order);
    d["order"] = order;
    d["n"] = n;
    d["op"] = op;
    for (int i = 0; i < n; ++i) {
      const auto& r = rows[static_cast<size_t>(i)];
      const std::string hop = (op == "best" || op == "mixed") ? r.method : op;
      b.add(r.layer, r.head, hop);
    }
    if (op == "best" && !rows.empty()) d["method"] = rows.front().method;
  } else if (type == "harmful_joint") {
    const std::string op = v.at("op").get<std::string>();
    d["op"] = op;
    const auto bad = harmful(read_head_table(input_doc(job, "a/reduce")));
    if (bad.empty()) {  // the original skips the joint tests (spec §10.2)
      b.out.skipped = true;
      b.out.skip_reason = "no harmful heads (no ΔPPL_zero < 0): the joint tests are skipped";
      return b.out;
    }
    for (const auto& r : bad) b.add(r.layer, r.head, op);
  } else if (type == "harmful_first") {
    const auto bad = harmful(read_head_table(input_doc(job, "a/reduce")));
    if (bad.empty()) {  // no joint tests, so no harmful-first curve either
      b.out.skipped = true;
      b.out.skip_reason = "no harmful heads (no ΔPPL_zero < 0): the joint tests are skipped";
      d["n_harmful"] = 0;
      return b.out;
    }
    static const json kNull;
    const auto rest = named_order("harmful_rest", input_doc(job, "a/reduce"), input_doc(job, "e/reduce"), kNull);
    int n = v.at("n").get<int>();
    if (n < 0) n = static_cast<int>(rest.size());
    d["n_harmful"] = bad.size();
    d["n_remaining"] = rest.size();
    if (v.at("n").get<int>() >= 0 && static_cast<size_t>(n) >= rest.size()) {
      b.out.skipped = true;
      b.out.skip_reason = "step " + std::to_string(n) + " is not below the " + std::to_string(rest.size()) +
                          " remaining heads (the final step is h/step/all)";
      d["n_additional"] = n;
      return b.out;
    }
    d["n_additional"] = n;
    d["n_total_ablated"] = static_cast<int>(bad.size()) + n;
    for (const auto& r : bad) b.add(r.layer, r.head, "zero");
    for (int i = 0; i < n; ++i) b.add(rest[static_cast<size_t>(i)].layer, rest[static_cast<size_t>(i)].head, "mean");
  } else if (type == "top_zero" || type == "top_mean") {
    const auto rank = ranking_desc(read_head_table(input_doc(job, "a/reduce")));
    const int r = type == "top_zero" ? v.at("rank").get<int>() : 1;
    if (r < 1 || static_cast<size_t>(r) > rank.size())
      throw std::runtime_error("rank " + std::to_string(r) + " is outside exp10a's ranking of " +
                               std::to_string(rank.size()));
    const auto& row = rank[static_cast<size_t>(r - 1)];
    d["rank"] = r;
    d["layer"] = row.layer;
    d["head"] = row.head;
    b.add(row.layer, row.head, type == "top_zero" ? "zero" : "mean");
  } else {
    throw std::runtime_error("job " + job.name + ": unknown variant type '" + type + "'");
  }
  if (type != "clean") d["heads"] = b.names;
  return b.out;
}

// ---- head means

std::vector<float> HeadMeans::of(int layer, int head) const {
  if (layer < 0 || layer >= n_layer || head < 0 || head >= n_head)
    throw std::out_of_range("head means: no head " + head_name(layer, head));
  const size_t off = (static_cast<size_t>(layer) * n_head + head) * static_cast<size_t>(d_head);
  return {values.begin() + static_cast<long>(off), values.begin() + static_cast<long>(off + d_head)};
}

json means_to_json(const HeadMeans& m, int64_t count) {
  std::string bytes(m.values.size() * 4, '\0');
  for (size_t i = 0; i < m.values.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &m.values[i], 4);
    for (int k = 0; k < 4; ++k) bytes[i * 4 + k] = static_cast<char>((u >> (8 * k)) & 0xff);
  }
  return {{"n_layer", m.n_layer}, {"n_head", m.n_head}, {"d_head", m.d_head},
          {"count", count},       {"encoding", "f32le-base64"}, {"means", base64_encode(bytes)}};
}

HeadMeans means_from_json(const json& j) {
  if (!j.is_object() || !j.contains("means") || j.value("encoding", "") != "f32le-base64")
    throw std::runtime_error("head means: input is not an exp10.means result");
  HeadMeans m;
  m.n_layer = j.at("n_layer").get<int>();
  m.n_head = j.at("n_head").get<int>();
  m.d_head = j.at("d_head").get<int>();
  const std::string bytes = base64_decode(j.at("means").get<std::string>());
  const size_t n = static_cast<size_t>(m.n_layer) * m.n_head * m.d_head;
  if (bytes.size() != n * 4)
    throw std::runtime_error("head means: " + std::to_string(bytes.size()) + " bytes for " + std::to_string(n) +
                             " floats");
  m.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u = 0;
    for (int k = 0; k < 4; ++k) u |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i * 4 + k])) << (8 * k);
    std::memcpy(&m.values[i], &u, 4);
  }
  return m;
}

namespace {
const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 3; k >= 0; --k) out += kB64[(v >> (6 * k)) & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& in) {
  if (in.size() % 4) throw std::runtime_error("base64: length is not a multiple of 4");
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad) throw std::runtime_error("base64: data after padding");
      v[k] = val(c);
      if (v[k] < 0) throw std::runtime_error("base64: bad character");
    }
    const uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((w >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(w & 0xff);
  }
  return out;
}

}  // namespace spt::exp10
