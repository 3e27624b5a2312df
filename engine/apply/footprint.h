// What one transaction touches, for the DependencyTracker (see dependency_tracker.h).
//
// Keys are computed by target table name (schema.name), never by the source's relation id:
//   - the replica identity: the part_of_key columns (REPLICA IDENTITY FULL: every column), of
//     the old image when sent and of the new image;
//   - each unique constraint of the target (Sink::UniqueKeysOf) over the new image, and over the
//     old image when the source sent the whole old row; otherwise the whole table;
//   - the whole table when a key value is missing (unchanged TOAST) or the table has no key;
//   - a barrier for TRUNCATE, for a relation not described by the transaction, and when the
//     caller says the transaction changes or introduces a relation's shape.
#pragma once

#include <functional>

#include "engine/api/sink.h"
#include "engine/apply/dependency_tracker.h"
#include "proto/change.pb.h"

namespace ferry {

// Returns the unique keys of the target table of `relation` (may be empty).
using UniqueKeysLookup = std::function<const UniqueKeys&(const v1::Relation& relation)>;

Footprint ComputeFootprint(const v1::Transaction& txn, const UniqueKeysLookup& unique_keys);

}  // namespace ferry
