#include "report/gnuplot.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "spt/util.h"

namespace spt::report {

namespace fs = std::filesystem;

namespace {

bool executable(const std::string& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0; }

}  // namespace

std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "''";
    else
      out += c;
  }
  return out + "'";
}

std::string find_gnuplot() {
  if (const char* env = std::getenv("SPT_GNUPLOT")) return executable(env) ? env : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    const std::string cand = dir + "/gnuplot";
    if (executable(cand)) return cand;
  }
  return "";
}

std::string run_gnuplot(const std::string& dir, const std::string& script_name) {
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) return "gnuplot not found (set SPT_GNUPLOT or install gnuplot)";
  const std::string log = (fs::path(dir) / (script_name + ".log")).string();
  const std::string cmd = "cd " + shell_quote(dir) + " && " + shell_quote(gnuplot) + " " + shell_quote(script_name) +
                          " > " + shell_quote(log) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::string tail;
  try {
    tail = read_file(log);
  } catch (const std::exception&) {
  }
  std::error_code ec;
  fs::remove(log, ec);
  if (rc == 0) return "";
  if (tail.size() > 400) tail = tail.substr(tail.size() - 400);
  return "gnuplot failed (exit " + std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : rc) + ")" +
         (tail.empty() ? "" : ": " + tail);
}

}  // namespace spt::report
