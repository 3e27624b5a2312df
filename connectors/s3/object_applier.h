// ObjectApplier: makes one key of the target bucket equal the source bucket's current state
// of that key. This is the apply step of the object path: an event in the log only says which
// key to look at; the body is fetched from the source region at apply time (docs/objects.md,
// "Where bodies travel").
//
// Contract of ApplyKey(key), idempotent by construction:
//   - reads the source's current state (HEAD) and the target's;
//   - source has no current version (absent or delete marker): deletes the target's current
//     version if it has one (a delete marker on a versioned target), else does nothing;
//   - source has one: does nothing when the target already holds it (same size, content type,
//     user metadata, and the replica marker names the source's ETag, or the same ETag), so a
//     replayed or duplicated event never adds a version; otherwise copies it:
//       - a source written by one PUT (its ETag is its body's MD5: no "-N" suffix, not encrypted
//         with KMS or a customer's key) of at most 5 GiB: one PUT of any size, sent
//         with that MD5 as Content-MD5 so the target refuses a body that differs (nothing is
//         hashed here); above part_size the body streams from the source's GET to the PUT
//         through a 4 MiB pipe;
//       - any other source (multipart, encrypted, over 5 GiB): one PUT signed with the body's
//         SHA-256 up to part_size, a multipart upload above (parts streamed from the source
//         GET, at most one part in memory; aborted on any failure; uploads of the key left by
//         a copy that died are aborted before a new one starts);
//     either way no partial object is ever visible;
//   - the body copied is the version the HEAD saw (GET by version id; on an unversioned
//     source the GET's ETag must equal the HEAD's, or the body its MD5), never a newer body
//     under an older state;
//   - ETags are compared after the write (a single PUT's ETag is the MD5 of what was sent,
//     which is the source's ETag when that is an MD5); a version whose ETag differs is removed
//     again (kDataLoss), so a target that ignores Content-MD5 never keeps a wrong body that
//     the replica marker would call equal.
// Because it always writes the source's *current* state, an older event applied after a newer
// one cannot make the target go back, and ten overwrites of a key cost at most ten HEADs and
// one copy per state still current when apply gets to it.
//
// Thread-safe; different keys apply in parallel, calls for the same key wait for each other.
// Errors: kUnavailable (either bucket away; retry), kAborted (the source changed under the
// copy, or the body was corrupted on its way and the target refused it by its signed hash;
// retry: the next apply reads it again), kPermissionDenied (credentials),
// kDataLoss (an ETag mismatch after retries are the caller's to decide).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "connectors/s3/s3_client.h"

namespace ferry::s3 {

struct ObjectApplierOptions {
  S3Client* source = nullptr;  // not owned; reads only
  std::string source_bucket;
  S3Client* target = nullptr;  // not owned
  std::string target_bucket;
  // The region the source bucket belongs to (written into the replica marker).
  std::string origin_region;
  // Objects up to this size are one PUT with the body in memory; larger ones stream (one PUT
  // when the source's ETag is an MD5, else multipart with parts of this size). S3 needs
  // parts of at least 5 MiB (but the last).
  uint64_t part_size = uint64_t{8} << 20;
};

enum class ApplyOutcome { kWritten, kDeleted, kAlreadyEqual };

struct ApplyResult {
  ApplyOutcome outcome = ApplyOutcome::kAlreadyEqual;
  uint64_t bytes = 0;  // body bytes copied
  int parts = 0;       // 0 for a single PUT or no copy
};

class ObjectApplier {
 public:
  // kInvalidArgument for missing clients or buckets, or a part size under 5 MiB.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ObjectApplier>> Create(
      const ObjectApplierOptions& options);

  [[nodiscard]] absl::StatusOr<ApplyResult> ApplyKey(const std::string& key);
  // Every key with a current version in the target bucket (a full listing).
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> TargetKeys() const;

 private:
  explicit ObjectApplier(const ObjectApplierOptions& options) : options_(options) {}
  absl::StatusOr<ApplyResult> ApplyLocked(const std::string& key);
  absl::StatusOr<ApplyResult> Copy(const std::string& key, const ObjectInfo& source);
  // kDataLoss, after removing the version written, unless its ETag is `expected_md5`.
  absl::Status CheckWritten(const std::string& key, const PutResult& written,
                            const std::string& expected_md5);
  absl::StatusOr<ApplyResult> CopyStreamed(const std::string& key, const ObjectInfo& source,
                                           const PutOptions& put);
  absl::StatusOr<ApplyResult> CopyMultipart(const std::string& key, const ObjectInfo& source,
                                            const PutOptions& put);

  const ObjectApplierOptions options_;
  absl::Mutex mu_;
  std::set<std::string> busy_keys_ ABSL_GUARDED_BY(mu_);
};

// Whether `target` holds the source state `source` of `key` (see ApplyKey).
bool HoldsSourceState(const ObjectInfo& target, const ObjectInfo& source, const std::string& key);

// Whether `source`'s ETag is the MD5 of its body: written by one PUT (32 lowercase hex digits,
// no "-N" suffix) and not encrypted with KMS or a customer's key, whose ETags are not (SSE-S3's
// are). Only then is it sent as the copy's Content-MD5.
bool EtagIsBodyMd5(const ObjectInfo& source);

}  // namespace ferry::s3
