#include "connectors/s3/bucket_verify.h"

#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "connectors/s3/digest.h"
#include "connectors/s3/object_applier.h"
#include "connectors/s3/replica_marker.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {
namespace {

// The keys with a current version (ListObjectsV2 shows no key whose current version is a delete
// marker).
absl::StatusOr<std::set<std::string>> CurrentKeys(S3Client& client, const std::string& bucket,
                                                  const std::function<absl::Status()>& check) {
  std::set<std::string> out;
  std::string token;
  do {
    if (check) FERRY_RETURN_IF_ERROR(check());
    FERRY_ASSIGN_OR_RETURN(ListPage page, client.ListObjectsV2(bucket, "", token));
    for (ListedObject& o : page.objects) out.insert(std::move(o.key));
    token = page.next_continuation_token;
  } while (!token.empty());
  return out;
}

// The current version's head, or nullopt when the key has none.
absl::StatusOr<std::optional<ObjectInfo>> Head(S3Client& client, const std::string& bucket,
                                               const std::string& key) {
  absl::StatusOr<ObjectInfo> head = client.HeadObject(bucket, key);
  if (head.status().code() == absl::StatusCode::kNotFound) return std::optional<ObjectInfo>();
  if (!head.ok()) return head.status();
  return std::optional<ObjectInfo>(*std::move(head));
}

// SHA-256 of one version's body, streamed (one chunk in memory).
absl::StatusOr<std::string> BodySha256(S3Client& client, const std::string& bucket,
                                       const std::string& key, const ObjectInfo& head,
                                       uint64_t* bytes_read) {
  Digest sha256(Digest::kSha256);
  uint64_t n = 0;
  const std::string version = head.version_id == "null" ? "" : head.version_id;
  FERRY_ASSIGN_OR_RETURN(
      ObjectInfo got,
      client.GetObjectStreamed(bucket, key, version, [&](std::string_view chunk) -> absl::Status {
        n += chunk.size();
        sha256.Update(chunk);
        return absl::OkStatus();
      }));
  *bytes_read += n;
  if (n != head.size || (version.empty() && got.etag != head.etag)) {
    // Overwritten between the HEAD and the GET (an unversioned bucket): read again next pass.
    return absl::AbortedError(absl::StrCat("'", key, "' changed while it was read"));
  }
  return sha256.Finish();
}

// The primary's state of a key as Compare names it ("absent", or version, ETag and size).
std::string StateOf(const std::optional<ObjectInfo>& p) {
  return p ? absl::StrCat("v=", p->version_id, " e=", p->etag, " n=", p->size) : "absent";
}

// Times a repair copies one key whose primary state keeps changing under it before it leaves
// the key to the standby's apply.
constexpr int kRepairTries = 5;

// One key compared: its difference if any, and the primary's state (to tell a key written
// after the cut between the passes).
struct KeyCompared {
  std::optional<KeyDifference> difference;
  std::string primary_state;
};

class Verifier {
 public:
  explicit Verifier(const BucketVerifyOptions& o) : o_(o) {}

  absl::StatusOr<KeyCompared> Compare(const std::string& key) {
    FERRY_ASSIGN_OR_RETURN(std::optional<ObjectInfo> p, Head(*o_.primary, o_.primary_bucket, key));
    FERRY_ASSIGN_OR_RETURN(std::optional<ObjectInfo> s, Head(*o_.standby, o_.standby_bucket, key));
    KeyCompared out;
    out.primary_state = StateOf(p);
    auto differ = [&](KeyDifferenceKind kind, std::string what) {
      out.difference = KeyDifference{.key = key, .kind = kind, .what = std::move(what)};
      return out;
    };
    if (!p && !s) return out;
    if (!s) return differ(KeyDifferenceKind::kMissing, "not on the standby");
    if (!p) return differ(KeyDifferenceKind::kExtra, "not on the primary");
    if (p->size != s->size) {
      return differ(KeyDifferenceKind::kChanged, absl::StrCat("size ", p->size, " vs ", s->size));
    }
    if (p->content_type != s->content_type) {
      return differ(KeyDifferenceKind::kChanged, absl::StrCat("content type '", p->content_type,
                                                              "' vs '", s->content_type, "'"));
    }
    if (UserMetadata(p->metadata) != UserMetadata(s->metadata)) {
      return differ(KeyDifferenceKind::kChanged, "user metadata differs");
    }
    FERRY_ASSIGN_OR_RETURN(std::string hp,
                           BodySha256(*o_.primary, o_.primary_bucket, key, *p, &bytes_read_));
    FERRY_ASSIGN_OR_RETURN(std::string hs,
                           BodySha256(*o_.standby, o_.standby_bucket, key, *s, &bytes_read_));
    if (hp != hs) return differ(KeyDifferenceKind::kChanged, "content differs (SHA-256)");
    return out;
  }

  uint64_t bytes_read() const { return bytes_read_; }

 private:
  const BucketVerifyOptions& o_;
  uint64_t bytes_read_ = 0;
};

}  // namespace

absl::StatusOr<BucketVerifyReport> VerifyBuckets(const BucketVerifyOptions& o) {
  if (o.primary == nullptr || o.standby == nullptr) {
    return absl::InvalidArgumentError("bucket verify needs both buckets' clients");
  }
  auto step = [&](const std::string& what) {
    if (o.step) o.step(what);
  };
  auto check = [&]() -> absl::Status {
    return o.check_cancelled ? o.check_cancelled() : absl::OkStatus();
  };
  Verifier verifier(o);
  BucketVerifyReport report;

  // Pass 1: every key either bucket lists.
  step(absl::StrCat("listing buckets ", o.primary_bucket, " and ", o.standby_bucket));
  FERRY_ASSIGN_OR_RETURN(std::set<std::string> keys,
                         CurrentKeys(*o.primary, o.primary_bucket, o.check_cancelled));
  FERRY_ASSIGN_OR_RETURN(std::set<std::string> standby_keys,
                         CurrentKeys(*o.standby, o.standby_bucket, o.check_cancelled));
  keys.merge(standby_keys);
  step(absl::StrCat("comparing ", keys.size(), " keys"));
  std::vector<std::pair<std::string, std::string>> candidates;  // key, primary state in pass 1
  for (const std::string& key : keys) {
    FERRY_RETURN_IF_ERROR(check());
    absl::StatusOr<KeyCompared> c = verifier.Compare(key);
    if (c.status().code() == absl::StatusCode::kAborted) {
      candidates.emplace_back(key, "");  // changed while read: decided in pass 2
      continue;
    }
    if (!c.ok()) return c.status();
    ++report.keys_compared;
    if (c->difference) candidates.emplace_back(key, c->primary_state);
  }

  // Pass 2: the differing keys, once the standby applied everything up to the cut.
  std::vector<KeyDifference> differences;
  if (!candidates.empty()) {
    step(absl::StrCat(candidates.size(),
                      " keys differ; waiting for the standby to apply through "
                      "the cut"));
    if (o.wait_for_cut) FERRY_RETURN_IF_ERROR(o.wait_for_cut());
    step(absl::StrCat("comparing the ", candidates.size(), " differing keys again"));
    for (const auto& [key, state] : candidates) {
      FERRY_RETURN_IF_ERROR(check());
      absl::StatusOr<KeyCompared> c = verifier.Compare(key);
      if (c.status().code() == absl::StatusCode::kAborted) {
        ++report.settled;  // still being written: after the cut
        continue;
      }
      if (!c.ok()) return c.status();
      if (!c->difference || c->primary_state != state) {
        ++report.settled;  // lag, or written after the cut: apply's job
        continue;
      }
      differences.push_back(*std::move(c->difference));
    }
  }
  for (const KeyDifference& d : differences) {
    switch (d.kind) {
      case KeyDifferenceKind::kMissing:
        ++report.missing;
        break;
      case KeyDifferenceKind::kExtra:
        ++report.extra;
        break;
      case KeyDifferenceKind::kChanged:
        ++report.changed;
        break;
    }
    if (report.shown.size() < o.max_keys) {
      report.shown.push_back(d);
    } else {
      report.truncated = true;
    }
  }

  if (o.repair && !differences.empty()) {
    step(absl::StrCat("repairing ", differences.size(), " keys on ", o.standby_bucket));
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<ObjectApplier> applier,
                           ObjectApplier::Create({.source = o.primary,
                                                  .source_bucket = o.primary_bucket,
                                                  .target = o.standby,
                                                  .target_bucket = o.standby_bucket,
                                                  .origin_region = o.primary_region,
                                                  .part_size = o.part_size}));
    // Beside the standby's own apply, which keeps copying the primary's current state of each
    // key it has an event for: a repair's copy that read a state the primary has since left
    // could land after the apply copied the newer one, and nothing would copy it again. So a
    // key counts as repaired only when the primary's state was the same before and after the
    // copy (each write makes a new version: the copy wrote that state, the latest); otherwise it
    // is copied again, at most kRepairTries times, then left to the apply (its newer event is
    // in the standby's log: written after the cut).
    std::map<std::string, std::string> repaired_state;  // key -> the primary's state copied
    std::set<std::string> failed_keys;
    for (const KeyDifference& d : differences) {
      FERRY_RETURN_IF_ERROR(check());
      absl::Status failed;
      for (int attempt = 1; attempt <= kRepairTries; ++attempt) {
        absl::StatusOr<std::optional<ObjectInfo>> before =
            Head(*o.primary, o.primary_bucket, d.key);
        if (o.before_repair_copy) o.before_repair_copy(d.key, attempt);
        absl::StatusOr<ApplyResult> applied =
            before.ok() ? applier->ApplyKey(d.key) : absl::StatusOr<ApplyResult>(before.status());
        absl::StatusOr<std::optional<ObjectInfo>> after =
            applied.ok() ? Head(*o.primary, o.primary_bucket, d.key)
                         : absl::StatusOr<std::optional<ObjectInfo>>(applied.status());
        if (!after.ok()) {
          failed = after.status();
          break;
        }
        if (StateOf(*before) == StateOf(*after)) {
          repaired_state[d.key] = StateOf(*after);
          break;
        }
      }
      if (!failed.ok()) {
        failed_keys.insert(d.key);
        ++report.repair_failed;
        if (report.repair_note.empty()) {
          report.repair_note = absl::StrCat("'", d.key, "': ", failed.ToString());
        }
      } else if (repaired_state.contains(d.key)) {
        ++report.repaired;
      } else {
        ++report.repair_left;  // written on and on meanwhile: the apply's
      }
    }
    // A copy by the apply that read an older state may still land after the repair's; its key's
    // newer event is in the standby's log before this cut. Once the apply passed it, a repaired
    // key the primary has not written since must be equal.
    if (o.wait_for_cut) FERRY_RETURN_IF_ERROR(o.wait_for_cut());
    step("comparing the repaired keys again");
    report.rechecked = true;
    for (const KeyDifference& d : differences) {
      FERRY_RETURN_IF_ERROR(check());
      auto it = repaired_state.find(d.key);
      if (it == repaired_state.end()) {
        if (failed_keys.contains(d.key)) ++report.recheck_differences;  // not repaired
        continue;
      }
      absl::StatusOr<KeyCompared> c = verifier.Compare(d.key);
      if (c.status().code() == absl::StatusCode::kAborted) continue;  // being written now
      if (!c.ok()) {
        ++report.recheck_differences;
        continue;
      }
      // Written on the primary since the repair copied it: lag, the apply's (not a difference).
      if (c->difference && c->primary_state == it->second) ++report.recheck_differences;
    }
  }
  report.bytes_read = verifier.bytes_read();
  return report;
}

}  // namespace ferry::s3
