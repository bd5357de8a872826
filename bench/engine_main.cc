// spt-engine: the GPT-2 engine from the command line, without the runner.
//
//   spt-engine forward    --model M (--text FILE | --prompt STR) [--top 5] [--cache h1,h2] [--bos]
//   spt-engine ppl        --model M (--text FILE | --tokens FILE | --wikitext PATH [--split valid]) [--chunker V|T]
//                         [--chunk-len 1024] [--max-tokens N] [--bos]
//   spt-engine ablate     same data options + [--heads all|L0H8,L3H1] [--op zero|mean|relu|l1|identity] [--unfused]
//   spt-engine make-model --out DIR [--preset tiny|gpt2|gpt2-medium] [--layers N --heads N --d-model N
//                         --d-mlp N --n-ctx N --vocab N --dtype F32|F16|BF16 --legacy-keys --attn-bias --seed N]
//   spt-engine generate   --model M [--prompt-len 64] [--new 64] [--relu-heads 30] [--runs 1]
//   spt-engine bench      see engine_bench.cc
// Common: --device cpu|cuda|cuda:N|mps  --precision fp32|tf32|bf16  --threads N  --no-processing
//         --memory-mb N  --fast-attention  --json (JSON only)
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine_cli.h"
#include "model/testmodel.h"
#include "model/tokenizer.h"
#include "model/wikitext.h"
#include "spt/gpt2_hooks.h"
#include "spt/hash.h"
#include "spt/util.h"
#include "spt/version.h"

using nlohmann::json;
namespace gpt2 = spt::gpt2;

namespace spt::engine_cli {
namespace {

const std::set<std::string> kFlags = {"bos",         "json",       "no-processing", "unfused", "legacy-keys",
                                      "attn-bias",   "fast-attention", "exp10a",    "quick",   "no-fused-compare"};

json model_json(const gpt2::Model& m) {
  const auto& i = m.info();
  const auto& c = i.config;
  return {{"name", i.name},
          {"dir", i.dir},
          {"sha256", i.sha256},
          {"dtype_on_disk", i.dtype_on_disk},
          {"config",
           {{"n_layer", c.n_layer}, {"n_head", c.n_head}, {"d_model", c.d_model}, {"d_head", c.d_head},
            {"d_mlp", c.d_mlp}, {"n_ctx", c.n_ctx}, {"vocab", c.vocab}}},
          {"device", gpt2::device_description(m.options().device)},
          {"precision", gpt2::to_string(m.options().precision)},
          {"torch", gpt2::torch_version()}};
}

struct Data {
  std::vector<int32_t> tokens;
  std::string source, data_sha256, tokenizer_sha256;
};

Data load_data(Args& a, const std::string& model_dir) {
  const Tokenizer tok = Tokenizer::default_gpt2(model_dir);
  const bool bos = a.flag("bos");
  Data d;
  d.tokenizer_sha256 = tok.sha256();
  if (a.has("wikitext")) {
    const auto ts = data::load_wikitext(a.str("wikitext"), a.str("split", "valid"), tok, bos);
    d.tokens = ts.tokens;
    d.source = ts.source;
    d.data_sha256 = ts.data_sha256;
    return d;
  }
  if (a.has("tokens")) {  // token ids as given: whitespace-separated integers, no tokenizer
    d.source = a.str("tokens");
    const std::string text = spt::read_file(d.source);
    d.data_sha256 = sha256_hex(text);
    if (bos) d.tokens.push_back(tok.eot());
    std::istringstream in(text);
    for (std::string w; in >> w;) {
      size_t n = 0;
      long long id = -1;
      try {
        id = std::stoll(w, &n);
      } catch (const std::exception&) {
      }
      if (n != w.size() || id < 0 || id > INT32_MAX)
        throw std::invalid_argument(d.source + ": '" + w + "' is not a token id (want non-negative integers)");
      d.tokens.push_back(static_cast<int32_t>(id));
    }
    return d;
  }
  std::string text;
  if (a.has("text")) {
    d.source = a.str("text");
    text = spt::read_file(d.source);
  } else if (a.has("prompt")) {
    d.source = "--prompt";
    text = a.str("prompt");
  } else {
    throw std::invalid_argument("give --text FILE, --tokens FILE, --prompt STR or --wikitext PATH");
  }
  d.data_sha256 = sha256_hex(text);
  if (bos) d.tokens.push_back(tok.eot());
  const auto ids = tok.encode(text);
  d.tokens.insert(d.tokens.end(), ids.begin(), ids.end());
  return d;
}

gpt2::Chunks make_chunks(Args& a, const std::vector<int32_t>& tokens, const gpt2::Config& c) {
  const std::string chunker = a.str("chunker", "V");
  const int64_t n = a.integer("chunk-len", std::min(1024, c.n_ctx));
  const int64_t max_tokens = a.integer("max-tokens", -1);
  if (n > c.n_ctx) throw std::invalid_argument("--chunk-len exceeds the model's n_ctx");
  if (chunker == "V") return data::chunk_v(tokens, max_tokens, n);
  if (chunker == "T") return data::chunk_t(tokens, max_tokens, n);
  throw std::invalid_argument("--chunker must be V or T");
}

void emit(bool json_only, const json& j, const std::string& human) {
  if (!json_only) std::cout << human;
  std::cout << j.dump() << std::endl;
}

int cmd_forward(Args& a) {
  const std::string dir = gpt2::resolve_model_dir(a.need("model"));
  const auto opt = load_options(a);
  const int top = static_cast<int>(a.integer("top", 5));
  std::vector<std::string> cache;
  {
    std::stringstream ss(a.str("cache"));
    for (std::string h; std::getline(ss, h, ',');)
      if (!h.empty()) cache.push_back(h);
  }
  const bool json_only = a.flag("json");
  Data d = load_data(a, dir);
  a.finish();
  auto m = gpt2::load_model(dir, opt);
  const auto& c = m->info().config;
  if (d.tokens.empty()) throw std::invalid_argument("no tokens to run");
  if (static_cast<int>(d.tokens.size()) > c.n_ctx) {
    d.tokens.resize(static_cast<size_t>(c.n_ctx));
    std::cerr << "note: truncated to n_ctx = " << c.n_ctx << " tokens\n";
  }
  gpt2::RunOptions ro;
  ro.cache = {cache.begin(), cache.end()};
  const double t0 = monotonic_s();
  const gpt2::RunResult r = gpt2::run(*m, gpt2::tokens_tensor(d.tokens), ro);
  const double secs = monotonic_s() - t0;
  const at::Tensor lp = at::log_softmax(r.logits[0], -1).to(at::kCPU);  // [T, vocab]
  const int64_t T = lp.size(0);
  double nll = 0;
  for (int64_t t = 1; t < T; ++t) nll -= lp[t - 1][d.tokens[static_cast<size_t>(t)]].item<double>();
  const Tokenizer tok = Tokenizer::default_gpt2(dir);
  const auto topk = lp[T - 1].topk(std::min<int64_t>(top, c.vocab));
  json preds = json::array();
  std::ostringstream h;
  h << "model " << m->info().name << " (" << m->info().sha256.substr(0, 12) << ", " << c.n_layer << " layers) on "
    << gpt2::device_description(opt.device) << ", " << gpt2::to_string(opt.precision) << "\n";
  h << T << " tokens";
  if (T > 1) h << ", mean NLL " << nll / (T - 1) << ", PPL " << std::exp(nll / (T - 1));
  h << ", " << secs * 1e3 << " ms\nnext token after the last position:\n";
  for (int64_t i = 0; i < std::get<1>(topk).size(0); ++i) {
    const int id = static_cast<int>(std::get<1>(topk)[i].item<int64_t>());
    const double p = std::exp(std::get<0>(topk)[i].item<double>());
    const std::string s = id < static_cast<int>(tok.vocab_size()) ? tok.token_str(id) : "?";
    preds.push_back({{"id", id}, {"token", s}, {"prob", p}});
    char line[256];
    std::snprintf(line, sizeof line, "  %6d  %8.5f  %s\n", id, p, json(s).dump().c_str());
    h << line;
  }
  json caches = json::object();
  for (const auto& [name, t] : r.cache) {
    caches[name] = {{"shape", t.sizes().vec()}, {"norm_last", t.select(1, t.size(1) - 1).norm().item<double>()}};
    h << "  " << name << " " << t.sizes() << "  |last| = " << caches[name]["norm_last"].get<double>() << "\n";
  }
  emit(json_only,
       {{"command", "forward"}, {"model", model_json(*m)}, {"tokens", T}, {"source", d.source},
        {"data_sha256", d.data_sha256}, {"tokenizer_sha256", d.tokenizer_sha256},
        {"mean_nll", T > 1 ? nll / (T - 1) : 0.0}, {"top", preds}, {"cache", caches}, {"seconds", secs}},
       h.str());
  return 0;
}

int cmd_ppl(Args& a) {
  const std::string dir = gpt2::resolve_model_dir(a.need("model"));
  const auto opt = load_options(a);
  const bool json_only = a.flag("json");
  const Data d = load_data(a, dir);
  auto m = gpt2::load_model(dir, opt);
  const gpt2::Chunks chunks = make_chunks(a, d.tokens, m->info().config);
  a.finish();
  if (chunks.empty()) throw std::invalid_argument("no chunks: too few tokens for the chunk length");
  const double t0 = monotonic_s();
  const gpt2::NllSum s = m->nll(chunks, {});
  const double secs = monotonic_s() - t0;
  int64_t ntok = 0;
  for (const auto& c : chunks) ntok += static_cast<int64_t>(c.size());
  std::ostringstream h;
  h << chunks.size() << " chunks, " << s.count << " predicted tokens, PPL " << s.ppl() << " (" << secs << " s, "
    << ntok / secs << " tokens/s)\n";
  emit(json_only,
       {{"command", "ppl"}, {"model", model_json(*m)}, {"source", d.source}, {"data_sha256", d.data_sha256},
        {"tokenizer_sha256", d.tokenizer_sha256}, {"stream_tokens", d.tokens.size()}, {"chunks", chunks.size()},
        {"predicted", s.count}, {"nll", s.nll}, {"ppl", s.ppl()}, {"seconds", secs}},
       h.str());
  return 0;
}

std::vector<std::pair<int, int>> parse_heads(const std::string& s, const gpt2::Config& c) {
  std::vector<std::pair<int, int>> out;
  if (s.empty() || s == "all") {
    for (int l = 0; l < c.n_layer; ++l)
      for (int h = 0; h < c.n_head; ++h) out.push_back({l, h});
    return out;
  }
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    int l = -1, h = -1;
    if (std::sscanf(item.c_str(), "L%dH%d", &l, &h) != 2 || l < 0 || h < 0 || l >= c.n_layer || h >= c.n_head)
      throw std::invalid_argument("bad head '" + item + "' (expected LxHy within the model)");
    out.push_back({l, h});
  }
  return out;
}

int cmd_ablate(Args& a) {
  const std::string dir = gpt2::resolve_model_dir(a.need("model"));
  const auto opt = load_options(a);
  const bool json_only = a.flag("json");
  const bool unfused = a.flag("unfused");
  const gpt2::HeadOp op = gpt2::parse_head_op(a.str("op", "zero"));
  const std::string heads_arg = a.str("heads", "all");
  const Data d = load_data(a, dir);
  auto m = gpt2::load_model(dir, opt);
  const auto& c = m->info().config;
  const gpt2::Chunks chunks = make_chunks(a, d.tokens, c);
  a.finish();
  if (chunks.empty()) throw std::invalid_argument("no chunks: too few tokens for the chunk length");
  const auto heads = parse_heads(heads_arg, c);

  const double t0 = monotonic_s();
  gpt2::Model::HeadSums sums;
  if (op == gpt2::HeadOp::mean) sums = m->head_z_sums(chunks);
  std::vector<gpt2::Variant> vs(1);  // baseline first
  for (const auto& [l, h] : heads) {
    gpt2::HeadIntervention hi{l, h, op};
    if (op == gpt2::HeadOp::mean) hi.values = sums.mean(l, h, c);
    vs.push_back({{hi}});
  }
  std::vector<gpt2::NllSum> res;
  if (unfused)
    for (const auto& v : vs) res.push_back(m->nll(chunks, v));
  else
    res = m->nll_many(chunks, vs);
  const double secs = monotonic_s() - t0;
  const double base = res[0].ppl();
  std::ostringstream h;
  h << "baseline PPL " << base << " over " << chunks.size() << " chunks\n";
  json rows = json::array();
  for (size_t i = 1; i < vs.size(); ++i) {
    const double p = res[i].ppl();
    const double dp = (p - base) / base;
    rows.push_back({{"layer", heads[i - 1].first}, {"head", heads[i - 1].second}, {"ppl", p}, {"delta_ppl", dp}});
    char line[128];
    std::snprintf(line, sizeof line, "  L%dH%-3d PPL %10.4f  dPPL %+9.4f%%\n", heads[i - 1].first, heads[i - 1].second,
                  p, 100 * dp);
    h << line;
  }
  const int64_t ntok = static_cast<int64_t>(chunks.size() * chunks[0].size() * vs.size());
  h << vs.size() << " evaluations in " << secs << " s (" << (unfused ? "unfused" : "fused") << ", " << ntok / secs
    << " forward tokens/s)\n";
  emit(json_only,
       {{"command", "ablate"}, {"op", gpt2::to_string(op)}, {"model", model_json(*m)}, {"data_sha256", d.data_sha256},
        {"baseline_ppl", base}, {"results", rows}, {"seconds", secs}, {"fused", !unfused}},
       h.str());
  return 0;
}

int cmd_make_model(Args& a) {
  gpt2::TestModelSpec s;
  const std::string preset = a.str("preset", "tiny");
  if (preset == "gpt2") s.n_layer = 12, s.n_head = 12, s.d_model = 768, s.n_ctx = 1024;
  else if (preset == "gpt2-medium") s.n_layer = 24, s.n_head = 16, s.d_model = 1024, s.n_ctx = 1024;
  else if (preset != "tiny") throw std::invalid_argument("--preset must be tiny, gpt2 or gpt2-medium");
  const std::string out = a.need("out");
  s.n_layer = static_cast<int>(a.integer("layers", s.n_layer));
  s.n_head = static_cast<int>(a.integer("heads", s.n_head));
  s.d_model = static_cast<int>(a.integer("d-model", s.d_model));
  s.d_mlp = static_cast<int>(a.integer("d-mlp", s.d_mlp));
  s.n_ctx = static_cast<int>(a.integer("n-ctx", s.n_ctx));
  s.vocab = static_cast<int>(a.integer("vocab", s.vocab));
  s.seed = static_cast<uint64_t>(a.integer("seed", 0));
  s.dtype = a.str("dtype", "F32");
  s.prefixed = !a.flag("legacy-keys");
  s.attn_bias_buffers = a.flag("attn-bias");
  const bool json_only = a.flag("json");
  a.finish();
  gpt2::write_test_model(out, s);
  // A model folder should be usable anywhere, so it carries the GPT-2
  // tokenizer as Hugging Face names it (same bytes as encoder.json/vocab.bpe).
  const std::string tok_dir = Tokenizer::default_gpt2_dir();
  std::string tok_note = "; no GPT-2 tokenizer files found to copy (set SPT_TOKENIZER_DIR)";
  if (!tok_dir.empty()) {
    namespace fs = std::filesystem;
    const fs::path d(tok_dir);
    const bool hf = fs::exists(d / "vocab.json");
    fs::copy_file(d / (hf ? "vocab.json" : "encoder.json"), fs::path(out) / "vocab.json",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(d / (hf ? "merges.txt" : "vocab.bpe"), fs::path(out) / "merges.txt",
                  fs::copy_options::overwrite_existing);
    tok_note = ", vocab.json and merges.txt";
  }
  emit(json_only,
       {{"command", "make-model"}, {"out", out}, {"n_layer", s.n_layer}, {"n_head", s.n_head},
        {"d_model", s.d_model}, {"vocab", s.vocab}, {"dtype", s.dtype}, {"seed", s.seed},
        {"sha256", sha256_file(out + "/model.safetensors")}},
       "wrote " + out + "/config.json, model.safetensors" + tok_note + "\n");
  return 0;
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Greedy generation speed (spec §10.4 P1): baseline and ReLU on the first N
// heads of layers ≥ 1 (layer-major), full recompute vs KV cache, on a random
// prompt. Every step copies the logits to the host, so the wall clock
// includes device synchronisation.
int cmd_generate(Args& a) {
  const std::string dir = gpt2::resolve_model_dir(a.need("model"));
  const auto opt = load_options(a);
  const int plen = static_cast<int>(a.integer("prompt-len", 64));
  const int nnew = static_cast<int>(a.integer("new", 64));
  const int nrelu = static_cast<int>(a.integer("relu-heads", 30));
  const int runs = static_cast<int>(a.integer("runs", 1));
  const bool json_only = a.flag("json");
  a.finish();
  auto m = gpt2::load_model(dir, opt);
  const auto& c = m->info().config;
  std::vector<int32_t> prompt;
  uint64_t x = 12345;
  for (int i = 0; i < plen; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    prompt.push_back(static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(c.vocab)));
  }
  gpt2::Variant relu;
  for (int l = std::min(1, c.n_layer - 1); l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head && static_cast<int>(relu.ops.size()) < nrelu; ++h)
      relu.ops.push_back({l, h, gpt2::HeadOp::attn_relu, -1, 1.0f, {}});
  const std::vector<std::pair<std::string, gpt2::Variant>> conds = {
      {"baseline", {}}, {"relu_" + std::to_string(relu.ops.size()), relu}};
  {  // warm-up
    gpt2::GenerateOptions w;
    w.max_new_tokens = std::min(4, nnew);
    gpt2::generate(*m, prompt, {}, w);
    w.kv_cache = true;
    gpt2::generate(*m, prompt, relu, w);
  }
  json rows = json::array();
  std::ostringstream h;
  h << "greedy generation, " << plen << "-token prompt + " << nnew << " new tokens, " << runs << " run(s), "
    << gpt2::device_description(opt.device) << ", " << gpt2::to_string(opt.precision) << "\n";
  for (const auto& [name, v] : conds) {
    std::vector<int32_t> toks[2];
    double tps[2];
    for (int kv = 0; kv < 2; ++kv) {
      gpt2::GenerateOptions o;
      o.max_new_tokens = nnew;
      o.kv_cache = kv == 1;
      const double t0 = wall_seconds();
      for (int r = 0; r < runs; ++r) toks[kv] = gpt2::generate(*m, prompt, v, o).tokens;
      tps[kv] = static_cast<double>(nnew) * runs / (wall_seconds() - t0);
    }
    const bool same = toks[0] == toks[1];
    char line[200];
    std::snprintf(line, sizeof line, "  %-10s full %9.1f tok/s   kv %9.1f tok/s   (x%.1f)   same tokens: %s\n",
                  name.c_str(), tps[0], tps[1], tps[1] / tps[0], same ? "yes" : "NO");
    h << line;
    rows.push_back({{"condition", name}, {"full_tokens_per_s", tps[0]}, {"kv_tokens_per_s", tps[1]},
                    {"same_tokens", same}});
  }
  emit(json_only,
       {{"command", "generate"}, {"model", model_json(*m)}, {"prompt_len", plen}, {"new_tokens", nnew},
        {"runs", runs}, {"results", rows}},
       h.str());
  return 0;
}

// Help goes to stdout when asked for (--help), to stderr after a usage error.
void usage(std::ostream& out = std::cerr) {
  out << "usage: spt-engine forward|ppl|ablate|make-model|generate|bench [options]\n"
               "  forward    --model M (--text FILE | --prompt STR) [--top K] [--cache hook,...] [--bos]\n"
               "  ppl        --model M (--text FILE | --tokens FILE | --wikitext PATH [--split valid|test])\n"
               "             [--chunker V|T] (--tokens: whitespace-separated token ids)\n"
               "             [--chunk-len N] [--max-tokens N] [--bos]\n"
               "  ablate     as ppl, plus [--heads all|L0H8,...] [--op zero|mean|relu|l1|identity] [--unfused]\n"
               "  make-model --out DIR [--preset tiny|gpt2|gpt2-medium] [--layers N] [--heads N] [--d-model N]\n"
               "             [--d-mlp N] [--n-ctx N] [--vocab N] [--dtype F32|F16|BF16] [--legacy-keys]\n"
               "             [--attn-bias] [--seed N]\n"
               "  generate   --model M [--prompt-len 64] [--new 64] [--relu-heads 30] [--runs 1]\n"
               "             greedy tokens/s, baseline and relu, full recompute vs KV cache\n"
               "  bench      [--seq 1024] [--batch 2] [--ablate-heads 12] [--exp10a] [--unfused] [--quick]\n"
               "             [--preset gpt2] [--model M]\n"
               "common: --device cpu|cuda|cuda:N|mps --precision fp32|tf32|bf16 --threads N --no-processing\n"
               "        --memory-mb N --fast-attention --json\n"
               "models: a folder with config.json + model.safetensors, or gpt2/gpt2-medium/... from the HF cache\n"
               "\nEXAMPLES:\n"
               "  spt-engine make-model --out /tmp/tiny            a tiny random GPT-2 (with tokenizer files)\n"
               "  spt-engine ppl --model gpt2 --wikitext ~/data/wikitext-2-raw\n"
               "  spt-engine ablate --model /tmp/tiny --text tests/data/tiny_wiki.raw --heads L0H1\n"
               "\nENVIRONMENT:\n"
               "  HF_HUB_CACHE, HF_HOME   where hub names (gpt2, ...) are looked up\n"
               "  SPT_TOKENIZER_DIR       GPT-2 tokenizer files (vocab.json, merges.txt), overriding the search\n";
}

}  // namespace
}  // namespace spt::engine_cli

int main(int argc, char** argv) {
  using namespace spt::engine_cli;
  // --help / --version anywhere win over every other argument (git's rule),
  // so `spt-engine ppl --help` shows help instead of wanting a value.
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(std::cout);
      return 0;
    }
    if (a == "--version") {
      std::cout << "spt-engine " << SPT_CODE_VERSION << "\n";
      return 0;
    }
  }
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    Args a(argc, argv, 2, kFlags);
    if (cmd == "forward") return cmd_forward(a);
    if (cmd == "ppl") return cmd_ppl(a);
    if (cmd == "ablate") return cmd_ablate(a);
    if (cmd == "make-model") return cmd_make_model(a);
    if (cmd == "generate") return cmd_generate(a);
    if (cmd == "bench") return bench_main(a);
    usage();
    std::cerr << "unknown command '" << cmd << "'\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "spt-engine " << cmd << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "spt-engine " << cmd << ": " << e.what() << "\n";
    return 1;
  }
}
