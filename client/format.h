#pragma once
// Human-readable renderings for spt-client: the status dashboard, tables,
// durations. Pure functions of the messages, so they are unit-testable.
#include <string>
#include <string_view>
#include <vector>

#include "spt/v1/spt.pb.h"

namespace spt::client {

// How a rendering fits its terminal: width 0 = unlimited; color adds ANSI
// colours to states (the caller decides: a TTY and no NO_COLOR).
struct RenderOptions {
  int width = 0;
  bool color = false;
};

// Left-aligned columns; rows[0] is the header. With max_width > 0 optional
// columns are dropped, then the widest
// columns are narrowed (cells cut with "~") until a line fits, never below
// a column's header or 6 characters, so a table wraps only if even that
// does not fit.
// `drop` names header cells of columns that may be left out, first to go
// first, before any column is narrowed (kubectl's wide/normal views).
std::string table(const std::vector<std::vector<std::string>>& rows, int max_width = 0,
                  const std::vector<std::string>& drop = {});

// `s` cut to `width` display columns, the cut marked with "~".
std::string clip(const std::string& s, size_t width);

// The failure lines of one experiment ("" when nothing failed or retried):
// own failures grouped by message with a `spt-client logs` command to see
// one, the jobs that failed through a dependency, and the retry count.
std::string failure_summary(const v1::ExperimentStatus& e, const RenderOptions& o = {});

// "  parts: a 145/145  c 3/20  ..." (done/total per part, failed ones
// marked "!N"), wrapped to the width; "" unless the experiment ran several
// parts (its parts string has more than one letter) and has 2+ groups.
std::string part_progress(const v1::ExperimentStatus& e, const RenderOptions& o = {});

// "[#####xx.......]": done '#', failed or cancelled 'x', the rest '.'.
std::string progress_bar(const v1::Counts& c, int width);

// 0.4 -> "0.4s", 75 -> "1m15s", 7300 -> "2h01m"; negative -> "-".
std::string duration(double s);

// One block per experiment (bar, counts, throughput, ETA; an UNSCHEDULABLE
// line per group of pending jobs no live worker can hold, with the reason),
// then a workers
// table with device, current jobs and heartbeat age (by the server's clock).
std::string dashboard(const v1::StatusResponse& s, const RenderOptions& o = {});

// Workers: state is alive | gone | QUARANTINED (the reasons follow the
// table). With `details` (spt-client workers) also MEMORY (what it
// registered) and CANARY: its latest canary per precision as
// "fp32 ok value/reference |d|=diff<=tolerance".
std::string workers_table(const google::protobuf::RepeatedPtrField<v1::WorkerInfo>& ws, int64_t server_ms,
                          const RenderOptions& o = {}, bool details = false);

// One line per experiment (like squeue): ID NAME PARTS STATE PROGRESS ...
std::string experiments_table(const v1::StatusResponse& s, const RenderOptions& o = {});

std::string human_bytes(int64_t n);

// Text from the server or from other users (worker names, errors, logs, job
// and artifact names), made safe to print on a terminal: C0 controls (but
// \t, and \n when `multiline`), DEL and invalid UTF-8 bytes become "\xNN";
// C1 controls (U+0080-U+009F) and bidi overrides become "\uNNNN". So no
// escape sequence reaches the terminal raw; valid UTF-8 text is unchanged.
std::string printable(std::string_view s, bool multiline = false);

// The print boundary: every string field of `m`, recursively, through
// printable(). Fields holding multi-line text (log, error, detail, reason,
// quarantined, *_json) keep their newlines; bytes fields are left alone.
// Apply to a response before rendering it as text, never before --json
// (the JSON writer escapes control characters itself).
void make_printable(google::protobuf::Message* m);

}  // namespace spt::client
