#pragma once
// Markdown building blocks for experiment reports: pipe tables and the
// number formats the original results files use.
#include <string>
#include <vector>

namespace spt::report {

// A GitHub-style pipe table. Cells are escaped ('|' → '\|').
class Table {
 public:
  // align: one of 'l', 'r', 'c' per column; empty = all left.
  explicit Table(std::vector<std::string> header, std::string align = "");
  Table& row(std::vector<std::string> cells);  // must match the header's width
  size_t rows() const { return rows_.size(); }
  std::string str() const;

 private:
  std::vector<std::string> header_;
  std::string align_;
  std::vector<std::vector<std::string>> rows_;
};

// Fixed-point with `digits` decimals ("24.27"); NaN/inf as "n/a".
std::string fixed(double v, int digits);
// A fraction as a signed percentage: pct(0.0108, 2) == "+1.08 %".
std::string pct(double fraction, int digits);
// Thousands separators for counts: 250880 → "250,880".
std::string count(long long v);
// "PASS" / "FAIL".
inline const char* pass_fail(bool ok) { return ok ? "PASS" : "FAIL"; }

}  // namespace spt::report
