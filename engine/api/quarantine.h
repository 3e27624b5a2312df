// The quarantine (invariant 9 of DESIGN.md; docs/operations.md, "Rejoin"): the changes a former
// primary committed and never shipped, kept on the new primary's database until an operator
// reapplies or discards them. The engine owns the interface, a connector implements it
// (Postgres: connectors/postgres/source/pg_quarantine.h, the table ferry.quarantine).
//
// A rejoin uses both halves: the old primary reads its own row for each change's key
// (CurrentRows) and sends the changes to the new primary, which keeps them with its own current
// row in one transaction (Keep). The operator's verbs (Decide) run on the primary.
//
// Example (the new primary's side of RegionControl.Quarantine):
//   FERRY_ASSIGN_OR_RETURN(QuarantineStore::Kept kept, store->Keep("east", changes));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proto/admin.pb.h"
#include "proto/replication.pb.h"

namespace ferry {

// The ops of a bucket's object entries (connectors/s3/kept_object.h): an object version the old
// primary's bucket holds and never shipped. Not a row: no row is read for its key, and it is
// never reapplied by Ferry (the operator copies the version, which stays in the old primary's
// bucket, and discards the entry). Each is its own "transaction" (its xact is "object", its
// commit_position "seq N", N its log record).
inline constexpr char kObjectPutOp[] = "object_put";
inline constexpr char kObjectDeleteOp[] = "object_delete";
inline bool IsObjectOp(const std::string& op) {
  return op == kObjectPutOp || op == kObjectDeleteOp;
}

// The checks every store makes of an operator's request before it reads anything: a known
// verb, an entry id for show, reapply and discard, a note of at most 4096 bytes and, for list, a
// known status and a limit of at most 100,000. Returns the list's limit (1,000 when none was
// given). kInvalidArgument naming what is wrong.
inline absl::StatusOr<uint32_t> CheckQuarantineRequest(const v1::QuarantineRequest& request) {
  constexpr uint32_t kDefaultListLimit = 1000;
  constexpr uint32_t kMaxListLimit = 100000;
  const std::string& verb = request.verb();
  if (verb != "list" && verb != "show" && verb != "reapply" && verb != "discard") {
    return absl::InvalidArgumentError(absl::StrCat(
        "quarantine: unknown verb \"", verb.substr(0, 64), "\" (list, show, reapply, discard)"));
  }
  if (verb != "list" && request.id() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("quarantine ", verb, " needs an entry id"));
  }
  if (request.note().size() > 4096) {
    return absl::InvalidArgumentError("quarantine: a note holds at most 4096 bytes");
  }
  if (verb != "list") return kDefaultListLimit;
  const std::string& status = request.status();
  if (!status.empty() && status != "pending" && status != "reapplied" && status != "discarded") {
    return absl::InvalidArgumentError(absl::StrCat("quarantine list: unknown status \"",
                                                   status.substr(0, 64),
                                                   "\" (pending, reapplied, discarded)"));
  }
  if (request.limit() > kMaxListLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("quarantine list: --limit is at most ", kMaxListLimit));
  }
  return request.limit() == 0 ? kDefaultListLimit : request.limit();
}

// Thread-compatible: the daemon calls it from one thread at a time.
class QuarantineStore {
 public:
  virtual ~QuarantineStore() = default;
  // This database's row now for each change's key, as JSON text (nullopt: no such row, or a
  // truncate). Errors: kInvalidArgument for a change that names no table here or a malformed
  // key; kUnavailable when the database cannot be reached.
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::optional<std::string>>> CurrentRows(
      const std::vector<v1::QuarantinedChange>& changes) = 0;

  struct Kept {
    uint64_t kept = 0;     // newly kept
    uint64_t present = 0;  // kept before (a rejoin that runs again)
  };
  // Keeps `changes` of `source_region`, each with this database's current row for its key, in
  // one transaction: all or none. A change kept before (same source region, epoch, log sequence
  // and index) is not kept twice. Errors as CurrentRows'.
  [[nodiscard]] virtual absl::StatusOr<Kept> Keep(
      const std::string& source_region, const std::vector<v1::QuarantinedChange>& changes) = 0;

  // `ferryctl quarantine` (proto/admin.proto, Quarantine): list, show, reapply, discard.
  // kInvalidArgument for an unknown verb or a bad limit, kNotFound for an unknown id,
  // kFailedPrecondition for an entry decided already or a reapply that conflicts (nothing
  // written then; the message says why).
  [[nodiscard]] virtual absl::StatusOr<v1::QuarantineReply> Decide(
      const v1::QuarantineRequest& request) = 0;

  // For each of `keys` (table and key only), whether the quarantine holds a change of
  // `source_region` to that key: a rejoin's repair explains a differing key with it.
  [[nodiscard]] virtual absl::StatusOr<std::vector<bool>> Explains(
      const std::string& source_region, const std::vector<v1::QuarantinedChange>& keys) = 0;

  // Entries awaiting a decision (0 when the quarantine does not exist yet).
  [[nodiscard]] virtual absl::StatusOr<uint64_t> Pending() = 0;
};

}  // namespace ferry
