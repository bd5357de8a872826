#include "spt/canary.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace spt::canary {

// From scripts/golden/canary_reference.json (float64 PyTorch forward).
double reference_value() { return 6.617625844331842; }
const char* reference_weights_sha256() { return "8c83ecc0425f61c86cf786f1ab32abf572740cf5a583bba9e75e4e562dfe4f8b"; }

double tolerance(const std::string& precision) {
  if (precision == "fp32") return 2e-4;
  if (precision == "tf32") return 1e-2;
  if (precision == "bf16") return 5e-2;
  throw std::invalid_argument("canary: unknown precision '" + precision + "'");
}

Verdict judge(const std::string& unit, const std::string& precision, double value, const std::string& error) {
  Verdict v;
  v.reference = reference_value();
  if (!error.empty()) {
    v.why = "canary " + precision + " could not run: " + error;
    return v;
  }
  if (unit != kUnit) {
    v.why = "canary unit '" + unit + "' is not " + kUnit + " (worker and coordinator versions differ)";
    return v;
  }
  try {
    v.tolerance = tolerance(precision);
  } catch (const std::invalid_argument& e) {
    v.why = e.what();
    return v;
  }
  if (!std::isfinite(value)) {
    v.why = "canary " + precision + " value is not finite";
    return v;
  }
  v.abs_diff = std::fabs(value - v.reference);
  v.pass = v.abs_diff <= v.tolerance;
  if (!v.pass) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "canary %s drifted: value %.6f vs reference %.6f, |diff| %.3g > tolerance %.3g",
                  precision.c_str(), value, v.reference, v.abs_diff, v.tolerance);
    v.why = buf;
  }
  return v;
}

}  // namespace spt::canary
