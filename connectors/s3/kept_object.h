// A bucket's object event as a quarantine entry (docs/objects.md, "Rejoin"): what a rejoin keeps
// of a former primary's object events that were never shipped. The object itself stays in the
// former primary's bucket as a version (on a versioned bucket nothing Ferry does deletes a
// version: an overwrite or a delete only makes it noncurrent); the entry names it.
//
// The entry, in ferry.quarantine's columns (or the file quarantine of a region without a
// database, engine/daemon/file_quarantine.h):
//   table_schema  "s3"
//   table_name    the source bucket
//   op            "object_put" (the key had a current version) or "object_delete" (it had
//                 none): kObjectPutOp and kObjectDeleteOp of engine/api/quarantine.h
//   key           {"key": "<object key>"}
//   after         {"version_id": "...", "size": "123", "etag": "\"...\"", "content_type": "..."}
//                 (values as text; an object_delete carries its version_id only)
// The caller sets epoch and log_seq; index is 0 (one event a record).
//
// Example (ferryd's DaemonFactories::kept_event):
//   FERRY_ASSIGN_OR_RETURN(std::optional<v1::QuarantinedChange> kept, ObjectEventAsKept(event));
#pragma once

#include <optional>

#include "absl/status/statusor.h"
#include "engine/api/quarantine.h"
#include "proto/change.pb.h"
#include "proto/replication.pb.h"

namespace ferry::s3 {

inline constexpr char kKeptObjectSchema[] = "s3";

// nullopt for an event that names no object (a reconcile, a dead letter, another connector's
// type): nothing to keep. kDataLoss for an "s3.object" event whose body does not parse, whose
// format is newer than this reader's, or that names no bucket or key (the log is corrupt).
[[nodiscard]] absl::StatusOr<std::optional<v1::QuarantinedChange>> ObjectEventAsKept(
    const v1::SourceEvent& event);

}  // namespace ferry::s3
