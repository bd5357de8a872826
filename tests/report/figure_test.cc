// report/figure.h: builders render PNG + SVG, tick formats, units, log and
// NaN policies, literal labels, and a missing gnuplot.
#include "report/figure.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "spt/util.h"

namespace spt::report {
namespace {

namespace fs = std::filesystem;
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

class FigureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("spt_figure_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  // SPT_FIGURE_TEST_KEEP=1 keeps the figures for a look.
  void TearDown() override {
    if (!HasFailure() && !std::getenv("SPT_FIGURE_TEST_KEEP")) fs::remove_all(dir_);
  }
  static bool have_gnuplot() { return !find_gnuplot().empty(); }
  std::string file(const std::string& name) const { return read_file((fs::path(dir_) / name).string()); }

  // Renders and checks both images: PNG magic and size, SVG header and text.
  PlotResult draw(const Plot& p, const std::vector<std::string>& svg_texts) {
    PlotResult r = render_plot(p, dir_);
    EXPECT_TRUE(fs::exists(fs::path(dir_) / (p.name + ".gp")));
    if (!have_gnuplot()) return r;
    EXPECT_TRUE(r.png && r.svg) << (r.notes.empty() ? "" : r.notes.back());
    const std::string png = file(p.name + ".png");
    EXPECT_GT(png.size(), 2000u);
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    const std::string svg = file(p.name + ".svg");
    EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || svg.rfind("<svg", 0) == 0) << svg.substr(0, 80);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    for (const auto& t : svg_texts) EXPECT_NE(svg.find(t), std::string::npos) << "SVG lacks text: " << t;
    return r;
  }
  static bool has_note(const PlotResult& r, const std::string& part) {
    for (const auto& n : r.notes)
      if (n.find(part) != std::string::npos) return true;
    return false;
  }

  std::string dir_;
};

Series S(std::string label, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.label = std::move(label);
  s.x = std::move(x);
  s.y = std::move(y);
  return s;
}

// ---- builders ------------------------------------------------------------------

TEST_F(FigureTest, LinePanelWithBandAndReferenceLines) {
  Series s = S("PPL ratio", {0, 1, 2, 3, 4}, {1.0, 1.02, 1.1, 1.4, 2.2});
  s.lo = {0.98, 1.0, 1.05, 1.3, 2.0};
  s.hi = {1.02, 1.05, 1.15, 1.5, 2.4};
  Panel p = line_panel("Cumulative ablation", count_axis("heads ablated"), Axis{"PPL / baseline"}, {s});
  p.hlines = {1.1, 1.5};
  p.labels = {{2, 1.5, "1.5×"}};
  Plot plot{"line_fig", "σ sweep — gpt2", {p}};
  const PlotResult r = draw(plot, {"heads ablated", "PPL / baseline", "σ sweep — gpt2", "1.5×"});
  EXPECT_TRUE(fs::exists(fs::path(dir_) / "line_fig.dat"));
  EXPECT_NE(file("line_fig.gp").find("filledcurves"), std::string::npos);
}

TEST_F(FigureTest, ScatterPanelWithPointLabels) {
  Series s = S("layers", {0.1, 0.2, 0.35, 0.5}, {0.001, 0.004, 0.002, 0.03});
  s.point_labels = {"L0", "L1", "L2", "L3"};
  Plot plot{"scatter_fig", "", {scatter_panel("importance vs dg/dℓ", Axis{"dg/d(ℓ/L)"}, dppl_axis(), {s})}};
  draw(plot, {"dg/d(ℓ/L)", "ΔPPL (%)", "L3"});
  EXPECT_NE(file("scatter_fig.gp").find("with points"), std::string::npos);
}

TEST_F(FigureTest, BarPanelRotatesLongCategories) {
  std::vector<std::string> cats;
  std::vector<double> a, b;
  for (int i = 0; i < 20; ++i) {
    cats.push_back("L" + std::to_string(i % 12) + "H" + std::to_string(i) + "_long_name");
    a.push_back(0.01 * i);
    b.push_back(0.012 * i);
  }
  Series g1, g2;
  g1.label = "2K";
  g1.y = a;
  g2.label = "full";
  g2.y = b;
  Plot plot{"bar_fig", "validation", {bar_panel("top heads", cats, {g1, g2}, dppl_axis(), "head")}};
  draw(plot, {"ΔPPL (%)", "L0H0_long_name", "full"});
  const std::string gp = file("bar_fig.gp");
  EXPECT_NE(gp.find("rotate by 45 right"), std::string::npos);
  EXPECT_NE(gp.find("set bmargin"), std::string::npos);
}

TEST_F(FigureTest, HeatmapPanelDivergingWithNaNCell) {
  std::vector<std::vector<double>> m(4, std::vector<double>(6));
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 6; ++c) m[r][c] = 0.01 * (r - 1.5) * (c + 1);
  m[2][3] = kNaN;
  Plot plot{"heat_fig", "", {heatmap_panel("zero-ablation ΔPPL", m, count_axis("layer"), count_axis("head"),
                                           dppl_axis())}};
  const PlotResult r = draw(plot, {"layer", "head", "ΔPPL (%)"});
  EXPECT_TRUE(has_note(r, "1 non-finite value(s) written as NaN"));
  const std::string gp = file("heat_fig.gp");
  EXPECT_NE(gp.find("matrix with image"), std::string::npos);
  EXPECT_NE(gp.find("0.5 '#f7f7f7'"), std::string::npos);  // white at 0
  EXPECT_NE(file("heat_fig.dat").find("NaN"), std::string::npos);
}

TEST_F(FigureTest, HistogramPanelCountsIntegerAxis) {
  std::vector<double> v;
  for (int i = 0; i < 144; ++i) v.push_back(std::sin(i) * 0.02);
  v.push_back(kNaN);
  Panel p = histogram_panel("ΔPPL of heads", v, 20, dppl_axis(), count_axis("heads"));
  p.vlines = {0, 0.01};
  Plot plot{"hist_fig", "", {p}};
  const PlotResult r = draw(plot, {"heads", "ΔPPL (%)"});
  EXPECT_TRUE(has_note(r, "1 non-finite value(s) not counted"));
  double total = 0;
  for (double c : p.series.at(0).y) total += c;
  EXPECT_EQ(total, 144);
  EXPECT_NE(file("hist_fig.gp").find("set format y '%.0f'"), std::string::npos);
}

TEST_F(FigureTest, MultiPanelLayoutSizesCanvasAndWritesOneDatPerPanel) {
  Panel a = line_panel("a", Axis{"x"}, Axis{"y"}, {S("s", {1, 2, 3}, {1, 4, 9})});
  Panel b = scatter_panel("b", Axis{"x"}, Axis{"y"}, {S("s", {1, 2, 3}, {3, 2, 1})});
  Panel c = line_panel("c", Axis{"x"}, Axis{"y"}, {S("s", {1, 2}, {0, 1})});
  Plot plot{"multi_fig", "three panels", {a, b, c}};
  const PlotScript ps = plot_script(plot);
  EXPECT_EQ(ps.width, 3 * 640);
  EXPECT_GT(ps.height, 440);
  EXPECT_NE(ps.script.find("set multiplot layout 1,3"), std::string::npos);
  draw(plot, {"three panels"});
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(fs::exists(fs::path(dir_) / ("multi_fig_" + std::to_string(i) + ".dat")));
}

// ---- ticks and units -------------------------------------------------------

TEST(Ticks, TinyRangeGivesShortDistinctLabels) {
  const TickSpec t = choose_ticks(-0.00015, 0.0002, false);
  std::set<std::string> labels;
  int n = 0;
  for (double k = std::floor(-0.00015 / std::pow(10, t.exponent) / t.step);
       k * t.step <= 0.0002 / std::pow(10, t.exponent) + 1e-12; k += 1, ++n) {
    const std::string l = tick_label(t, k * t.step * std::pow(10, t.exponent));
    EXPECT_LE(l.size(), 5u) << l;
    EXPECT_EQ(l.find("e"), std::string::npos) << l;
    labels.insert(l);
  }
  EXPECT_EQ(static_cast<int>(labels.size()), n);
  EXPECT_GE(n, 4);
  EXPECT_LE(n, 10);
  EXPECT_EQ(t.exponent, -4);
  EXPECT_EQ(tick_label(t, -0.00015), "-1.5");
  EXPECT_EQ(tick_label(t, 0), "0.0");
}

TEST(Ticks, OrdinaryRangesNeedNoExponent) {
  const TickSpec a = choose_ticks(0, 2.2, false);
  EXPECT_EQ(a.exponent, 0);
  EXPECT_DOUBLE_EQ(a.step, 0.5);
  EXPECT_EQ(a.format, "%.1f");
  const TickSpec b = choose_ticks(-3, 40, false);
  EXPECT_EQ(b.format, "%.0f");
  const TickSpec c = choose_ticks(0, 250880, false);
  EXPECT_EQ(c.exponent, 5);
  EXPECT_EQ(tick_label(c, 250000), "2.5");
  const TickSpec d = choose_ticks(5, 5, false);  // one value: still a sane step
  EXPECT_GT(d.step, 0);
}

TEST(Ticks, IntegerAxisUsesIntegerSteps) {
  const TickSpec t = choose_ticks(0, 3, true);
  EXPECT_DOUBLE_EQ(t.step, 1);
  EXPECT_EQ(t.format, "%.0f");
  EXPECT_DOUBLE_EQ(choose_ticks(0, 143, true).step, 20);
  Plot plot{"int_axis", "", {line_panel("", count_axis("heads"), Axis{"y"}, {S("s", {0, 1, 2, 3}, {1, 2, 1, 2})})}};
  const std::string gp = plot_script(plot).script;
  EXPECT_NE(gp.find("set xtics 1\n"), std::string::npos) << gp;
  EXPECT_NE(gp.find("set format x '%.0f'"), std::string::npos);
  EXPECT_NE(gp.find("set mxtics 1"), std::string::npos);
}

TEST(Units, DpplIsPercentEverywhere) {
  EXPECT_EQ(axis_title(dppl_axis()), "ΔPPL (%)");
  Plot plot{"dppl", "", {line_panel("", count_axis("n"), dppl_axis(), {S("s", {1, 2}, {0.0108, 0.5})})}};
  const PlotScript ps = plot_script(plot);
  EXPECT_NE(ps.script.find("set ylabel 'ΔPPL (%)'"), std::string::npos);
  EXPECT_NE(ps.data.at(0).second.find("1 1.08\n"), std::string::npos) << ps.data.at(0).second;
  EXPECT_NE(ps.data.at(0).second.find("2 50\n"), std::string::npos);
  // Tiny percentages move the power of ten into the title, not the labels.
  Plot tiny{"tiny", "", {line_panel("", count_axis("n"), dppl_axis(), {S("s", {1, 2}, {-1.5e-6, 2e-6})})}};
  EXPECT_NE(plot_script(tiny).script.find("set ylabel 'ΔPPL (×10⁻⁴ %)'"), std::string::npos);
}

// ---- policies ----------------------------------------------------------------

TEST(Policies, SinglePointLineIsMarkedAndRangeIsPadded) {
  Plot plot{"one_point", "", {line_panel("", count_axis("n"), Axis{"v"}, {S("one", {3}, {5})})}};
  const std::string gp = plot_script(plot).script;
  EXPECT_NE(gp.find("with linespoints"), std::string::npos) << gp;
  EXPECT_NE(gp.find("set yrange [2.2:7.8]"), std::string::npos) << gp;  // 5 ± 2.5, plus 6 % margins
}

TEST(Policies, ReferenceLinesAreInsideTheRange) {
  Panel p = line_panel("", Axis{"x"}, Axis{"y"}, {S("s", {0, 1}, {0, 1})});
  p.hlines = {3};
  const std::string gp = plot_script(Plot{"refs", "", {p}}).script;
  EXPECT_NE(gp.find("set yrange [-0.18:3.18]"), std::string::npos) << gp;
}

TEST_F(FigureTest, LogAxisWithNonPositiveFallsBackToLinearWithNote) {
  Axis y{"|ΔPPL|"};
  y.scale = Scale::log;
  Plot plot{"log_fallback", "", {scatter_panel("zipf", count_axis("rank"), y, {S("d", {1, 2, 3}, {0.5, 0.1, -0.01})})}};
  const PlotResult r = draw(plot, {"linear y: 1 value(s) ≤ 0"});
  EXPECT_TRUE(has_note(r, "log y axis drawn linear because 1 value(s) are ≤ 0"));
  const std::string gp = file("log_fallback.gp");
  EXPECT_EQ(gp.find("set logscale"), std::string::npos);
  EXPECT_NE(file("log_fallback.dat").find("3 -0.01"), std::string::npos);  // the point is kept
}

TEST_F(FigureTest, LogAxisWithPositiveDataStaysLog) {
  Axis y{"PPL"};
  y.scale = Scale::log;
  Plot plot{"log_ok", "", {line_panel("", count_axis("n"), y, {S("p", {0, 1, 2}, {24, 300, 9000})})}};
  const PlotResult r = draw(plot, {"PPL"});
  EXPECT_NE(file("log_ok.gp").find("set logscale y 10"), std::string::npos);
  EXPECT_FALSE(has_note(r, "drawn linear"));
}

TEST_F(FigureTest, NonFiniteValuesAreNaNInDataAndCounted) {
  Plot plot{"nan_fig", "", {line_panel("", Axis{"x"}, Axis{"y"}, {S("s", {1, 2, 3, 4}, {1, kNaN, kInf, 2})})}};
  const PlotResult r = draw(plot, {});
  EXPECT_TRUE(has_note(r, "2 non-finite value(s) written as NaN"));
  const std::string dat = file("nan_fig.dat");
  EXPECT_NE(dat.find("2 NaN\n"), std::string::npos);
  EXPECT_NE(dat.find("3 NaN\n"), std::string::npos);
  EXPECT_EQ(dat.find("inf"), std::string::npos);
}

TEST_F(FigureTest, PanelWithoutFiniteDataSaysNoData) {
  Panel empty = line_panel("empty panel", Axis{"x"}, Axis{"y"}, {S("s", {1, 2}, {kNaN, kNaN})});
  Panel none = heatmap_panel("all NaN", {{kNaN, kNaN}}, Axis{"r"}, Axis{"c"}, Axis{"z"});
  Plot plot{"nodata_fig", "", {empty, none, histogram_panel("h", {}, 10, Axis{"v"})}};
  const PlotResult r = draw(plot, {"no data", "empty panel"});
  EXPECT_TRUE(has_note(r, "panel 1 'empty panel': no finite data"));
  EXPECT_TRUE(has_note(r, "panel 3 'h': no finite data"));
}

TEST_F(FigureTest, UnderscoresAndUnicodeAreLiteral) {
  Plot plot{"literal_fig", "strong_A vs weak_B",
            {line_panel("σ_1 {x}^2", Axis{"ℓ_layer"}, Axis{"Δ_ppl"}, {S("strong_A", {1, 2}, {1, 2})})}};
  draw(plot, {"strong_A vs weak_B", "σ_1 {x}^2", "ℓ_layer", "Δ_ppl", "strong_A"});
  const std::string gp = file("literal_fig.gp");
  EXPECT_NE(gp.find("pngcairo noenhanced"), std::string::npos);
  EXPECT_NE(gp.find("svg noenhanced"), std::string::npos);
}

TEST_F(FigureTest, MissingGnuplotStillWritesDataAndScript) {
  const char* old = std::getenv("SPT_GNUPLOT");
  const std::string saved = old ? old : "";
  ::setenv("SPT_GNUPLOT", "/nonexistent", 1);
  Plot plot{"nognuplot", "", {line_panel("", Axis{"x"}, Axis{"y"}, {S("s", {1, 2}, {1, 2})})}};
  const PlotResult r = render_plot(plot, dir_);
  old ? ::setenv("SPT_GNUPLOT", saved.c_str(), 1) : ::unsetenv("SPT_GNUPLOT");
  EXPECT_FALSE(r.png);
  EXPECT_FALSE(r.svg);
  EXPECT_TRUE(fs::exists(fs::path(dir_) / "nognuplot.dat"));
  EXPECT_TRUE(fs::exists(fs::path(dir_) / "nognuplot.gp"));
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "nognuplot.png"));
  EXPECT_TRUE(has_note(r, "nognuplot.png and nognuplot.svg not drawn: gnuplot not found")) << r.notes.back();
  EXPECT_EQ(r.files.size(), 2u);
}

TEST(Figure, MalformedInputThrows) {
  Plot ragged{"bad", "", {line_panel("", Axis{}, Axis{}, {S("s", {1, 2}, {1})})}};
  EXPECT_THROW(plot_script(ragged), std::invalid_argument);
  Plot badname{"../x", "", {line_panel("", Axis{}, Axis{}, {})}};
  EXPECT_THROW(plot_script(badname), std::invalid_argument);
  EXPECT_THROW(plot_script(Plot{"none"}), std::invalid_argument);
}

TEST(Figure, ImageMarkdown) {
  EXPECT_EQ(image_md("a.png", "Fig [1]"), "![Fig \\[1\\]](a.png)");
}

}  // namespace
}  // namespace spt::report
