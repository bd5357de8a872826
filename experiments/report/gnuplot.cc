#include "report/gnuplot.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "spt/util.h"

namespace spt::report {

namespace fs = std::filesystem;

namespace {

std::string media_type_of(const std::string& name) {
  auto ends = [&](const char* e) {
    const std::string s(e);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends(".png")) return "image/png";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".csv")) return "text/csv";
  if (ends(".json")) return "application/json";
  if (ends(".md")) return "text/markdown";
  return "text/plain";
}

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

Rendered render(const Figure& fig, const std::string& dir) {
  Rendered out;
  fs::create_directories(dir);
  for (const auto& [name, contents] : fig.data) {
    const std::string p = (fs::path(dir) / name).string();
    write_file_atomic(p, contents);
    out.files.push_back({name, p, media_type_of(name)});
  }
  const std::string png = fig.name + ".png";
  const std::string gp = fig.name + ".gp";
  std::ostringstream script;
  script << "# " << fig.name << ": run `gnuplot " << gp << "` in this folder to redraw " << png << "\n"
         << "set terminal pngcairo enhanced font 'Sans,10' size " << fig.width << "," << fig.height << "\n"
         << "set output " << gp_quote(png) << "\n"
         << fig.script;
  if (fig.script.empty() || fig.script.back() != '\n') script << "\n";
  script << "unset output\n";
  const std::string gp_path = (fs::path(dir) / gp).string();
  write_file_atomic(gp_path, script.str());
  out.files.push_back({gp, gp_path, "text/plain"});

  const std::string why = run_gnuplot(dir, gp);
  const std::string png_path = (fs::path(dir) / png).string();
  std::error_code ec;
  if (!why.empty() || !fs::exists(png_path, ec) || fs::file_size(png_path, ec) == 0) {
    out.note = "figure not rendered: " + (why.empty() ? std::string("gnuplot wrote no PNG") : why);
    fs::remove(png_path, ec);
    return out;
  }
  out.png = true;
  out.files.push_back({png, png_path, "image/png"});
  return out;
}

}  // namespace spt::report
