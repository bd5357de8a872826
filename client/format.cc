#include "format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <google/protobuf/descriptor.h>

#include "spt/utf8.h"

namespace spt::client {

namespace {

// Display width of a UTF-8 string (code points; good enough for names).
size_t width_of(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::string clip(const std::string& s, size_t width) {
  if (width_of(s) <= width) return s;
  if (width == 0) return "";
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80 && ++n > width - 1) break;
    out += s[i];
  }
  return out + "~";
}

namespace {

// The narrowest line `rows` can take: each column at its floor (its
// widest cell, but at most max(6, its header)), two spaces between.
size_t min_width(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], width_of(r[i]));
    }
  size_t t = 0;
  for (size_t i = 0; i < w.size(); ++i)
    t += std::min(w[i], std::max<size_t>(6, i < rows[0].size() ? width_of(rows[0][i]) : 0)) + 2;
  return t >= 2 ? t - 2 : 0;
}

}  // namespace

std::string table(const std::vector<std::vector<std::string>>& in, int max_width, const std::vector<std::string>& drop) {
  std::vector<std::vector<std::string>> rows = in;
  for (const auto& name : drop) {
    if (max_width <= 0 || rows.empty() || min_width(rows) <= static_cast<size_t>(max_width)) break;
    const auto it = std::find(rows[0].begin(), rows[0].end(), name);
    if (it == rows[0].end()) continue;
    const auto col = static_cast<size_t>(it - rows[0].begin());
    for (auto& r : rows)
      if (col < r.size()) r.erase(r.begin() + static_cast<std::ptrdiff_t>(col));
  }
  std::vector<size_t> w, floor;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0), floor.push_back(0);
      w[i] = std::max(w[i], width_of(r[i]));
    }
  for (size_t i = 0; i < w.size() && !rows.empty(); ++i)
    floor[i] = std::min(w[i], std::max<size_t>(6, i < rows[0].size() ? width_of(rows[0][i]) : 0));
  auto total = [&] {
    size_t t = 0;
    for (size_t x : w) t += x + 2;
    return t >= 2 ? t - 2 : 0;
  };
  // Narrow the widest narrowable column one step at a time: long cells
  // (names, job lists) give way first and short ones keep their text.
  while (max_width > 0 && total() > static_cast<size_t>(max_width)) {
    size_t best = w.size();
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] > floor[i] && (best == w.size() || w[i] > w[best])) best = i;
    if (best == w.size()) break;
    --w[best];
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      const std::string cell = clip(r[i], w[i]);
      line += cell;
      if (i + 1 < r.size()) line += std::string(w[i] - width_of(cell) + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

namespace {

// ANSI colour of an experiment or worker state (none when !o.color).
std::string paint(const std::string& state, const RenderOptions& o) {
  if (!o.color) return state;
  const char* c = state == "done" || state == "alive" ? "32"
                  : state == "failed" || state == "gone" ? "31"
                  : state == "running" ? "33"
                  : state == "cancelled" ? "90" : nullptr;
  return c ? std::string("\033[") + c + "m" + state + "\033[0m" : state;
}

// The first line of a (possibly multi-line) message.
std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl) + " ...";
}

}  // namespace

std::string failure_summary(const v1::ExperimentStatus& e, const RenderOptions& o) {
  int64_t own = 0;
  for (const auto& g : e.failures()) own += g.count();
  if (own == 0 && e.failed_by_dependency() == 0 && e.retries() == 0) return "";
  std::string out;
  if (own || e.failed_by_dependency()) {
    out += "  failures:";
    if (e.failure_kinds() > e.failures_size())
      out += " top " + std::to_string(e.failures_size()) + " of " + std::to_string(e.failure_kinds()) + " messages";
    out += "\n";
  }
  const size_t cut = o.width > 0 ? static_cast<size_t>(std::max(20, o.width - 4)) : std::string::npos;
  for (const auto& g : e.failures()) {
    std::string line = "    " + std::to_string(g.count()) + " x " + first_line(g.error());
    out += (cut == std::string::npos ? line : clip(line, cut + 4)) + "\n";
    out += "      see: spt-client logs " + std::to_string(e.id()) + ":" + g.example_job() + "\n";
  }
  if (e.failed_by_dependency())
    out += "    " + std::to_string(e.failed_by_dependency()) + " x not run: an upstream job failed\n";
  if (e.retries()) out += "  retries: " + std::to_string(e.retries()) + "\n";
  return out;
}

std::string progress_bar(const v1::Counts& c, int width) {
  const double total = static_cast<double>(std::max<int64_t>(c.total(), 1));
  const int done = static_cast<int>(std::floor(width * c.done() / total));
  const int bad = std::min(width - done, static_cast<int>(std::ceil(width * (c.failed() + c.cancelled()) / total)));
  return "[" + std::string(done, '#') + std::string(bad, 'x') + std::string(width - done - bad, '.') + "]";
}

std::string duration(double s) {
  if (s < 0 || !std::isfinite(s)) return "-";
  if (s < 10) return fmt("%.1fs", s);
  const auto t = static_cast<int64_t>(std::llround(s));
  char buf[64];
  if (t < 60)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
  else if (t < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60));
  return buf;
}

std::string human_bytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? std::to_string(n) + " B" : fmt("%.1f ", v) + units[u];
}

static std::string canary_cell(const v1::WorkerInfo& w) {
  if (w.canaries().empty()) return "-";
  std::string out;
  for (const auto& c : w.canaries()) {
    out += out.empty() ? "" : " ";
    if (!c.error().empty()) {
      out += c.precision() + " ERROR";
      continue;
    }
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s %s %.5f/%.5f |d|=%.1e<=%.0e", c.precision().c_str(), c.pass() ? "ok" : "FAIL",
                  c.value(), c.reference(), c.abs_diff(), c.tolerance());
    out += buf;
  }
  return out;
}

std::string part_progress(const v1::ExperimentStatus& e, const RenderOptions& o) {
  if (e.parts().size() < 2 || e.part_progress_size() < 2) return "";
  const size_t width = o.width > 0 ? static_cast<size_t>(o.width) : std::string::npos;
  std::string out, line = "  parts:";
  for (const auto& p : e.part_progress()) {
    const auto& c = p.counts();
    std::string item = " " + (p.part().empty() ? std::string("-") : p.part()) + " " + std::to_string(c.done()) + "/" +
                       std::to_string(c.total());
    if (c.failed()) item += " !" + std::to_string(c.failed());
    if (width_of(line) + width_of(item) + 1 > width && line != "  parts:") {
      out += line + "\n";
      line = "        ";
    }
    line += " " + item;
  }
  return out + line + "\n";
}

std::string workers_table(const google::protobuf::RepeatedPtrField<v1::WorkerInfo>& ws, int64_t server_ms,
                          const RenderOptions& o, bool details) {
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "DEVICE", "SLOTS", "STATE", "HEARTBEAT", "DONE"}};
  if (details) rows[0].insert(rows[0].begin() + 3, "MEMORY"), rows[0].push_back("CANARY");
  rows[0].push_back("CURRENT JOBS");
  std::vector<std::string> notes;  // quarantine reasons, below the table
  std::vector<std::string> states;
  for (const auto& w : ws) {
    const auto& c = w.capabilities();
    std::string dev = c.device_kind();
    if (!c.device_name().empty()) dev += " (" + c.device_name() + ")";
    std::string cur = std::to_string(w.current_job_ids_size());
    for (int i = 0; i < w.current_job_names_size() && i < 3; ++i) cur += (i ? ", " : ": ") + w.current_job_names(i);
    if (w.current_job_names_size() > 3) cur += ", ...";
    const std::string hb =
        w.last_heartbeat_unix_ms() > 0 ? duration((server_ms - w.last_heartbeat_unix_ms()) / 1000.0) + " ago" : "-";
    const std::string state = !w.quarantined().empty() ? "QUARANTINED" : w.alive() ? "alive" : "gone";
    rows.push_back({w.name(), w.worker_id(), dev, std::to_string(c.slots()), state, hb, std::to_string(w.jobs_done())});
    if (details) {
      rows.back().insert(rows.back().begin() + 3, c.memory_bytes() > 0 ? human_bytes(c.memory_bytes()) : "?");
      rows.back().push_back(canary_cell(w));
    }
    rows.back().push_back(cur);
    if (!w.quarantined().empty()) notes.push_back(w.name() + " quarantined: " + w.quarantined());
  }
  std::string t = table(rows, o.width, {"ID", "CANARY", "DONE", "SLOTS", "MEMORY", "HEARTBEAT"});
  for (const auto& n : notes) t += "  " + n + "\n";
  if (!o.color) return t;
  // Colour the STATE cells after layout (escape codes have no width).
  std::string out;
  size_t pos = 0;
  for (bool header = true; pos < t.size(); header = false) {
    const size_t nl = t.find('\n', pos);
    std::string line = t.substr(pos, nl - pos);
    if (!header)
      for (const char* st : {"alive", "gone"})
        if (auto at = line.find(std::string("  ") + st + "  "); at != std::string::npos) {
          line.replace(at + 2, std::strlen(st), paint(st, o));
          break;
        }
    out += line + "\n";
    pos = nl + 1;
  }
  return out;
}

std::string experiments_table(const v1::StatusResponse& s, const RenderOptions& o) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "PARTS", "STATE", "DONE", "FAILED", "RETRIES", "JOBS/S", "ETA", "ELAPSED"}};
  for (const auto& e : s.experiments()) {
    const auto& c = e.counts();
    const int64_t end = e.finished_unix_ms() > 0 ? e.finished_unix_ms() : s.server_time_unix_ms();
    rows.push_back({std::to_string(e.id()), e.name(), e.parts().empty() ? "-" : e.parts(), e.state(),
                    std::to_string(c.done()) + "/" + std::to_string(c.total()), std::to_string(c.failed()),
                    std::to_string(e.retries()), fmt("%.2f", e.throughput_per_s()),
                    e.state() == "running" ? duration(e.eta_s()) : "-",
                    e.submitted_unix_ms() > 0 ? duration((end - e.submitted_unix_ms()) / 1000.0) : "-"});
  }
  if (rows.size() == 1) return "no experiments\n";
  return table(rows, o.width, {"ELAPSED", "RETRIES", "PARTS"});
}

std::string dashboard(const v1::StatusResponse& s, const RenderOptions& o) {
  std::ostringstream out;
  if (s.experiments().empty()) out << "no experiments\n";
  const int bar = o.width > 0 && o.width < 80 ? 30 : 40;
  for (const auto& e : s.experiments()) {
    const auto& c = e.counts();
    const double pct = c.total() ? 100.0 * c.done() / c.total() : 0;
    out << "#" << e.id() << " " << e.name() << (e.parts().empty() ? "" : " [" + e.parts() + "]") << "  "
        << paint(e.state(), o) << "  priority " << e.priority() << "\n";
    out << "  " << progress_bar(c, bar) << " " << fmt("%5.1f%%", pct) << "  " << c.done() << "/" << c.total()
        << " done\n";
    out << "  leased " << c.leased() << "  pending " << c.pending() << "  blocked " << c.blocked() << "  failed "
        << c.failed() << "  cancelled " << c.cancelled() << "\n";
    // issue 12: chunked submissions.
    if (e.state() == "submitting")
      out << "  submitting: " << c.total() << " of " << e.jobs_planned() << " jobs stored (none runs until all are)\n";
    if (!e.submit_error().empty()) out << "  not submitted: " << e.submit_error() << "\n";
    out << "  " << fmt("%.2f", e.throughput_per_s()) << " jobs/s";
    if (e.state() == "running") out << "  ETA " << duration(e.eta_s());
    if (e.submitted_unix_ms() > 0) {
      const int64_t end = e.finished_unix_ms() > 0 ? e.finished_unix_ms() : s.server_time_unix_ms();
      out << "  elapsed " << duration((end - e.submitted_unix_ms()) / 1000.0);
    }
    out << "\n" << part_progress(e, o) << failure_summary(e, o);
    for (const auto& u : s.unschedulable()) {
      if (u.experiment_id() != e.id()) continue;
      // With no live worker at all nothing is wrong with the jobs yet: a
      // fresh pool looks like this until its first worker registers.
      const std::string& why = u.reason();
      const std::string tail = "no live worker";
      const bool waiting = why.size() >= tail.size() && why.compare(why.size() - tail.size(), tail.size(), tail) == 0;
      out << (waiting ? "  WAITING FOR A WORKER " : "  UNSCHEDULABLE ") << u.n_jobs() << " pending job"
          << (u.n_jobs() == 1 ? "" : "s") << " (e.g. " << u.example_job() << "): " << why << "\n";
    }
  }
  out << "\nworkers\n";
  if (s.workers().empty())
    out << "  none registered\n";
  else
    out << workers_table(s.workers(), s.server_time_unix_ms(), o);
  return out.str();
}

namespace {

bool multiline_field(const std::string& name) {
  static const char* const kNames[] = {"log", "error", "detail", "reason", "quarantined"};
  for (const char* n : kNames)
    if (name == n) return true;
  return name.size() > 5 && name.compare(name.size() - 5, 5, "_json") == 0;
}

}  // namespace

std::string printable(std::string_view s, bool multiline) { return utf8::escape_controls(s, multiline); }

void make_printable(google::protobuf::Message* m) {
  namespace pb = google::protobuf;
  const pb::Descriptor* d = m->GetDescriptor();
  const pb::Reflection* r = m->GetReflection();
  for (int k = 0; k < d->field_count(); ++k) {
    const pb::FieldDescriptor* f = d->field(k);
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f); ++i) make_printable(r->MutableRepeatedMessage(m, f, i));
      } else if (r->HasField(*m, f)) {
        make_printable(r->MutableMessage(m, f));
      }
      continue;
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING || f->type() == pb::FieldDescriptor::TYPE_BYTES) continue;
    const bool ml = multiline_field(f->name());
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(*m, f); ++i) {
        const std::string& v = r->GetRepeatedString(*m, f, i);
        if (std::string p = printable(v, ml); p != v) r->SetRepeatedString(m, f, i, std::move(p));
      }
    } else {
      const std::string& v = r->GetString(*m, f);
      if (std::string p = printable(v, ml); p != v) r->SetString(m, f, std::move(p));
    }
  }
}

}  // namespace spt::client
