#pragma once
// The gnuplot binary and the pieces the figure library (figure.h) shares:
// the File record of what a reduce writes, finding and running gnuplot,
// quoting. The binary is $SPT_GNUPLOT if set, else `gnuplot` on $PATH.
#include <string>
#include <vector>

namespace spt::report {

struct File {
  std::string name;        // file name as presented, e.g. "exp10b_heatmap_gpt2.png"
  std::string path;        // absolute or working-dir-relative local path
  std::string media_type;  // "image/png", "text/plain", ...
};

// Path of a runnable gnuplot, or "" if none.
std::string find_gnuplot();

// Runs `gnuplot SCRIPT` with `dir` as working directory. Returns "" when
// gnuplot exited 0, else why not (not found; exit status and the tail of its
// output). Does not check what the script wrote.
std::string run_gnuplot(const std::string& dir, const std::string& script_name);

// Quotes `s` as a gnuplot single-quoted string literal.
std::string gp_quote(const std::string& s);

}  // namespace spt::report
