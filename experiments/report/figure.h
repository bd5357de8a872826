#pragma once
// Figures as data: a Plot is panels of series on typed axes; render_plot()
// turns it into gnuplot files. Reduces describe what to draw, this library
// owns how (tick formats, units, margins, log axes, missing data), so every
// figure of every family looks and reads the same.
//
// Files, all in one folder, named after Plot::name:
//   NAME.dat (one panel) or NAME_1.dat, NAME_2.dat, ... (one per panel):
//       the values as drawn (after unit scaling; headers say so), NaN where
//       a value was not finite;
//   NAME.gp: one script that draws NAME.png (pngcairo) and NAME.svg (svg);
//       a researcher re-runs `gnuplot NAME.gp` in the folder to redraw both;
//   NAME.png, NAME.svg: when gnuplot ran (see gnuplot.h for how it is found).
//
// Policies (each one reported in PlotResult::notes when it applies):
// - Units: Axis::unit is the only place a unit is chosen. Unit::percent
//   means "the data are fractions"; values are drawn ×100 and the axis title
//   gets " (%)". dppl_axis() is THE ΔPPL axis: every figure shows ΔPPL the
//   same way.
// - Ticks: choose_ticks() picks a 1-2-5 step for about 8 ticks and a fixed
//   number of decimals, so labels are short and distinct; tiny or huge
//   ranges move a power of ten into the axis title ("(×10⁻⁴)"), never into
//   every label. Integer axes (Axis::integer) get integer steps and labels.
//   Log axes tick at decades with '%g' labels.
// - Log axes and values ≤ 0: the axis falls back to linear (nothing is
//   dropped); the panel title says "[linear y: N value(s) ≤ 0]" and a note says
//   which panel and axis.
// - Non-finite values (NaN, ±inf) are written as NaN, which gnuplot skips;
//   their count per panel is a note.
// - A panel without any finite value is drawn as a framed "no data" panel.
// - Text is UTF-8 and drawn literally (terminals are `noenhanced`): "σ",
//   "ΔPPL", "ℓ" render, and "strong_A" is not a subscript. No escaping is
//   needed or done.
// - Ranges are explicit, from every value an axis shows (data, reference
//   lines, annotations) plus a small margin, so points never sit on the
//   frame and lines are never off-panel; Axis::min/max win.
// - Layout: columns default from the panel count; the canvas is sized from
//   the grid and from heatmap dimensions; margins are explicit; long
//   category labels are rotated 45° and the margins grow to fit them; the
//   key sits below the panel, never over data.
//
// Errors: malformed input (x/y of different lengths, lo/hi not matching y,
// ragged heatmap, bad Plot::name, no panels) throws std::invalid_argument.
// A missing or failing gnuplot never throws: data and script are written,
// png/svg are false and a note says why. Failing to write a file into `dir`
// throws (std::runtime_error, std::filesystem::filesystem_error).
// Thread-safety: all functions are reentrant; concurrent render_plot calls
// must write different NAMEs (or folders).
#include <optional>
#include <string>
#include <vector>

#include "report/gnuplot.h"

namespace spt::report {

enum class Scale { linear, log };

// What the numbers on an axis are. The unit decides both the scaling of the
// drawn values and the unit suffix of the axis title.
enum class Unit {
  plain,    // drawn as given; the label carries any unit itself
  percent,  // the data are fractions: drawn ×100, title "LABEL (%)"
};

struct Axis {
  std::string label;  // without the unit suffix, e.g. "ΔPPL", "layer"
  Unit unit = Unit::plain;
  Scale scale = Scale::linear;
  bool integer = false;             // a count or index: integer ticks only
  std::optional<double> min, max;   // in data units (fractions for percent)
};

// The ΔPPL axis every figure uses: fractions in, "ΔPPL (%)" out.
Axis dppl_axis(Scale scale = Scale::linear);
// An integer axis ("heads", "count", "layer").
Axis count_axis(std::string label);
// The axis title as drawn: "ΔPPL (%)", "layer".
std::string axis_title(const Axis& a);

struct Series {
  enum class Style { automatic, line, points, linespoints, dashed, bars, step };
  std::string label;  // legend entry; "" = none
  std::vector<double> x, y;
  Style style = Style::automatic;  // automatic: the panel builder decides
  std::vector<double> lo, hi;      // optional band around y (both or neither)
  std::string color;               // "#rrggbb"; "" = the default cycle
  std::vector<std::string> point_labels;  // optional text beside each point
};

struct Label {
  double x = 0, y = 0;  // data coordinates
  std::string text;
};

struct Panel {
  enum class Kind { xy, bar, heatmap, histogram };
  Kind kind = Kind::xy;
  std::string title;
  Axis x, y;
  Axis z;  // heatmap: the colour axis
  std::vector<Series> series;  // xy; bar (one per group, y only); histogram (made by the builder)
  std::vector<std::string> categories;  // bar: x categories; heatmap: column labels
  std::vector<std::string> row_labels;  // heatmap
  std::vector<std::vector<double>> matrix;  // heatmap: matrix[row][col]
  std::optional<bool> cell_values;  // heatmap: print values in cells (default: ≤ 200 cells)
  double bin_width = 0;             // histogram: box width in data units
  std::vector<double> hlines, vlines;  // dashed reference lines, data units
  std::vector<Label> labels;           // annotations
  std::string key = "below";  // gnuplot `set key` position ("below": never over data); "off" hides it
  std::vector<std::string> notes;      // builder notes, passed on to PlotResult
};

// Builders. Series with Style::automatic become lines (line_panel) or points
// (scatter_panel).
Panel line_panel(std::string title, Axis x, Axis y, std::vector<Series> series);
Panel scatter_panel(std::string title, Axis x, Axis y, std::vector<Series> series);
// Clustered bars: one bar per category per group; groups[i].y[j] is the
// value of category j (x is ignored).
Panel bar_panel(std::string title, std::vector<std::string> categories, std::vector<Series> groups, Axis y,
                std::string x_label = "");
// matrix[r][c] drawn at column c, row r (row 0 on top). rows/cols give the
// axis titles; empty labels: the row/column indices. z: the colour axis;
// both signs → diverging palette, symmetric, white at 0; else sequential.
// NaN cells are grey.
Panel heatmap_panel(std::string title, std::vector<std::vector<double>> matrix, Axis rows, Axis cols, Axis z,
                    std::vector<std::string> row_labels = {}, std::vector<std::string> col_labels = {});
// `bins` equal-width bins over [x.min or the smallest finite value, x.max or
// the largest]; the last bin is closed. Non-finite values are counted in a
// note, values outside an explicit range are counted in another.
Panel histogram_panel(std::string title, const std::vector<double>& values, int bins, Axis x,
                      Axis y = count_axis("count"));

struct Plot {
  std::string name;   // base file name: letters, digits, '_', '-', '.'
  std::string title;  // over all panels; "" = none
  std::vector<Panel> panels;
  int cols = 0;                // 0 = from the panel count
  int width = 0, height = 0;   // pixels; 0 = from the layout
};

struct PlotResult {
  std::vector<File> files;  // .dat files, .gp, then .png and .svg when drawn
  bool png = false, svg = false;
  // Every policy that applied ("panel 2 'zipf': log y axis drawn linear
  // because ..."), and why an image is missing. Notes name the panel, not
  // the plot: callers merging several plots prefix Plot::name.
  std::vector<std::string> notes;
};

PlotResult render_plot(const Plot& plot, const std::string& dir);

// "![alt](png_name)" for a markdown report.
std::string image_md(const std::string& png_name, const std::string& alt);

// ---- pieces exposed for tests and for callers that draw by hand --------

// Tick choice for a linear axis whose shown values (data × unit factor)
// span [lo, hi]. Labels show v / 10^exponent ("label units").
struct TickSpec {
  double step = 1;     // between ticks, in label units
  int decimals = 0;    // printf precision of the labels
  int exponent = 0;    // power of ten moved into the axis title ("×10⁻⁴")
  std::string format;  // gnuplot/printf format of a label, e.g. "%.1f"
};
TickSpec choose_ticks(double lo, double hi, bool integer, int max_ticks = 8);
// The label drawn for shown value v under `t`: tick_label(t, -0.00015) ==
// "-1.5" when t.exponent == -4. Never "-0.0".
std::string tick_label(const TickSpec& t, double v);

// Files a Plot becomes, without running gnuplot.
struct PlotScript {
  std::string script;  // the .gp contents
  std::vector<std::pair<std::string, std::string>> data;  // .dat name → contents
  std::vector<std::string> notes;
  int width = 0, height = 0;
};
PlotScript plot_script(const Plot& plot);

}  // namespace spt::report
