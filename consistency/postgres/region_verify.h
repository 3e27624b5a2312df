// RunRegionVerify: a whole verify as the primary's ferryd runs it (docs/verify.md).
//
//   1. the standby freezes its apply              (VerifyPeer.BeginCut)
//   2. the primary cuts: temporary slot, snapshot  (PrimaryCut; L = its position)
//   3. the primary opens its session on the snapshot and commits the marker after L
//   4. the standby applies up to L, holds, takes its snapshot, goes on (VerifyPeer.SetCut)
//   5. table by table: schemas, both scans at once, the top-down comparison (RunVerify)
//   6. once the cut is older than max_cut_age, the remaining tables start again at 1 (a new cut:
//      the primary's snapshot holds its xmin back only so long)
// Apply is held from 1 to 4 only: milliseconds, unless a transaction with an xid runs long on
// the primary (bounded by cut_timeout).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consistency/grpc/verify_client.h"
#include "consistency/postgres/coordinator.h"

namespace ferry::consistency {

// `standby` is the client of the standby's verify service (made with options.verify_id).
// Errors: kDeadlineExceeded (the cut), kFailedPrecondition (the standby refused: paused,
// another verify), those of the sessions and the exchange. The standby's verify is ended on
// every path.
[[nodiscard]] absl::StatusOr<RegionVerifyResult> RunRegionVerify(const RegionVerifyOptions& options,
                                                                 GrpcStandbyPeer& standby);

}  // namespace ferry::consistency
