#include "exposition_check.h"

#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

namespace spt::test {

namespace {

bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_name(const std::string& n, bool colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i)
    if (!name_char(n[i], i == 0, colon)) return false;
  return true;
}

bool parse_value(const std::string& s, double* v) {
  if (s == "NaN") return *v = NAN, true;
  if (s == "+Inf" || s == "Inf") return *v = INFINITY, true;
  if (s == "-Inf") return *v = -INFINITY, true;
  if (s.empty()) return false;
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return end && *end == '\0';
}

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// name{l="v",...} value [timestamp]; returns "" or why the line is bad.
std::string parse_sample(const std::string& line, Sample* out) {
  size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0, true)) ++i;
  out->name = line.substr(0, i);
  if (!valid_name(out->name, true)) return "bad metric name";
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t b = i;
      while (i < line.size() && name_char(line[i], i == b, false)) ++i;
      const std::string ln = line.substr(b, i - b);
      if (!valid_name(ln, false) || ln.rfind("__", 0) == 0) return "bad label name '" + ln + "'";
      if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return "label " + ln + " without =\"";
      i += 2;
      std::string v;
      for (;; ++i) {
        if (i >= line.size()) return "unterminated label value";
        if (line[i] == '"') break;
        if (line[i] == '\\') {
          if (++i >= line.size()) return "dangling backslash";
          if (line[i] == 'n') v += '\n';
          else if (line[i] == '\\' || line[i] == '"') v += line[i];
          else return std::string("bad escape \\") + line[i];
        } else {
          v += line[i];
        }
      }
      ++i;  // closing quote
      if (out->labels.count(ln)) return "label " + ln + " twice";
      out->labels[ln] = v;
      if (i < line.size() && line[i] == ',') ++i;
      else if (i < line.size() && line[i] != '}') return "expected , or } after a label";
    }
    if (i >= line.size()) return "unterminated label set";
    ++i;
  }
  if (i >= line.size() || line[i] != ' ') return "no space before the value";
  std::istringstream rest(line.substr(i + 1));
  std::string value, ts, extra;
  rest >> value >> ts >> extra;
  if (!parse_value(value, &out->value)) return "bad value '" + value + "'";
  if (!extra.empty()) return "trailing text";
  return "";
}

std::string key(const std::string& name, const std::map<std::string, std::string>& labels) {
  std::string k = name;
  if (!labels.empty()) {
    k += '{';
    bool first = true;
    for (const auto& [n, v] : labels) {
      k += (first ? "" : ",") + n + "=\"" + v + "\"";
      first = false;
    }
    k += '}';
  }
  return k;
}

// The family a sample belongs to, given the declared types.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suf : {"_bucket", "_sum", "_count"}) {
    const std::string s = suf;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return "";
}

void check_histograms(Exposition& e, const std::vector<Sample>& all) {
  // Per histogram series (labels without le): buckets in order of appearance.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  for (const auto& s : all) {
    const std::string fam = family_of(s.name, e.types);
    if (fam.empty() || e.types[fam] != "histogram" || s.name != fam + "_bucket") continue;
    auto labels = s.labels;
    auto le = labels.find("le");
    double bound = 0;
    if (le == labels.end() || !parse_value(le->second, &bound)) {
      e.errors.push_back(key(s.name, s.labels) + ": bucket without a numeric le");
      continue;
    }
    labels.erase(le);
    buckets[key(fam, labels)].push_back({bound, s.value});
  }
  for (const auto& [series, bs] : buckets) {
    const std::string fam = series.substr(0, series.find('{'));
    const std::string labels = series.size() > fam.size() ? series.substr(fam.size()) : "";
    for (size_t i = 1; i < bs.size(); ++i) {
      if (!(bs[i].first > bs[i - 1].first)) e.errors.push_back(series + ": le not ascending");
      if (bs[i].second < bs[i - 1].second) e.errors.push_back(series + ": bucket counts decrease");
    }
    if (bs.empty() || !std::isinf(bs.back().first)) {
      e.errors.push_back(series + ": no +Inf bucket");
      continue;
    }
    const std::string count = fam + "_count" + labels, sum = fam + "_sum" + labels;
    if (!e.has(count)) e.errors.push_back(series + ": no _count");
    else if (e.value(count) != bs.back().second) e.errors.push_back(series + ": +Inf bucket != _count");
    if (!e.has(sum)) e.errors.push_back(series + ": no _sum");
  }
}

}  // namespace

double Exposition::value(const std::string& series) const {
  auto it = samples.find(series);
  return it == samples.end() ? 0 : it->second;
}

double Exposition::sum(const std::string& name, const std::map<std::string, std::string>& match) const {
  double total = 0;
  for (const auto& [k, v] : samples) {
    if (k.compare(0, name.size(), name) != 0 || (k.size() > name.size() && k[name.size()] != '{')) continue;
    bool ok = true;
    for (const auto& [ln, lv] : match) ok = ok && k.find(ln + "=\"" + lv + "\"") != std::string::npos;
    if (ok) total += v;
  }
  return total;
}

Exposition parse_exposition(const std::string& text) {
  Exposition e;
  std::set<std::string> helped, finished;  // families with HELP; families whose block has ended
  std::string current;                     // family of the block being read
  std::vector<Sample> all;
  std::istringstream in(text);
  std::string line;
  int no = 0;
  auto err = [&](const std::string& why) { e.errors.push_back("line " + std::to_string(no) + ": " + why + ": " + line); };
  auto enter = [&](const std::string& fam) {
    if (fam == current) return;
    if (finished.count(fam)) err("family " + fam + " is not contiguous");
    if (!current.empty()) finished.insert(current);
    current = fam;
  };
  if (!text.empty() && text.back() != '\n') e.errors.push_back("the text does not end with a newline");
  while (std::getline(in, line)) {
    ++no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kw, name, rest;
      ls >> hash >> kw >> name;
      std::getline(ls, rest);
      if (kw != "HELP" && kw != "TYPE") continue;  // a comment
      if (!valid_name(name, true)) {
        err("bad metric name in " + kw);
        continue;
      }
      enter(name);
      if (kw == "HELP") {
        if (!helped.insert(name).second) err("second HELP for " + name);
        for (size_t i = 0; i < rest.size(); ++i)
          if (rest[i] == '\\' && (i + 1 == rest.size() || (rest[i + 1] != '\\' && rest[i + 1] != 'n')))
            err("bad escape in HELP");
          else if (rest[i] == '\\')
            ++i;
      } else {
        const std::string t = rest.empty() ? "" : rest.substr(1);
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.count(t)) err("unknown type '" + t + "'");
        if (e.types.count(name)) err("second TYPE for " + name);
        e.types[name] = t;
      }
      continue;
    }
    Sample s;
    if (std::string why = parse_sample(line, &s); !why.empty()) {
      err(why);
      continue;
    }
    const std::string fam = family_of(s.name, e.types);
    if (fam.empty()) {
      err("sample without a TYPE line before it");
      continue;
    }
    if (!helped.count(fam)) err("family " + fam + " has no HELP");
    enter(fam);
    const std::string k = key(s.name, s.labels);
    if (e.samples.count(k)) err("series twice");
    e.samples[k] = s.value;
    all.push_back(std::move(s));
  }
  check_histograms(e, all);
  return e;
}

}  // namespace spt::test
