#include "platform/canary_unit.h"

#include <filesystem>
#include <stdexcept>

#include "spt/canary.h"
#include "spt/gpt2.h"
#include "spt/hash.h"
#include "testmodel.h"

namespace spt::platform::canary_unit {

namespace {

constexpr int kVocab = 512, kRows = 4, kLen = 48;

// Larger weights than the test models' default (std 0.1, not 0.02) so that
// logits spread over several nats and a wrong kernel moves the NLL far
// beyond round-off.
gpt2::TestModelSpec spec() {
  gpt2::TestModelSpec s;
  s.n_layer = 2;
  s.n_head = 4;
  s.d_model = 64;
  s.n_ctx = 64;
  s.vocab = kVocab;
  s.seed = 20240917;
  s.std = 0.1f;
  s.ln_std = 0.2f;
  s.bias_std = 0.05f;
  return s;
}

}  // namespace

std::vector<std::vector<int32_t>> tokens() {
  std::vector<std::vector<int32_t>> out(kRows);
  for (int c = 0; c < kRows; ++c)
    for (int t = 0; t < kLen; ++t) out[c].push_back(static_cast<int32_t>((31 * t * t + 7 * t + 101 * c + 13) % kVocab));
  return out;
}

std::string write_model(const std::string& dir) {
  gpt2::write_test_model(dir, spec());
  return sha256_file((std::filesystem::path(dir) / "model.safetensors").string());
}

Run run(const std::string& device, const std::string& precision, const std::string& work_dir, int threads) {
  const std::string dir = (std::filesystem::path(work_dir) / canary::kUnit).string();
  const std::string sha = write_model(dir);
  if (sha != canary::reference_weights_sha256())
    throw std::runtime_error(std::string("canary model digest ") + sha + " is not the reference's " +
                             canary::reference_weights_sha256() + " (test-model writer changed?)");
  gpt2::LoadOptions opt;
  opt.device = device;
  opt.precision = gpt2::parse_precision(precision);
  opt.threads = threads;
  auto model = gpt2::load_model(dir, opt);
  const gpt2::NllSum s = model->nll(tokens(), gpt2::Variant{});
  if (s.count <= 0) throw std::runtime_error("canary: no tokens scored");
  Run r;
  r.value = s.nll / static_cast<double>(s.count);
  try {
    r.device = gpt2::device_description(device);
  } catch (const std::exception&) {
    r.device = device;
  }
  return r;
}

}  // namespace spt::platform::canary_unit
