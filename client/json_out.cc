#include "json_out.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

namespace spt::client {

namespace pb = google::protobuf;

namespace {

nlohmann::json scalar(const pb::Message& m, const pb::Reflection* r, const pb::FieldDescriptor* f, int i) {
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: return rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f);
    case pb::FieldDescriptor::CPPTYPE_INT64: return rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f);
    case pb::FieldDescriptor::CPPTYPE_UINT32: return rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f);
    case pb::FieldDescriptor::CPPTYPE_UINT64: return rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f);
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: return rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f);
    case pb::FieldDescriptor::CPPTYPE_FLOAT: return rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f);
    case pb::FieldDescriptor::CPPTYPE_BOOL: return rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f);
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, f, i) : r->GetEnum(m, f))->name();
    case pb::FieldDescriptor::CPPTYPE_STRING:
      // Blob chunks carry binary bytes: their size is printed, never the bytes.
      // Map values are bytes only so that the server, not protobuf, judges
      // their UTF-8 (params): they are text.
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES && !f->containing_type()->options().map_entry())
        return (rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f)).size();
      return rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return to_json(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f));
  }
  return nullptr;
}

}  // namespace

nlohmann::json to_json(const pb::Message& m) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  nlohmann::json out = nlohmann::json::object();
  for (int k = 0; k < d->field_count(); ++k) {
    const pb::FieldDescriptor* f = d->field(k);
    if (f->is_map()) {
      nlohmann::json obj = nlohmann::json::object();
      const pb::FieldDescriptor* kf = f->message_type()->map_key();
      const pb::FieldDescriptor* vf = f->message_type()->map_value();
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
        const nlohmann::json key = scalar(entry, entry.GetReflection(), kf, 0);
        obj[key.is_string() ? key.get<std::string>() : key.dump()] = scalar(entry, entry.GetReflection(), vf, 0);
      }
      out[f->name()] = std::move(obj);
    } else if (f->is_repeated()) {
      nlohmann::json arr = nlohmann::json::array();
      for (int i = 0; i < r->FieldSize(m, f); ++i) arr.push_back(scalar(m, r, f, i));
      out[f->name()] = std::move(arr);
    } else {
      out[f->name()] = scalar(m, r, f, 0);
    }
  }
  return out;
}

std::string dump(const nlohmann::json& j) { return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace spt::client
