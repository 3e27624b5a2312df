#include "connectors/s3/kept_object.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/s3/bucket_source.h"
#include "connectors/s3/object_event.pb.h"
#include "engine/base/json_text.h"

namespace ferry::s3 {

absl::StatusOr<std::optional<v1::QuarantinedChange>> ObjectEventAsKept(
    const v1::SourceEvent& event) {
  if (event.type() != kObjectEventType) return std::nullopt;
  objects::v1::ObjectEvent e;
  if (!e.ParseFromString(event.body())) {
    return absl::DataLossError("an s3.object event's body does not parse");
  }
  if (e.format() > 1) {
    return absl::DataLossError(
        absl::StrCat("an s3.object event of format ", e.format(), " (this ferryd reads 1)"));
  }
  if (e.bucket().empty() || e.key().empty()) {
    return absl::DataLossError("an s3.object event names no bucket or no key");
  }
  const bool put = e.kind() == objects::v1::ObjectEvent::PUT;
  if (!put && e.kind() != objects::v1::ObjectEvent::DELETE) {
    return absl::DataLossError(
        absl::StrCat("an s3.object event of unknown kind ", static_cast<int>(e.kind())));
  }
  v1::QuarantinedChange q;
  q.set_table_schema(kKeptObjectSchema);
  q.set_table_name(e.bucket());
  q.set_op(put ? kObjectPutOp : kObjectDeleteOp);
  q.set_key(absl::StrCat("{\"key\": ", JsonString(e.key()), "}"));
  std::vector<std::string> fields = {absl::StrCat("\"version_id\": ", JsonString(e.version_id()))};
  if (put) {
    fields.push_back(absl::StrCat("\"size\": ", JsonString(std::to_string(e.size()))));
    fields.push_back(absl::StrCat("\"etag\": ", JsonString(e.etag())));
    fields.push_back(absl::StrCat("\"content_type\": ", JsonString(e.content_type())));
  }
  q.set_after(absl::StrCat("{", absl::StrJoin(fields, ", "), "}"));
  q.set_commit_time_us(event.event_time_us() != 0 ? event.event_time_us()
                                                  : event.capture_time_us());
  return q;
}

}  // namespace ferry::s3
