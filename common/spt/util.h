#pragma once
// Small helpers without a better home: clocks, files, canonical JSON.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spt {

int64_t now_unix_ms();
double monotonic_s();

// Whole file as bytes; throws std::runtime_error naming the path.
std::string read_file(const std::string& path);
// Writes via a temporary file and rename, so readers never see half a file.
void write_file_atomic(const std::string& path, const std::string& bytes);

// "a,b,,c" → {"a", "b", "", "c"}; "" → {""}. Multi-model params and
// `--model a,b` are comma lists with empty entries allowed.
std::vector<std::string> split_commas(const std::string& s);

// `s` as one single-quoted word for /bin/sh (tar, curl, gnuplot commands).
std::string shell_quote(const std::string& s);

// JSON with sorted keys and no whitespace: equal documents, equal bytes.
// nlohmann's object type is a std::map, so dump() is already key-sorted.
inline std::string canonical_json(const nlohmann::json& j) { return j.dump(); }

// Python's round(x, digits): the decimal nearest to the exact binary value,
// ties to even. The exp10 family ranks and thresholds rounded values (§2.7).
double round_to(double x, int digits);

}  // namespace spt
