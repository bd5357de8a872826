#include "report/markdown.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace spt::report {

namespace {
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    if (c == '\n') {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

Table::Table(std::vector<std::string> header, std::string align)
    : header_(std::move(header)), align_(std::move(align)) {
  if (align_.empty()) align_.assign(header_.size(), 'l');
  if (align_.size() != header_.size()) throw std::invalid_argument("report::Table: align width != header width");
}

Table& Table::row(std::vector<std::string> cells) {
  if (cells.size() != header_.size())
    throw std::invalid_argument("report::Table: row has " + std::to_string(cells.size()) + " cells, header " +
                                std::to_string(header_.size()));
  rows_.push_back(std::move(cells));
  return *this;
}

std::string Table::str() const {
  std::string out = "|";
  for (const auto& h : header_) out += " " + escape(h) + " |";
  out += "\n|";
  for (char a : align_) out += a == 'r' ? "---:|" : (a == 'c' ? ":---:|" : "---|");
  out += "\n";
  for (const auto& r : rows_) {
    out += "|";
    for (const auto& c : r) out += " " + escape(c) + " |";
    out += "\n";
  }
  return out;
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string pct(double fraction, int digits) {
  if (!std::isfinite(fraction)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.*f %%", digits, fraction * 100.0);
  return buf;
}

std::string count(long long v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return v < 0 ? "-" + out : out;
}

}  // namespace spt::report
