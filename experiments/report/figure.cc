#include "report/figure.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "spt/util.h"

namespace spt::report {

namespace fs = std::filesystem;

namespace {

// Paul Tol's "bright" scheme: distinct for colour-blind readers and in print.
const char* const kColors[] = {"#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb"};
constexpr int kNumColors = sizeof(kColors) / sizeof(kColors[0]);
constexpr int kPanelW = 640, kPanelH = 440, kTitleH = 36;
constexpr double kCharPx = 7.0;  // width of one 10 pt character, for layout estimates

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A value for the .dat or the script: NaN (which gnuplot skips) if not finite.
std::string dnum(double v) { return std::isfinite(v) ? fmt("%.12g", v) : "NaN"; }

std::string str_int(long v) { return std::to_string(v); }

// A string for a double-quoted data-file column.
std::string dquote(std::string s) {
  std::replace(s.begin(), s.end(), '"', '\'');
  std::replace(s.begin(), s.end(), '\n', ' ');
  return "\"" + s + "\"";
}

// "⁻¹²" for -12: the exponent of a "×10ⁿ" axis title.
std::string superscript(int n) {
  static const char* const digits[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
  std::string s = n < 0 ? "⁻" : "";
  for (char c : std::to_string(std::abs(n))) s += digits[c - '0'];
  return s;
}

// Smallest 1-2-5 × 10^k that is ≥ raw.
double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

int decimals_for(double step) { return std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9))); }

size_t count_nonfinite(const std::vector<double>& v) {
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [](double d) { return !std::isfinite(d); }));
}

// ---- axes -----------------------------------------------------------------

// One axis as drawn: data × scale are the drawn values.
struct AxisDraw {
  std::string gp;  // gnuplot axis name: "x", "y", "cb"
  Axis axis;
  bool log = false;
  double scale = 1;
  TickSpec ticks;
  double lo = 0, hi = 1;  // drawn range of the values (padded when there is one value only)
  double pad_lo = 0, pad_hi = 0;  // margins beyond lo/hi, fractions of the span
  bool zero_based = false;        // bars stand on 0: no margin below/above 0
  std::string title;
};

double unit_factor(Unit u) { return u == Unit::percent ? 100.0 : 1.0; }

// Decides log/linear, the scale, ticks and title of one axis from the raw
// values it shows. Log axes with values ≤ 0 fall back to linear (see header).
AxisDraw plan_axis(const char* gp, const Axis& a, const std::vector<double>& raw, bool include_zero,
                   const std::string& where, std::string& title_suffix, std::vector<std::string>& notes) {
  AxisDraw d;
  d.gp = gp;
  d.axis = a;
  std::vector<double> v;
  for (double x : raw)
    if (std::isfinite(x)) v.push_back(x);
  if (a.min) v.push_back(*a.min);
  if (a.max) v.push_back(*a.max);
  d.log = a.scale == Scale::log;
  if (d.log) {
    const long bad = std::count_if(v.begin(), v.end(), [](double x) { return x <= 0; });
    if (bad > 0) {
      d.log = false;
      title_suffix += " [linear " + d.gp + ": " + str_int(bad) + " value(s) ≤ 0]";
      notes.push_back(where + ": log " + d.gp + " axis drawn linear because " + str_int(bad) +
                      " value(s) are ≤ 0 (none dropped)");
    }
  }
  if (include_zero && !d.log) v.push_back(0);
  const double f = unit_factor(a.unit);
  double lo = 0, hi = 1;
  if (!v.empty()) {
    lo = *std::min_element(v.begin(), v.end()) * f;
    hi = *std::max_element(v.begin(), v.end()) * f;
  }
  d.zero_based = include_zero;
  if (!v.empty() && lo == hi) {
    const double pad = d.log ? 0 : (lo == 0 ? 1 : std::fabs(lo) * 0.5);
    lo -= pad;
    hi += pad;
  }
  d.title = axis_title(a);
  if (d.log) {
    d.scale = f;
    d.lo = lo;
    d.hi = hi;
    return d;
  }
  d.ticks = choose_ticks(lo, hi, a.integer);
  d.scale = f / std::pow(10.0, d.ticks.exponent);
  d.lo = lo / std::pow(10.0, d.ticks.exponent);
  d.hi = hi / std::pow(10.0, d.ticks.exponent);
  if (d.ticks.exponent != 0) {
    const std::string times = "×10" + superscript(d.ticks.exponent);
    d.title = a.label + " (" + times + (a.unit == Unit::percent ? " %" : "") + ")";
  }
  return d;
}

// Longest tick label on a planned axis, for margins.
size_t tick_label_len(const AxisDraw& d) {
  if (d.log) return 6;
  size_t n = 1;
  const double s = d.ticks.step;
  for (double k = std::floor(d.lo / s); k <= std::ceil(d.hi / s) && n < 40; k += 1)
    n = std::max(n, tick_label(TickSpec{s, d.ticks.decimals, 0, d.ticks.format}, k * s).size());
  return n;
}

// The range is always explicit, computed from every value the axis shows
// (data, reference lines, labels): gnuplot's autoscale would ignore lines
// and labels, and stretch to the next tick. Explicit Axis::min/max win.
std::string range_text(const AxisDraw& d) {
  double lo, hi;
  if (d.log) {
    // Margins in log space; at least two labelled decades.
    double a = std::log10(d.lo), b = std::log10(d.hi);
    const double span = b - a;
    a -= d.pad_lo * span;
    b += d.pad_hi * span;
    if (std::floor(b) - std::ceil(a) < 1) a = std::floor(a), b = std::max(std::ceil(b), a + 1);
    lo = std::pow(10.0, a), hi = std::pow(10.0, b);
  } else {
    const double span = d.hi - d.lo;
    lo = d.zero_based && d.lo == 0 ? 0 : d.lo - d.pad_lo * span;
    hi = d.zero_based && d.hi == 0 ? 0 : d.hi + d.pad_hi * span;
  }
  if (d.axis.min) lo = *d.axis.min * d.scale;
  if (d.axis.max) hi = *d.axis.max * d.scale;
  return dnum(lo) + ":" + dnum(hi);
}

void emit_axis(std::ostream& o, const AxisDraw& d, bool with_ticks = true) {  // label, ticks, range
  const std::string& g = d.gp;
  o << "set " << g << "label " << gp_quote(d.title) << "\n";
  if (d.log) {
    o << "set logscale " << g << " 10\nset format " << g << " '%g'\n";
    const double decades = std::log10(std::max(d.hi, 1e-300)) - std::log10(std::max(d.lo, 1e-300));
    if (decades > 8) o << "set " << g << "tics " << dnum(std::pow(10.0, std::ceil(decades / 8))) << "\n";
  } else if (with_ticks) {
    o << "set " << g << "tics " << dnum(d.ticks.step) << "\nset format " << g << " " << gp_quote(d.ticks.format)
      << "\n";
    if (d.axis.integer) o << "set m" << g << "tics 1\n";
  }
  o << "set " << g << "range [" << range_text(d) << "]\n";
}

// Explicit tick labels for categories; every k-th when they cannot all fit.
std::string category_tics(const std::vector<std::string>& labels, double px_each) {
  const size_t k = std::max<size_t>(1, static_cast<size_t>(std::ceil(14.0 / std::max(px_each, 1.0))));
  std::string s = "(";
  for (size_t i = 0; i < labels.size(); i += k) s += (i ? ", " : "") + gp_quote(labels[i]) + " " + str_int(i);
  return s + ")";
}

size_t max_len(const std::vector<std::string>& v) {
  size_t n = 0;
  for (const auto& s : v) n = std::max(n, s.size());  // bytes: overestimates UTF-8, which is the safe side
  return n;
}

// Margins (characters) that rotated category labels need; -1 = automatic.
struct Margins {
  int bottom = -1, left = 0;
};

// Category x tics, rotated by 45° when they do not fit side by side.
Margins emit_category_x(std::ostream& o, const std::vector<std::string>& cats, int panel_w, bool has_label) {
  const double px_each = (panel_w - 150.0) / std::max<size_t>(1, cats.size());
  const size_t len = max_len(cats);
  o << "set xtics " << category_tics(cats, px_each) << "\n";
  Margins m;
  if ((len + 1) * kCharPx <= px_each) return m;
  o << "set xtics rotate by 45 right\n";
  // A label of n characters at 45° drops about 0.31 n lines and reaches
  // about 0.7 n characters left of its tick; the first tick sits half a
  // category inside the frame.
  m.bottom = static_cast<int>(std::ceil(len * 0.35)) + (has_label ? 3 : 1);
  m.left = static_cast<int>(std::ceil(len * 0.7 - 0.6 * px_each / kCharPx)) + 1;
  return m;
}

// ---- per-panel script --------------------------------------------------

struct Ctx {
  std::string dat;  // this panel's data file name
  std::string where;       // "panel i 'title'", for notes
  std::string title_line;  // "NAME panel i 'title'", for data file headers
  int panel_w = kPanelW, panel_h = kPanelH;
  std::vector<std::string>* notes;
};

std::string color_of(const Series& s, size_t i) { return s.color.empty() ? kColors[i % kNumColors] : s.color; }

std::string style_clause(Series::Style st, const std::string& color, double box_w) {
  const std::string lc = " lc rgb " + gp_quote(color);
  switch (st) {
    case Series::Style::points: return "with points pt 7 ps 0.8" + lc;
    case Series::Style::linespoints: return "with linespoints pt 7 ps 0.6 lw 1.5" + lc;
    case Series::Style::dashed: return "with lines dt 2 lw 2" + lc;
    case Series::Style::bars: return "using 1:2:(" + dnum(box_w) + ") with boxes fs solid 0.7 border -1" + lc;
    case Series::Style::step: return "with steps lw 2" + lc;
    default: return "with lines lw 2" + lc;
  }
}

std::string title_clause(const std::string& label) { return label.empty() ? " notitle" : " title " + gp_quote(label); }

void emit_refs(std::ostream& o, const Panel& p, const AxisDraw& x, const AxisDraw& y) {
  for (double v : p.hlines)
    if (std::isfinite(v))
      o << "set arrow from graph 0, first " << dnum(v * y.scale) << " to graph 1, first " << dnum(v * y.scale)
        << " nohead dt 2 lw 1 lc rgb '#555555' back\n";
  for (double v : p.vlines)
    if (std::isfinite(v))
      o << "set arrow from first " << dnum(v * x.scale) << ", graph 0 to first " << dnum(v * x.scale)
        << ", graph 1 nohead dt 2 lw 1 lc rgb '#555555' back\n";
  for (const auto& l : p.labels)
    if (std::isfinite(l.x) && std::isfinite(l.y))
      o << "set label " << gp_quote(l.text) << " at first " << dnum(l.x * x.scale) << ", first " << dnum(l.y * y.scale)
        << " left offset 0.5,0.5 front\n";
}

void emit_no_data(std::ostream& o, const Panel& p) {
  o << "set title " << gp_quote(p.title) << "\nunset key\nunset xtics\nunset ytics\n"
    << "set xlabel " << gp_quote(axis_title(p.x)) << "\nset ylabel " << gp_quote(axis_title(p.y)) << "\n"
    << "set xrange [0:1]\nset yrange [0:1]\n"
    << "set label 'no data' at graph 0.5, graph 0.5 center font ',14' tc rgb '#888888'\n"
    << "plot -1 notitle\n";
}

void emit_key(std::ostream& o, const Panel& p) {
  if (p.key == "off")
    o << "unset key\n";
  else
    o << "set key " << p.key << " samplen 2" << (p.key == "below" ? " height 1.5" : "") << "\n";  // clear of the x label
}

// Explicit margins: panels of one column line up, and nothing is clipped.
void emit_margins(std::ostream& o, const AxisDraw& y, Margins m = {}) {
  const int l = static_cast<int>(tick_label_len(y)) + (y.title.empty() ? 2 : 4);
  o << "set lmargin " << std::max(l, m.left) << "\nset rmargin 4\n";
  if (m.bottom >= 0) o << "set bmargin " << m.bottom << "\n";
}

// Values of all series on one axis, including reference lines and labels.
std::vector<double> xy_values(const Panel& p, bool x_axis) {
  std::vector<double> v;
  for (const auto& s : p.series) {
    const auto& a = x_axis ? s.x : s.y;
    v.insert(v.end(), a.begin(), a.end());
    if (!x_axis) {
      v.insert(v.end(), s.lo.begin(), s.lo.end());
      v.insert(v.end(), s.hi.begin(), s.hi.end());
    }
  }
  const auto& lines = x_axis ? p.vlines : p.hlines;
  v.insert(v.end(), lines.begin(), lines.end());
  for (const auto& l : p.labels) v.push_back(x_axis ? l.x : l.y);
  return v;
}

size_t finite_points(const Series& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.x.size(); ++i) n += std::isfinite(s.x[i]) && std::isfinite(s.y[i]);
  return n;
}

bool has_point(const Series& s) { return finite_points(s) > 0; }

// A line through one point draws nothing: mark the point instead.
Series::Style visible_style(const Series& s) {
  const bool line = s.style == Series::Style::line || s.style == Series::Style::dashed ||
                    s.style == Series::Style::step || s.style == Series::Style::automatic;
  return line && finite_points(s) == 1 ? Series::Style::linespoints : s.style;
}

void note_nonfinite(const Ctx& c, size_t n) {
  if (n) c.notes->push_back(c.where + ": " + str_int(n) + " non-finite value(s) written as NaN (not drawn)");
}

// Smallest positive gap between drawn x values, for bar widths.
double min_gap(const std::vector<double>& xs) {
  std::vector<double> v;
  for (double x : xs)
    if (std::isfinite(x)) v.push_back(x);
  std::sort(v.begin(), v.end());
  double g = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[i - 1] && (g == 0 || v[i] - v[i - 1] < g)) g = v[i] - v[i - 1];
  return g > 0 ? g : 1;
}

bool has_bars(const Panel& p) {
  return std::any_of(p.series.begin(), p.series.end(), [](const Series& s) { return s.style == Series::Style::bars; });
}

std::string xy_panel(const Panel& p, const Ctx& c, std::string& data) {
  std::ostringstream o;
  std::string suffix;
  size_t bad = 0;
  for (const auto& s : p.series) bad += count_nonfinite(s.x) + count_nonfinite(s.y) + count_nonfinite(s.lo) + count_nonfinite(s.hi);
  note_nonfinite(c, bad);
  const bool any = std::any_of(p.series.begin(), p.series.end(), has_point);
  if (!any) {
    c.notes->push_back(c.where + ": no finite data");
    data = "# " + c.title_line + ": no finite data\n";
    emit_no_data(o, p);
    return o.str();
  }
  AxisDraw x = plan_axis("x", p.x, xy_values(p, true), false, c.where, suffix, *c.notes);
  // Bars stand on 0, so 0 must be in range.
  AxisDraw y = plan_axis("y", p.y, xy_values(p, false), has_bars(p), c.where, suffix, *c.notes);
  // Margins keep points off the frame; point labels sit right of their points.
  const bool labelled =
      std::any_of(p.series.begin(), p.series.end(), [](const Series& s) { return !s.point_labels.empty(); });
  x.pad_lo = 0.04, x.pad_hi = labelled ? 0.12 : 0.04;
  y.pad_lo = y.pad_hi = 0.06;
  o << "set title " << gp_quote(p.title + suffix) << "\n";
  emit_axis(o, x);
  emit_axis(o, y);
  o << "set grid lc rgb '#c8c8c8' dt 3\n";
  emit_margins(o, y);
  emit_key(o, p);
  emit_refs(o, p, x, y);

  std::ostringstream d;
  d << "# " << c.title_line << "\n# values as drawn: x = " << x.title << " (data × " << dnum(x.scale) << "), y = "
    << y.title << " (data × " << dnum(y.scale) << ")\n";
  std::vector<std::string> clauses;
  int block = 0;
  for (size_t i = 0; i < p.series.size(); ++i) {
    const Series& s = p.series[i];
    if (!has_point(s)) {
      c.notes->push_back(c.where + ": series '" + s.label + "' has no finite data");
      continue;
    }
    const bool band = !s.lo.empty();
    const bool labs = !s.point_labels.empty();
    if (block) d << "\n\n";
    d << "# index " << block << ": " << (s.label.empty() ? "(unnamed)" : s.label) << "\n# x y" << (band ? " lo hi" : "")
      << (labs ? " label" : "") << "\n";
    for (size_t j = 0; j < s.x.size(); ++j) {
      d << dnum(s.x[j] * x.scale) << " " << dnum(s.y[j] * y.scale);
      if (band) d << " " << dnum(s.lo[j] * y.scale) << " " << dnum(s.hi[j] * y.scale);
      if (labs) d << " " << dquote(s.point_labels[j]);
      d << "\n";
    }
    const std::string src = gp_quote(c.dat) + " index " + str_int(block);
    const std::string color = color_of(s, i);
    if (band)
      clauses.push_back(src + " using 1:3:4 with filledcurves fc rgb " + gp_quote(color) +
                        " fs transparent solid 0.2 noborder notitle");
    const double box_w = 0.8 * min_gap(s.x) * x.scale;
    const std::string st = style_clause(visible_style(s), color, box_w);
    clauses.push_back(src + (st.rfind("using", 0) == 0 ? " " : " using 1:2 ") + st + title_clause(s.label));
    if (labs)
      clauses.push_back(src + " using 1:2:" + str_int(band ? 5 : 3) + " with labels left offset 0.6,0.4 font ',8' notitle");
    ++block;
  }
  data = d.str();
  o << "plot ";
  for (size_t i = 0; i < clauses.size(); ++i) o << (i ? ", \\\n     " : "") << clauses[i];
  o << "\n";
  return o.str();
}

std::string bar_panel_script(const Panel& p, const Ctx& c, std::string& data) {
  std::ostringstream o;
  std::string suffix;
  std::vector<double> ys;
  size_t bad = 0;
  for (const auto& g : p.series) {
    ys.insert(ys.end(), g.y.begin(), g.y.end());
    bad += count_nonfinite(g.y);
  }
  ys.insert(ys.end(), p.hlines.begin(), p.hlines.end());
  note_nonfinite(c, bad);
  if (p.categories.empty() || ys.size() == bad + p.hlines.size()) {
    c.notes->push_back(c.where + ": no finite data");
    data = "# " + c.title_line + ": no finite data\n";
    emit_no_data(o, p);
    return o.str();
  }
  AxisDraw y = plan_axis("y", p.y, ys, true, c.where, suffix, *c.notes);
  y.pad_lo = y.pad_hi = 0.05;
  AxisDraw x;  // categories: only the scale (1) matters for vlines/labels
  x.gp = "x";
  o << "set title " << gp_quote(p.title + suffix) << "\n";
  if (!p.x.label.empty()) o << "set xlabel " << gp_quote(p.x.label) << "\n";
  emit_axis(o, y);
  Margins m = emit_category_x(o, p.categories, c.panel_w, !p.x.label.empty());
  const bool key_below = p.key == "below" && std::any_of(p.series.begin(), p.series.end(),
                                                         [](const Series& g) { return !g.label.empty(); });
  if (m.bottom >= 0 && key_below) m.bottom += 2;  // an explicit margin must hold the key too
  o << "set xrange [-0.6:" << dnum(p.categories.size() - 0.4) << "]\nset grid ytics lc rgb '#c8c8c8' dt 3\n"
    << "set style fill solid 0.75 border -1\n";
  emit_margins(o, y, m);
  emit_key(o, p);
  emit_refs(o, p, x, y);

  const size_t ng = p.series.size();
  const double w = 0.8 / static_cast<double>(ng);
  std::ostringstream d;
  d << "# " << c.title_line << "\n# values as drawn: y = " << y.title << " (data × " << dnum(y.scale) << ")\n# index";
  for (const auto& g : p.series) d << " " << dquote(g.label);
  d << " category\n";
  for (size_t j = 0; j < p.categories.size(); ++j) {
    d << j;
    for (const auto& g : p.series) d << " " << dnum(g.y[j] * y.scale);
    d << " " << dquote(p.categories[j]) << "\n";
  }
  data = d.str();
  o << "plot ";
  for (size_t g = 0; g < ng; ++g) {
    const double off = (static_cast<double>(g) - (ng - 1) / 2.0) * w;
    o << (g ? ", \\\n     " : "") << gp_quote(c.dat) << " using ($1 + " << dnum(off) << "):" << g + 2 << ":("
      << dnum(w) << ") with boxes lc rgb " << gp_quote(color_of(p.series[g], g)) << title_clause(p.series[g].label);
  }
  o << "\n";
  return o.str();
}

std::string histogram_script(const Panel& p, const Ctx& c, std::string& data) {
  std::ostringstream o;
  std::string suffix;
  if (p.series.empty() || !has_point(p.series[0])) {
    c.notes->push_back(c.where + ": no finite data");
    data = "# " + c.title_line + ": no finite data\n";
    emit_no_data(o, p);
    return o.str();
  }
  const Series& s = p.series[0];
  std::vector<double> xs;
  for (double v : s.x) {
    xs.push_back(v - p.bin_width / 2);
    xs.push_back(v + p.bin_width / 2);
  }
  xs.insert(xs.end(), p.vlines.begin(), p.vlines.end());
  Axis xa = p.x;
  if (xa.scale == Scale::log) {
    xa.scale = Scale::linear;  // bins are equal-width in data units
    suffix += " [linear x: histogram bins are linear]";
    c.notes->push_back(c.where + ": log x axis drawn linear (histogram bins are linear)");
  }
  AxisDraw x = plan_axis("x", xa, xs, false, c.where, suffix, *c.notes);
  std::vector<double> ys = s.y;
  ys.insert(ys.end(), p.hlines.begin(), p.hlines.end());
  AxisDraw y = plan_axis("y", p.y, ys, true, c.where, suffix, *c.notes);
  x.pad_lo = x.pad_hi = 0.02;
  y.pad_lo = y.pad_hi = 0.05;
  o << "set title " << gp_quote(p.title + suffix) << "\n";
  emit_axis(o, x);
  emit_axis(o, y);
  o << "set grid ytics lc rgb '#c8c8c8' dt 3\nset style fill solid 0.7 border -1\n";
  emit_margins(o, y);
  emit_key(o, p);
  emit_refs(o, p, x, y);
  std::ostringstream d;
  d << "# " << c.title_line << "\n# values as drawn: x = " << x.title << " (data × " << dnum(x.scale)
    << "), y = " << y.title << "\n# bin_center count bin_lo bin_hi\n";
  const double w = p.bin_width * x.scale;
  for (size_t i = 0; i < s.x.size(); ++i)
    d << dnum(s.x[i] * x.scale) << " " << dnum(s.y[i] * y.scale) << " " << dnum(s.x[i] * x.scale - w / 2) << " "
      << dnum(s.x[i] * x.scale + w / 2) << "\n";
  data = d.str();
  o << "plot " << gp_quote(c.dat) << " using 1:2:(" << dnum(w) << ") with boxes lc rgb "
    << gp_quote(color_of(s, 0)) << title_clause(s.label) << "\n";
  return o.str();
}

// Heatmap tics: the labels if given, else integer indices.
void emit_heat_axis(std::ostream& o, const char* g, const std::string& title, const std::vector<std::string>& labels,
                    size_t n, double px_each) {
  o << "set " << g << "label " << gp_quote(title) << "\n";
  if (!labels.empty()) {
    o << "set " << g << "tics " << category_tics(labels, px_each) << "\n";
  } else {
    const TickSpec t = choose_ticks(0, static_cast<double>(n) - 1, true);
    o << "set " << g << "tics 0, " << dnum(t.step) << "\nset format " << g << " '%.0f'\n";
  }
}

// A gnuplot expression for a cell label's colour: white on the darkest
// 40% of the palette, black elsewhere.
std::string dark_cell_test(const Panel& p, const AxisDraw& z, bool diverging) {
  const double lo = p.z.min ? *p.z.min * z.scale : z.lo, hi = p.z.max ? *p.z.max * z.scale : z.hi;
  std::string test;
  if (diverging)
    test = "abs($3) > " + dnum(0.6 * std::max(std::fabs(lo), std::fabs(hi)));
  else if (z.log)
    test = "$3 > " + dnum(std::pow(10.0, std::log10(lo) + 0.6 * (std::log10(hi) - std::log10(lo))));
  else
    test = "$3 > " + dnum(lo + 0.6 * (hi - lo));
  return "(" + test + " ? 0xffffff : 0x000000)";
}

std::string heatmap_script(const Panel& p, const Ctx& c, std::string& data) {
  std::ostringstream o;
  std::string suffix;
  std::vector<double> zs;
  for (const auto& row : p.matrix) zs.insert(zs.end(), row.begin(), row.end());
  const size_t bad = count_nonfinite(zs);
  note_nonfinite(c, bad);
  if (zs.size() == bad) {
    c.notes->push_back(c.where + ": no finite data");
    data = "# " + c.title_line + ": no finite data\n";
    emit_no_data(o, p);
    return o.str();
  }
  const size_t nr = p.matrix.size(), nc = p.matrix[0].size();
  AxisDraw z = plan_axis("cb", p.z, zs, false, c.where, suffix, *c.notes);
  const bool diverging = !z.log && z.lo < 0 && z.hi > 0;
  if (diverging) {  // symmetric about 0, so equal colours mean equal magnitudes
    z.hi = std::max(std::fabs(z.lo), std::fabs(z.hi));
    z.lo = -z.hi;
  }
  o << "set title " << gp_quote(p.title + suffix) << "\n";
  emit_axis(o, z);
  o << "set palette defined "
    << (diverging ? "(0 '#2166ac', 0.5 '#f7f7f7', 1 '#b2182b')\n" : "(0 '#f7fbff', 0.5 '#6baed6', 1 '#08306b')\n");
  const size_t row_len = p.row_labels.empty() ? str_int(nr).size() : max_len(p.row_labels);
  emit_heat_axis(o, "y", axis_title(p.y), p.row_labels, nr, (c.panel_h - 120.0) / nr);
  Margins m;
  if (!p.categories.empty()) {
    m = emit_category_x(o, p.categories, c.panel_w - 100, !p.x.label.empty());
    o << "set xlabel " << gp_quote(axis_title(p.x)) << "\n";
  } else {
    emit_heat_axis(o, "x", axis_title(p.x), {}, nc, 0);
  }
  o << "set xrange [-0.5:" << dnum(nc - 0.5) << "]\nset yrange [" << dnum(nr - 0.5) << ":-0.5]\n"
    << "set lmargin " << std::max<int>(static_cast<int>(row_len) + (p.y.label.empty() ? 2 : 4), m.left) << "\n";
  if (m.bottom >= 0) o << "set bmargin " << m.bottom << "\n";
  o << "set tics out nomirror\nunset key\n";
  if (bad) o << "set object 1 rectangle from graph 0, graph 0 to graph 1, graph 1 behind fc rgb '#bbbbbb' fs solid\n";

  std::ostringstream d;
  d << "# " << c.title_line << "\n# matrix[row][col] as drawn: " << z.title << " (data × " << dnum(z.scale)
    << "); row 0 on top\n";
  for (size_t r = 0; r < nr; ++r) {
    for (size_t k = 0; k < nc; ++k) d << (k ? " " : "") << dnum(p.matrix[r][k] * z.scale);
    d << "\n";
  }
  data = d.str();
  o << "plot " << gp_quote(c.dat) << " matrix with image notitle";
  const bool values = p.cell_values.value_or(nr * nc <= 200);
  if (values) {
    const int dec = std::max(z.ticks.decimals, z.axis.integer ? 0 : 1);
    const std::string f = z.log ? "%.3g" : "%." + str_int(dec) + "f";
    // Values that round to zero print as 0, never "-0.0"; NaN cells stay blank.
    const std::string zero = z.log ? "0" : dnum(0.5 * std::pow(10.0, -dec));
    o << ", \\\n     '' matrix using 1:2:($3 == $3 ? sprintf(" << gp_quote(f) << ", abs($3) < " << zero
      << " ? 0 : $3) : ''):" << dark_cell_test(p, z, diverging)
      << " with labels font ',7' tc rgb variable notitle";
  }
  o << "\n";
  if (bad) o << "unset object 1\n";
  if (bad) c.notes->push_back(c.where + ": non-finite cells are drawn grey");
  return o.str();
}

// ---- validation and layout ------------------------------------------------

void check(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("report::render_plot: " + what);
}

void validate(const Plot& plot) {
  check(!plot.name.empty(), "empty Plot::name");
  for (char ch : plot.name)
    check(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.',
          "Plot::name '" + plot.name + "' may hold only letters, digits, '_', '-', '.'");
  check(!plot.panels.empty(), plot.name + ": no panels");
  for (const auto& p : plot.panels) {
    for (const auto& s : p.series) {
      if (p.kind != Panel::Kind::bar) check(s.x.size() == s.y.size(), plot.name + ": series '" + s.label + "': x and y differ in length");
      check(s.lo.size() == s.hi.size() && (s.lo.empty() || s.lo.size() == s.y.size()),
            plot.name + ": series '" + s.label + "': lo/hi must both match y or both be empty");
      check(s.point_labels.empty() || s.point_labels.size() == s.y.size(),
            plot.name + ": series '" + s.label + "': point_labels must match y");
      if (p.kind == Panel::Kind::bar)
        check(s.y.size() == p.categories.size(), plot.name + ": bar group '" + s.label + "' must have one value per category");
    }
    if (p.kind == Panel::Kind::heatmap) {
      check(!p.matrix.empty() && !p.matrix[0].empty(), plot.name + ": empty heatmap matrix");
      for (const auto& r : p.matrix) check(r.size() == p.matrix[0].size(), plot.name + ": ragged heatmap matrix");
      check(p.row_labels.empty() || p.row_labels.size() == p.matrix.size(), plot.name + ": row_labels must match rows");
      check(p.categories.empty() || p.categories.size() == p.matrix[0].size(),
            plot.name + ": column labels must match columns");
    }
  }
}

// Preferred size of one panel in pixels.
std::pair<int, int> panel_size(const Panel& p) {
  if (p.kind == Panel::Kind::heatmap && !p.matrix.empty()) {
    const int nr = static_cast<int>(p.matrix.size()), nc = static_cast<int>(p.matrix[0].size());
    return {std::clamp(40 * nc + 260, kPanelW, 2400), std::clamp(32 * nr + 170, kPanelH, 2400)};
  }
  if (p.kind == Panel::Kind::bar) {
    const int n = static_cast<int>(p.categories.size() * std::max<size_t>(1, p.series.size()));
    return {std::clamp(16 * n + 200, kPanelW, 2400), kPanelH};
  }
  return {kPanelW, kPanelH};
}

}  // namespace

// ---- public -----------------------------------------------------------------

Axis dppl_axis(Scale scale) {
  Axis a;
  a.label = "ΔPPL";
  a.unit = Unit::percent;
  a.scale = scale;
  return a;
}

Axis count_axis(std::string label) {
  Axis a;
  a.label = std::move(label);
  a.integer = true;
  return a;
}

std::string axis_title(const Axis& a) {
  if (a.unit == Unit::percent) return a.label.empty() ? "%" : a.label + " (%)";
  return a.label;
}

TickSpec choose_ticks(double lo, double hi, bool integer, int max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  max_ticks = std::max(2, max_ticks);
  const double maxabs = std::max(std::fabs(lo), std::fabs(hi));
  double span = hi - lo;
  if (span <= 0) span = maxabs > 0 ? maxabs : 1;
  TickSpec t;
  t.step = nice_step(span / max_ticks);
  if (integer) {
    t.step = std::max(1.0, std::round(t.step));
    t.format = "%.0f";
    return t;
  }
  t.decimals = decimals_for(t.step);
  if ((t.decimals > 3 || maxabs >= 1e5) && maxabs > 0) {
    // Move the power of ten into the axis title: short labels, same digits.
    t.exponent = static_cast<int>(std::floor(std::log10(maxabs) + 1e-9));
    const double p = std::pow(10.0, t.exponent);
    t.step = nice_step(span / p / max_ticks);
    t.decimals = decimals_for(t.step);
  }
  t.decimals = std::min(t.decimals, 12);
  t.format = "%." + std::to_string(t.decimals) + "f";
  return t;
}

std::string tick_label(const TickSpec& t, double v) {
  double s = v / std::pow(10.0, t.exponent);
  if (std::fabs(s) < t.step * 1e-6) s = 0;  // no "-0.0"
  return fmt(t.format.c_str(), s);
}

namespace {
Panel xy(Panel::Kind kind, std::string title, Axis x, Axis y, std::vector<Series> series, Series::Style def) {
  Panel p;
  p.kind = kind;
  p.title = std::move(title);
  p.x = std::move(x);
  p.y = std::move(y);
  p.series = std::move(series);
  for (auto& s : p.series)
    if (s.style == Series::Style::automatic) s.style = def;
  return p;
}
}  // namespace

Panel line_panel(std::string title, Axis x, Axis y, std::vector<Series> series) {
  return xy(Panel::Kind::xy, std::move(title), std::move(x), std::move(y), std::move(series), Series::Style::line);
}

Panel scatter_panel(std::string title, Axis x, Axis y, std::vector<Series> series) {
  return xy(Panel::Kind::xy, std::move(title), std::move(x), std::move(y), std::move(series), Series::Style::points);
}

Panel bar_panel(std::string title, std::vector<std::string> categories, std::vector<Series> groups, Axis y,
                std::string x_label) {
  Panel p = xy(Panel::Kind::bar, std::move(title), Axis{}, std::move(y), std::move(groups), Series::Style::bars);
  p.x.label = std::move(x_label);
  p.categories = std::move(categories);
  return p;
}

Panel heatmap_panel(std::string title, std::vector<std::vector<double>> matrix, Axis rows, Axis cols, Axis z,
                    std::vector<std::string> row_labels, std::vector<std::string> col_labels) {
  Panel p;
  p.kind = Panel::Kind::heatmap;
  p.title = std::move(title);
  p.matrix = std::move(matrix);
  p.y = std::move(rows);
  p.x = std::move(cols);
  p.z = std::move(z);
  p.row_labels = std::move(row_labels);
  p.categories = std::move(col_labels);
  p.key = "off";
  return p;
}

Panel histogram_panel(std::string title, const std::vector<double>& values, int bins, Axis x, Axis y) {
  Panel p;
  p.kind = Panel::Kind::histogram;
  p.title = std::move(title);
  p.x = std::move(x);
  p.y = std::move(y);
  p.key = "off";
  if (bins < 1) throw std::invalid_argument("report::histogram_panel: bins must be ≥ 1");
  std::vector<double> v;
  for (double d : values)
    if (std::isfinite(d)) v.push_back(d);
  if (v.size() < values.size())
    p.notes.push_back("histogram '" + p.title + "': " + str_int(values.size() - v.size()) + " non-finite value(s) not counted");
  if (v.empty()) return p;
  double lo = p.x.min.value_or(*std::min_element(v.begin(), v.end()));
  double hi = p.x.max.value_or(*std::max_element(v.begin(), v.end()));
  if (hi <= lo) {  // one distinct value: one bin around it
    const double pad = lo == 0 ? 0.5 : std::fabs(lo) * 0.05;
    lo -= pad, hi += pad;
  }
  const double w = (hi - lo) / bins;
  Series s;
  s.style = Series::Style::bars;
  s.y.assign(static_cast<size_t>(bins), 0.0);
  for (int i = 0; i < bins; ++i) s.x.push_back(lo + (i + 0.5) * w);
  size_t outside = 0;
  for (double d : v) {
    if (d < lo || d > hi) {
      ++outside;
      continue;
    }
    s.y[std::min(static_cast<size_t>((d - lo) / w), static_cast<size_t>(bins - 1))] += 1;
  }
  if (outside)
    p.notes.push_back("histogram '" + p.title + "': " + str_int(outside) + " value(s) outside the axis range not counted");
  p.bin_width = w;
  p.series.push_back(std::move(s));
  return p;
}

PlotScript plot_script(const Plot& plot) {
  validate(plot);
  PlotScript out;
  const size_t n = plot.panels.size();
  const int cols = plot.cols > 0 ? plot.cols
                   : n <= 3      ? static_cast<int>(n)
                                 : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows = static_cast<int>((n + cols - 1) / cols);
  int pw = 0, ph = 0;
  for (const auto& p : plot.panels) {
    const auto [w, h] = panel_size(p);
    pw = std::max(pw, w);
    ph = std::max(ph, h);
  }
  out.width = plot.width > 0 ? plot.width : cols * pw;
  out.height = plot.height > 0 ? plot.height : rows * ph + (plot.title.empty() ? 0 : kTitleH);
  pw = out.width / cols;
  ph = (out.height - (plot.title.empty() ? 0 : kTitleH)) / rows;

  std::ostringstream body;
  for (size_t i = 0; i < n; ++i) {
    const Panel& p = plot.panels[i];
    out.notes.insert(out.notes.end(), p.notes.begin(), p.notes.end());
    Ctx c;
    c.dat = n == 1 ? plot.name + ".dat" : plot.name + "_" + str_int(i + 1) + ".dat";
    c.where = "panel " + str_int(i + 1) + (p.title.empty() ? "" : " '" + p.title + "'");
    c.title_line = plot.name + " " + c.where;
    c.panel_w = pw;
    c.panel_h = ph;
    c.notes = &out.notes;
    std::string data, script;
    switch (p.kind) {
      case Panel::Kind::bar: script = bar_panel_script(p, c, data); break;
      case Panel::Kind::heatmap: script = heatmap_script(p, c, data); break;
      case Panel::Kind::histogram: script = histogram_script(p, c, data); break;
      default: script = xy_panel(p, c, data);
    }
    out.data.emplace_back(c.dat, data);
    // reset between panels: multiplot keeps every setting otherwise.
    body << "  # ---- panel " << i + 1 << ": data " << c.dat << "\n  reset\n  set encoding utf8\n";
    std::istringstream lines(script);
    for (std::string line; std::getline(lines, line);) body << "  " << line << "\n";
  }

  std::ostringstream s;
  const std::string size = " size " + str_int(out.width) + "," + str_int(out.height);
  s << "# " << plot.name << ": drawn by spt report::render_plot. Run `gnuplot " << plot.name
    << ".gp` in this folder to redraw " << plot.name << ".png and " << plot.name << ".svg.\n"
    << "# Data files hold the values as drawn (units and scale in their headers).\n"
    << "set encoding utf8\n"
    << "do for [spt_out in \"png svg\"] {\n"
    << "  if (spt_out eq \"png\") {\n"
    << "    set terminal pngcairo noenhanced font 'Sans,10'" << size << "\n"
    << "    set output " << gp_quote(plot.name + ".png") << "\n"
    << "  } else {\n"
    << "    set terminal svg noenhanced font 'Sans,10'" << size << " background '#ffffff'\n"
    << "    set output " << gp_quote(plot.name + ".svg") << "\n"
    << "  }\n"
    << "  set multiplot layout " << rows << "," << cols
    << (plot.title.empty() ? "" : " title " + gp_quote(plot.title) + " font ',12'") << "\n"
    << body.str() << "  unset multiplot\n  unset output\n}\n";
  out.script = s.str();
  return out;
}

PlotResult render_plot(const Plot& plot, const std::string& dir) {
  PlotScript ps = plot_script(plot);
  PlotResult out;
  out.notes = std::move(ps.notes);
  fs::create_directories(dir);
  for (const auto& [name, contents] : ps.data) {
    const std::string p = (fs::path(dir) / name).string();
    write_file_atomic(p, contents);
    out.files.push_back({name, p, "text/plain"});
  }
  const std::string gp = plot.name + ".gp";
  const std::string gp_path = (fs::path(dir) / gp).string();
  write_file_atomic(gp_path, ps.script);
  out.files.push_back({gp, gp_path, "text/plain"});

  const std::string why = run_gnuplot(dir, gp);
  std::vector<std::string> missing;
  for (const char* ext : {"png", "svg"}) {
    const std::string name = plot.name + "." + ext;
    const std::string path = (fs::path(dir) / name).string();
    std::error_code ec;
    const bool ok = why.empty() && fs::exists(path, ec) && fs::file_size(path, ec) > 0;
    if (ok) {
      out.files.push_back({name, path, ext[0] == 'p' ? "image/png" : "image/svg+xml"});
    } else {
      fs::remove(path, ec);  // never leave a stale or half image beside new data
      missing.push_back(name);
    }
    (ext[0] == 'p' ? out.png : out.svg) = ok;
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : " and ") + m;
    out.notes.push_back(names + " not drawn: " + (why.empty() ? std::string("gnuplot wrote no image") : why) +
                        "; data and script are written, run `gnuplot " + gp + "` there to draw them");
  }
  return out;
}

std::string image_md(const std::string& png_name, const std::string& alt) {
  std::string a;
  for (char ch : alt) {
    if (ch == '[' || ch == ']' || ch == '\\') a += '\\';
    a += ch == '\n' ? ' ' : ch;
  }
  return "![" + a + "](" + png_name + ")";
}

}  // namespace spt::report
