#pragma once
// Human-readable renderings for spt-client: the status dashboard, tables,
// durations. Pure functions of the messages, so they are unit-testable.
#include <string>
#include <vector>

#include "spt/v1/spt.pb.h"

namespace spt::client {

// Left-aligned columns; rows[0] is the header. Cells are not truncated.
std::string table(const std::vector<std::vector<std::string>>& rows);

// "[#####xx.......]": done '#', failed or cancelled 'x', the rest '.'.
std::string progress_bar(const v1::Counts& c, int width);

// 0.4 -> "0.4s", 75 -> "1m15s", 7300 -> "2h01m"; negative -> "-".
std::string duration(double s);

// One block per experiment (bar, counts, throughput, ETA), then a workers
// table with device, current jobs and heartbeat age (by the server's clock).
std::string dashboard(const v1::StatusResponse& s);

std::string workers_table(const google::protobuf::RepeatedPtrField<v1::WorkerInfo>& ws, int64_t server_ms);

std::string human_bytes(int64_t n);

}  // namespace spt::client
