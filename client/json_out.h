#pragma once
// Protobuf messages as JSON for `spt-client --json`: proto field names,
// every field present (defaults included, so the shape is stable), and
// 64-bit integers as JSON numbers rather than proto3-JSON's strings (ids,
// counts and millisecond times all fit a double exactly). *_json fields stay
// strings, exactly as on the wire.
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

namespace spt::client {

nlohmann::json to_json(const google::protobuf::Message& m);

// Serialises for printing; invalid UTF-8 is replaced, never thrown on.
std::string dump(const nlohmann::json& j);

}  // namespace spt::client
