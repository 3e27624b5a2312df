// VerifyBuckets: `ferryctl verify --bucket` (docs/objects.md, "Verify"): whether the standby's
// bucket holds what the primary's holds, key by key, reported as missing (on the primary, not
// on the standby), extra (the other way) and changed, with `repair` making the standby's keys
// equal to the primary's.
//
// Equal (docs/objects.md, "Equal buckets"): both have no current version of the key (absent, or
// a delete marker as the current version), or both have one with the same size, content type,
// user metadata apart from Ferry's own, and content. Content identity is the SHA-256 of the
// body, streamed from both buckets (one chunk in memory): exact, and independent of how the
// object was uploaded. ETags are not compared: a multipart ETag depends on the part size (the
// standby's copy uses Ferry's part size, the application chose its own) and an encrypted
// single-part ETag is not an MD5. Version ids and noncurrent versions are not compared either:
// each bucket numbers its own versions, and Ferry replicates each key's current state.
//
// The cut. A bucket has no snapshot, so the verify takes two passes. Pass 1 compares every key.
// Its differences may be lag; so, after pass 1, `wait_for_cut` (the caller's) takes the cut (the
// primary's log end then) and returns once the standby applied every object event up to it;
// then pass 2 compares each differing key again. A key whose primary state changed between the
// passes was written after pass 1 saw it: it is left to apply and counted as `settled`, not
// reported. A key equal in pass 2 is settled too (it was lag). What is reported is a key whose
// primary state pass 1 saw, whose event (captured before the cut) the standby applied, and that
// still differs: a real difference (a lost notice, a write behind Ferry's back), never lag. This
// holds for notices that are durable in the primary's log when the application's write returns
// (radosgw's HTTP push is synchronous); a notice still on its way (Kafka's delay) when the cut is
// taken can make a key written just before pass 1 read as a difference.
//
// The repair beside the standby's own apply: a key counts as repaired only when the primary's
// state was the same before and after the copy (see VerifyBuckets' repair loop), so a copy of
// a state the primary has left never lands after the apply copied the newer one.
//
// Thread safety: one call at a time per bucket pair; the clients are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "connectors/s3/s3_client.h"

namespace ferry::s3 {

struct BucketVerifyOptions {
  S3Client* primary = nullptr;  // not owned
  std::string primary_bucket;
  S3Client* standby = nullptr;  // not owned
  std::string standby_bucket;
  // Repair: the primary's region, written into the replica markers of what it writes.
  std::string primary_region;
  uint64_t part_size = uint64_t{8} << 20;
  size_t max_keys = 1000;  // differing keys listed at most; the counts are complete
  bool repair = false;
  // Takes the cut and returns once the standby applied every object event captured up to it; an
  // error ends the verify (it could not tell lag from a difference). Called after pass 1 when it
  // found differences, and with `repair` once more before the repaired keys are compared again
  // (each call takes a new cut).
  std::function<absl::Status()> wait_for_cut;
  // Checked between keys: an error ends the verify with it (cancelled, deadline).
  std::function<absl::Status()> check_cancelled;
  std::function<void(const std::string&)> step;  // progress, for the operator
  // Tests only: called before each repair copy of `key` (attempt 1, 2, ...), after the
  // primary's state was read, so that a test can write the primary's key meanwhile.
  std::function<void(const std::string& key, int attempt)> before_repair_copy;
};

enum class KeyDifferenceKind { kMissing, kExtra, kChanged };

struct KeyDifference {
  std::string key;
  KeyDifferenceKind kind = KeyDifferenceKind::kChanged;
  std::string what;  // "size 10 vs 12", "content differs", ...
};

struct BucketVerifyReport {
  uint64_t keys_compared = 0;
  uint64_t bytes_read = 0;  // body bytes read, both buckets
  uint64_t missing = 0, extra = 0, changed = 0;
  std::vector<KeyDifference> shown;  // the first max_keys, in key order
  bool truncated = false;
  uint64_t settled = 0;  // pass 1 differences gone by pass 2 (lag, or written after the cut)
  // Repair.
  uint64_t repaired = 0;
  uint64_t repair_failed = 0;
  // Keys the primary kept writing while the repair copied them (kRepairTries = 5 times): left to
  // the standby's apply, which has their newer events (not counted as recheck differences).
  uint64_t repair_left = 0;
  std::string repair_note;  // the first failure
  bool rechecked = false;
  uint64_t recheck_differences = 0;
  uint64_t differences() const { return missing + extra + changed; }
};

// Errors: those of the S3 calls (kUnavailable, kPermissionDenied, ...), of wait_for_cut and
// of check_cancelled; kInvalidArgument for options without both clients.
[[nodiscard]] absl::StatusOr<BucketVerifyReport> VerifyBuckets(const BucketVerifyOptions& options);

}  // namespace ferry::s3
