#include "connectors/s3/object_applier.h"

#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "connectors/s3/body_pipe.h"
#include "connectors/s3/digest.h"
#include "connectors/s3/replica_marker.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {
namespace {

constexpr uint64_t kMinPartSize = uint64_t{5} << 20;
// What a streamed copy holds between its GET and its PUT.
constexpr size_t kPipeBytes = size_t{4} << 20;
// S3's largest single PUT. A gateway configured for larger ones (MinIO, radosgw's
// rgw_max_put_size) may hold bigger single-PUT objects: those are copied in parts.
constexpr uint64_t kMaxPutBytes = uint64_t{5} << 30;

std::string VersionToRead(const ObjectInfo& source) {
  return source.version_id == "null" ? "" : source.version_id;
}

}  // namespace

bool EtagIsBodyMd5(const ObjectInfo& source) {
  return source.etag.size() == 32 &&
         source.etag.find_first_not_of("0123456789abcdef") == std::string::npos &&
         (source.encryption.empty() || source.encryption == "AES256");
}

bool HoldsSourceState(const ObjectInfo& target, const ObjectInfo& source, const std::string& key) {
  if (target.size != source.size || target.content_type != source.content_type ||
      UserMetadata(target.metadata) != UserMetadata(source.metadata)) {
    return false;
  }
  std::optional<ReplicaMarker> marker = ReadReplicaMarker(target.metadata, key);
  if (marker) return marker->source_etag == source.etag;
  // The source's object may itself be Ferry's copy of the target's (the regions reversed):
  // then its marker names the target's ETag, and copying it back would only add a version.
  std::optional<ReplicaMarker> reverse = ReadReplicaMarker(source.metadata, key);
  if (reverse) return reverse->source_etag == target.etag;
  return target.etag == source.etag;
}

absl::StatusOr<std::unique_ptr<ObjectApplier>> ObjectApplier::Create(
    const ObjectApplierOptions& options) {
  if (options.source == nullptr || options.target == nullptr || options.source_bucket.empty() ||
      options.target_bucket.empty() || options.origin_region.empty()) {
    return absl::InvalidArgumentError("object applier needs both clients, buckets and a region");
  }
  if (options.part_size < kMinPartSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("part_size ", options.part_size, " is under S3's minimum of 5 MiB"));
  }
  return std::unique_ptr<ObjectApplier>(new ObjectApplier(options));
}

absl::StatusOr<ApplyResult> ObjectApplier::ApplyKey(const std::string& key) {
  {
    absl::MutexLock lock(&mu_);
    auto free = [this, &key]()
                    ABSL_SHARED_LOCKS_REQUIRED(mu_) { return busy_keys_.count(key) == 0; };
    mu_.Await(absl::Condition(&free));
    busy_keys_.insert(key);
  }
  absl::StatusOr<ApplyResult> result = ApplyLocked(key);
  absl::MutexLock lock(&mu_);
  busy_keys_.erase(key);
  return result;
}

absl::StatusOr<std::vector<std::string>> ObjectApplier::TargetKeys() const {
  std::vector<std::string> keys;
  std::string token;
  do {
    FERRY_ASSIGN_OR_RETURN(ListPage page,
                           options_.target->ListObjectsV2(options_.target_bucket, "", token));
    for (ListedObject& o : page.objects) keys.push_back(std::move(o.key));
    token = page.next_continuation_token;
  } while (!token.empty());
  return keys;
}

absl::StatusOr<ApplyResult> ObjectApplier::ApplyLocked(const std::string& key) {
  absl::StatusOr<ObjectInfo> source = options_.source->HeadObject(options_.source_bucket, key);
  if (!source.ok() && source.status().code() != absl::StatusCode::kNotFound) {
    return source.status();
  }
  absl::StatusOr<ObjectInfo> target = options_.target->HeadObject(options_.target_bucket, key);
  if (!target.ok() && target.status().code() != absl::StatusCode::kNotFound) {
    return target.status();
  }
  if (!source.ok()) {  // no current version at the source
    if (!target.ok()) return ApplyResult{.outcome = ApplyOutcome::kAlreadyEqual};
    FERRY_RETURN_IF_ERROR(options_.target->DeleteObject(options_.target_bucket, key).status());
    return ApplyResult{.outcome = ApplyOutcome::kDeleted};
  }
  if (target.ok() && HoldsSourceState(*target, *source, key)) {
    return ApplyResult{.outcome = ApplyOutcome::kAlreadyEqual};
  }
  return Copy(key, *source);
}

absl::StatusOr<ApplyResult> ObjectApplier::Copy(const std::string& key, const ObjectInfo& source) {
  PutOptions put{.content_type = source.content_type, .metadata = UserMetadata(source.metadata)};
  put.metadata[kReplicaMetadata] = FormatReplicaMarker(options_.origin_region, source.etag, key);
  // A source whose ETag is its body's MD5: the target checks the body against it
  // (Content-MD5), so nothing is hashed here, and the copy is one PUT however large, streamed
  // from the source's GET above the part size.
  if (EtagIsBodyMd5(source) && source.size <= kMaxPutBytes) {
    put.content_md5 = source.etag;
    if (source.size > options_.part_size) return CopyStreamed(key, source, put);
  } else if (source.size > options_.part_size) {
    return CopyMultipart(key, source, put);
  }

  ObjectInfo got;
  FERRY_ASSIGN_OR_RETURN(std::string body, options_.source->GetObject(options_.source_bucket, key,
                                                                      VersionToRead(source), &got));
  if (got.etag != source.etag || body.size() != source.size) {
    return absl::AbortedError(
        absl::StrCat("source object ", key, " changed between HEAD and GET; apply again"));
  }
  std::string sent_md5 = put.content_md5;
  if (sent_md5.empty()) {  // signed with the body's SHA-256; the ETag is still its MD5
    Digest md5(Digest::kMd5);
    md5.Update(body);
    sent_md5 = md5.HexFinish();
  }
  FERRY_ASSIGN_OR_RETURN(PutResult written,
                         options_.target->PutObject(options_.target_bucket, key, body, put));
  FERRY_RETURN_IF_ERROR(CheckWritten(key, written, sent_md5));
  return ApplyResult{.outcome = ApplyOutcome::kWritten, .bytes = body.size()};
}

absl::StatusOr<ApplyResult> ObjectApplier::CopyStreamed(const std::string& key,
                                                        const ObjectInfo& source,
                                                        const PutOptions& put) {
  BodyPipe pipe(kPipeBytes);
  absl::StatusOr<ObjectInfo> got;
  std::thread reader([&] {
    got = options_.source->GetObjectStreamed(
        options_.source_bucket, key, VersionToRead(source),
        [&](std::string_view chunk) { return pipe.Write(chunk); });
    if (got.ok()) {
      pipe.Close();
    } else {
      pipe.Fail(got.status());
    }
  });
  uint64_t sent = 0;
  const uint64_t half = source.size / 2;
  absl::StatusOr<PutResult> written = options_.target->PutObjectStreamed(
      options_.target_bucket, key, source.size, put,
      [&](char* buffer, size_t capacity) -> absl::StatusOr<size_t> {
        FERRY_ASSIGN_OR_RETURN(size_t n, pipe.Read(buffer, capacity));
        if (sent < half && sent + n >= half) KillPoint("s3.put_half_streamed");
        sent += n;
        return n;
      });
  // Whatever the PUT's outcome, the GET has nothing more to hand over (a source body longer
  // than the HEAD said would otherwise block it on a full pipe).
  pipe.Fail(absl::CancelledError("the PUT ended"));
  reader.join();
  if (!written.ok()) {
    // The GET's failure, when it broke first, says more than the PUT it cut short.
    if (!got.ok() && got.status().code() != absl::StatusCode::kCancelled) return got.status();
    return written.status();
  }
  // The target checked the body against the source's MD5, so it holds the source's content
  // whatever the GET did after the last byte the PUT took (the GET's own ETag need not be
  // compared: a body of another version fails the MD5).
  FERRY_RETURN_IF_ERROR(CheckWritten(key, *written, source.etag));
  return ApplyResult{.outcome = ApplyOutcome::kWritten, .bytes = sent};
}

absl::Status ObjectApplier::CheckWritten(const std::string& key, const PutResult& written,
                                         const std::string& expected_md5) {
  if (written.etag == expected_md5) return absl::OkStatus();
  // A target that ignored the Content-MD5 (or stored other bytes) must not keep the version:
  // its replica marker names the source's ETag, so a later apply would call it equal.
  const std::string version = written.version_id == "null" ? "" : written.version_id;
  absl::Status dropped =
      options_.target->DeleteObject(options_.target_bucket, key, version).status();
  return absl::DataLossError(absl::StrCat(
      "target stored ", key, " with ETag ", written.etag, ", not the MD5 of the source's body (",
      expected_md5, "); the version written was ",
      dropped.ok() ? "removed" : absl::StrCat("not removed: ", dropped.message())));
}

absl::StatusOr<ApplyResult> ObjectApplier::CopyMultipart(const std::string& key,
                                                         const ObjectInfo& source,
                                                         const PutOptions& put) {
  // Uploads of this key left by an earlier copy that died (a SIGKILL between parts) are
  // invisible but hold space: Ferry is the target bucket's only writer, so they are its own.
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> stale,
                         options_.target->ListMultipartUploads(options_.target_bucket, key));
  for (const std::string& id : stale) {
    FERRY_RETURN_IF_ERROR(options_.target->AbortMultipartUpload(options_.target_bucket, key, id));
  }
  FERRY_ASSIGN_OR_RETURN(std::string upload,
                         options_.target->CreateMultipartUpload(options_.target_bucket, key, put));
  std::vector<CompletedPart> parts;
  std::string buffer;
  buffer.reserve(options_.part_size);
  uint64_t copied = 0;
  auto flush = [&]() -> absl::Status {
    const int number = static_cast<int>(parts.size()) + 1;
    FERRY_ASSIGN_OR_RETURN(
        std::string etag,
        options_.target->UploadPart(options_.target_bucket, key, upload, number, buffer));
    parts.push_back({number, std::move(etag)});
    buffer.clear();
    KillPoint("s3.part_uploaded");
    return absl::OkStatus();
  };
  absl::StatusOr<ObjectInfo> got = options_.source->GetObjectStreamed(
      options_.source_bucket, key, VersionToRead(source), [&](std::string_view chunk) {
        while (!chunk.empty()) {
          const size_t room = options_.part_size - buffer.size();
          const size_t take = std::min(room, chunk.size());
          buffer.append(chunk.substr(0, take));
          chunk.remove_prefix(take);
          copied += take;
          if (buffer.size() == options_.part_size) FERRY_RETURN_IF_ERROR(flush());
        }
        return absl::OkStatus();
      });
  absl::Status s = got.status();
  if (s.ok() && (got->etag != source.etag || copied != source.size)) {
    s = absl::AbortedError(
        absl::StrCat("source object ", key, " changed between HEAD and GET; apply again"));
  }
  if (s.ok() && !buffer.empty()) s = flush();
  absl::StatusOr<PutResult> done =
      s.ok() ? options_.target->CompleteMultipartUpload(options_.target_bucket, key, upload, parts)
             : absl::StatusOr<PutResult>(s);
  if (!done.ok()) {
    // Best effort: an upload left behind is invisible and a bucket lifecycle rule reclaims
    // it; the error returned is the copy's.
    (void)options_.target->AbortMultipartUpload(options_.target_bucket, key, upload);
    return done.status();
  }
  FERRY_ASSIGN_OR_RETURN(ObjectInfo written, options_.target->HeadObject(options_.target_bucket,
                                                                         key, done->version_id));
  if (written.size != source.size) {
    return absl::DataLossError(absl::StrCat("target holds ", key, " with ", written.size,
                                            " bytes after a multipart copy of ", source.size));
  }
  return ApplyResult{
      .outcome = ApplyOutcome::kWritten, .bytes = copied, .parts = static_cast<int>(parts.size())};
}

}  // namespace ferry::s3
