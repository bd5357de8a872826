#include "format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

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

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], width_of(r[i]));
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - width_of(r[i]) + 2, ' ');
    }
    out += line + "\n";
  }
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

std::string workers_table(const google::protobuf::RepeatedPtrField<v1::WorkerInfo>& ws, int64_t server_ms) {
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ID", "DEVICE", "SLOTS", "STATE", "HEARTBEAT", "DONE", "CURRENT JOBS"}};
  for (const auto& w : ws) {
    const auto& c = w.capabilities();
    std::string dev = c.device_kind();
    if (!c.device_name().empty()) dev += " (" + c.device_name() + ")";
    std::string cur = std::to_string(w.current_job_ids_size());
    for (int i = 0; i < w.current_job_names_size() && i < 3; ++i) cur += (i ? ", " : ": ") + w.current_job_names(i);
    if (w.current_job_names_size() > 3) cur += ", ...";
    const std::string hb =
        w.last_heartbeat_unix_ms() > 0 ? duration((server_ms - w.last_heartbeat_unix_ms()) / 1000.0) + " ago" : "-";
    rows.push_back({w.name(), w.worker_id(), dev, std::to_string(c.slots()), w.alive() ? "alive" : "gone", hb,
                    std::to_string(w.jobs_done()), cur});
  }
  return table(rows);
}

std::string dashboard(const v1::StatusResponse& s) {
  std::ostringstream out;
  if (s.experiments().empty()) out << "no experiments\n";
  for (const auto& e : s.experiments()) {
    const auto& c = e.counts();
    const double pct = c.total() ? 100.0 * c.done() / c.total() : 0;
    out << "#" << e.id() << " " << e.name() << (e.parts().empty() ? "" : " [" + e.parts() + "]") << "  " << e.state()
        << "  priority " << e.priority() << "\n";
    out << "  " << progress_bar(c, 40) << " " << fmt("%5.1f%%", pct) << "  " << c.done() << "/" << c.total()
        << " done\n";
    out << "  leased " << c.leased() << "  pending " << c.pending() << "  blocked " << c.blocked() << "  failed "
        << c.failed() << "  cancelled " << c.cancelled() << "\n";
    out << "  " << fmt("%.1f", e.throughput_per_s()) << " jobs/s";
    if (e.state() == "running") out << "  ETA " << duration(e.eta_s());
    if (e.submitted_unix_ms() > 0) {
      const int64_t end = e.finished_unix_ms() > 0 ? e.finished_unix_ms() : s.server_time_unix_ms();
      out << "  elapsed " << duration((end - e.submitted_unix_ms()) / 1000.0);
    }
    out << "\n";
  }
  out << "\nworkers\n";
  if (s.workers().empty())
    out << "  none registered\n";
  else
    out << workers_table(s.workers(), s.server_time_unix_ms());
  return out.str();
}

}  // namespace spt::client
