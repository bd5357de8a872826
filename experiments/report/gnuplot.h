#pragma once
// Figures through the gnuplot binary (terminal pngcairo). Every figure is
// written as three kinds of file side by side in one folder, so a researcher
// can restyle it by editing the script and re-running `gnuplot NAME.gp`
// there: the data file(s), NAME.gp, and NAME.png (if gnuplot could run).
//
// The gnuplot binary is $SPT_GNUPLOT if set, else `gnuplot` on $PATH. When
// it is missing or fails, render() still writes data and script, and says
// why the PNG is absent; it never throws for that reason.
#include <string>
#include <utility>
#include <vector>

namespace spt::report {

struct File {
  std::string name;        // file name as presented, e.g. "exp10b_heatmap_gpt2.png"
  std::string path;        // absolute or working-dir-relative local path
  std::string media_type;  // "image/png", "text/plain", ...
};

struct Figure {
  std::string name;   // base name, e.g. "exp10b_heatmap_gpt2"
  int width = 1000, height = 700;
  // The plotting commands. render() prepends the terminal and output lines;
  // data files are referred to by their bare names.
  std::string script;
  std::vector<std::pair<std::string, std::string>> data;  // file name → contents
};

struct Rendered {
  std::vector<File> files;  // data files, the .gp, and the .png when rendered
  bool png = false;
  std::string note;         // why the PNG is missing, if it is
};

// Path of a runnable gnuplot, or "" if none.
std::string find_gnuplot();

// Writes the figure's files into `dir` (created if needed) and renders it.
// Hand-written scripts; new figures use figure.h (PNG + SVG, shared style).
Rendered render(const Figure& fig, const std::string& dir);

// Runs `gnuplot SCRIPT` with `dir` as working directory. Returns "" when
// gnuplot exited 0, else why not (not found; exit status and the tail of its
// output). Does not check what the script wrote.
std::string run_gnuplot(const std::string& dir, const std::string& script_name);

// Quotes `s` as a gnuplot single-quoted string literal.
std::string gp_quote(const std::string& s);

}  // namespace spt::report
