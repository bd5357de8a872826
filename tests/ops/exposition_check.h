#pragma once
// An independent reader of the Prometheus text exposition format (0.0.4),
// written from the format's rules rather than from spt/metrics.h, so tests
// can hold what the endpoints serve against them:
//  - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
//    [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__";
//  - every sample belongs to a family introduced by one # HELP and one
//    # TYPE line, before its samples, and a family's lines are contiguous;
//  - label values are quoted, with only \\ \" \n escapes; values parse as
//    floats (NaN, +Inf, -Inf included); no series appears twice;
//  - histograms: _bucket series with ascending le ending at +Inf, counts
//    non-decreasing, the +Inf bucket equal to _count, and a _sum.
#include <map>
#include <string>
#include <vector>

namespace spt::test {

struct Exposition {
  // series -> value, series written as name{a="x",b="y"} with labels sorted
  // by name and values unescaped.
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::vector<std::string> errors;           // empty = well formed

  // 0 when absent. key: as in `samples`.
  double value(const std::string& series) const;
  bool has(const std::string& series) const { return samples.count(series) > 0; }
  // Sum over every series of `name` whose labels include all of `match`.
  double sum(const std::string& name, const std::map<std::string, std::string>& match = {}) const;
};

Exposition parse_exposition(const std::string& text);

}  // namespace spt::test
