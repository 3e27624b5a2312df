// S3Client: the S3 calls Ferry's object path makes, over libcurl, signed with SigV4 (sigv4.h),
// path-style addressing (http://host:port/bucket/key), against any S3-compatible endpoint
// (tested against Ceph's radosgw, which checks signatures).
//
// Errors (engine/base/status_macros.h): kUnavailable after the retries ran out on a transport
// error, a 5xx or SlowDown (retry later); kAborted for a body the server found different from
// its signed hash (BadDigest, XAmzContentSHA256Mismatch: corrupted on the way) or a streamed
// body that ended short (send it again); kNotFound for NoSuchKey / NoSuchBucket /
// NoSuchUpload and a HEAD of a missing key; kPermissionDenied for a refused signature or
// access (an operator must fix the credentials); kFailedPrecondition for a failed condition
// (412) or a conflict (409); kInvalidArgument for a request Ferry should not have made (an
// empty or over-long key, a header value with a line break) or that S3 calls malformed (400).
// Messages name the call, the bucket, the key and S3's error code.
//
// Retries: transport errors, 500/502/503/504 and SlowDown are retried up to max_attempts
// times with Ferry's backoff (engine/base/backoff.h), sleeping on the injected clock. A
// streamed GET is retried only while no byte of it reached the callback, a streamed PUT only
// while its producer gave no byte.
//
// Connections are reused: each thread's call takes an idle curl handle from a pool (keeping
// its connection alive) and gives it back. Thread-safe.
//
// Example:
//   auto client = S3Client::Open({.endpoint = "http://127.0.0.1:7480",
//                                 .credentials = {.access_key = a, .secret_key = s}});
//   FERRY_ASSIGN_OR_RETURN(PutResult put, (*client)->PutObject("bucket", "a b+c", "body", {}));
//   FERRY_ASSIGN_OR_RETURN(ObjectInfo head, (*client)->HeadObject("bucket", "a b+c"));
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "connectors/s3/sigv4.h"
#include "engine/base/backoff.h"
#include "engine/base/clock.h"

namespace ferry::s3 {

struct S3ClientOptions {
  // "http://host:port" or "https://host:port", no path.
  std::string endpoint;
  std::string signing_region = "us-east-1";
  Credentials credentials;
  // PEM bundle for https endpoints; "" uses the system's.
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(5);
  // A request whose transfer stays under 1 KiB/s this long is abandoned (and retried); large
  // bodies are bounded by progress, not by a total time.
  absl::Duration stall_timeout = absl::Seconds(30);
  // Tries of one call, the first included.
  int max_attempts = 5;
  BackoffOptions backoff{.min = absl::Milliseconds(50), .max = absl::Seconds(5)};
  // Time for the signature's date and the backoff's sleeps; not owned. Null: the real clock.
  Clock* clock = nullptr;
};

// What S3 says about one version of a key.
struct ObjectInfo {
  std::string etag;  // without quotes
  uint64_t size = 0;
  std::string version_id;  // "" (or "null") on an unversioned bucket
  std::string content_type;
  std::map<std::string, std::string> metadata;  // x-amz-meta-* without the prefix, lowercase
  std::string last_modified;                    // as the server wrote it
  // x-amz-server-side-encryption ("AES256", "aws:kms", ...), or "SSE-C" when the object is
  // encrypted with a customer's key; "" when not encrypted.
  std::string encryption;
};

struct PutOptions {
  std::string content_type;  // "" lets the server choose
  std::map<std::string, std::string> metadata;
  // Hex MD5 of the body (a source's single-part ETag). Set: sent as Content-MD5, which the
  // server checks (a body that differs is refused with kAborted and nothing is stored), and
  // the body is not hashed for the signature (UNSIGNED-PAYLOAD). PutObject and
  // PutObjectStreamed only; kInvalidArgument unless 32 hex digits.
  std::string content_md5;
};

struct PutResult {
  std::string etag;
  std::string version_id;
};

struct DeleteResult {
  std::string version_id;      // of the delete marker made (versioned bucket), or of the version
  bool delete_marker = false;  // a delete marker was made or deleted
};

struct ListedObject {
  std::string key;
  std::string etag;
  uint64_t size = 0;
  std::string last_modified;
};

struct ListPage {
  std::vector<ListedObject> objects;
  std::string next_continuation_token;  // "" when this was the last page
};

struct ListedVersion {
  std::string key;
  std::string version_id;
  bool is_latest = false;
  bool delete_marker = false;
  std::string etag;
  uint64_t size = 0;
  std::string last_modified;
};

struct VersionsPage {
  std::vector<ListedVersion> versions;  // versions and delete markers, in the server's order
  bool truncated = false;
  std::string next_key_marker;
  std::string next_version_id_marker;
};

struct CompletedPart {
  int number = 0;
  std::string etag;
};

class S3Client {
 public:
  // kInvalidArgument for an endpoint that is not http(s)://host[:port] or empty credentials.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<S3Client>> Open(
      const S3ClientOptions& options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // OK when the bucket exists and is ours already.
  [[nodiscard]] absl::Status CreateBucket(const std::string& bucket);
  [[nodiscard]] absl::Status SetVersioning(const std::string& bucket, bool enabled);
  // "Enabled", "Suspended" or "" (never enabled).
  [[nodiscard]] absl::StatusOr<std::string> GetVersioning(const std::string& bucket);

  [[nodiscard]] absl::StatusOr<PutResult> PutObject(const std::string& bucket,
                                                    const std::string& key, std::string_view body,
                                                    const PutOptions& options);
  // A PUT of `size` bytes that `read(buffer, capacity)` supplies as the transfer goes (bytes
  // copied, 1 to capacity), so the body is never whole in memory. Needs options.content_md5:
  // a streamed body cannot be hashed for the signature before it is sent. An error from `read`
  // aborts the transfer and is returned, as does a body that ends before `size` bytes. Not
  // retried once a byte was read: the caller starts again with a new body.
  [[nodiscard]] absl::StatusOr<PutResult> PutObjectStreamed(
      const std::string& bucket, const std::string& key, uint64_t size, const PutOptions& options,
      const std::function<absl::StatusOr<size_t>(char*, size_t)>& read);
  // kNotFound when the key (or that version) does not exist or is a delete marker.
  [[nodiscard]] absl::StatusOr<ObjectInfo> HeadObject(const std::string& bucket,
                                                      const std::string& key,
                                                      const std::string& version_id = "");
  [[nodiscard]] absl::StatusOr<std::string> GetObject(const std::string& bucket,
                                                      const std::string& key,
                                                      const std::string& version_id = "",
                                                      ObjectInfo* info = nullptr);
  // Streams the body to `on_data` in chunks as they arrive (never whole in memory). An error
  // from on_data aborts the transfer and is returned.
  [[nodiscard]] absl::StatusOr<ObjectInfo> GetObjectStreamed(
      const std::string& bucket, const std::string& key, const std::string& version_id,
      const std::function<absl::Status(std::string_view)>& on_data);
  // Without version_id: deletes the key (a delete marker on a versioned bucket). With it:
  // removes that version (or delete marker) for good.
  [[nodiscard]] absl::StatusOr<DeleteResult> DeleteObject(const std::string& bucket,
                                                          const std::string& key,
                                                          const std::string& version_id = "");
  [[nodiscard]] absl::StatusOr<ListPage> ListObjectsV2(const std::string& bucket,
                                                       const std::string& prefix,
                                                       const std::string& continuation_token,
                                                       int max_keys = 1000);
  [[nodiscard]] absl::StatusOr<VersionsPage> ListObjectVersions(
      const std::string& bucket, const std::string& prefix, const std::string& key_marker,
      const std::string& version_id_marker, int max_keys = 1000);

  // Multipart upload: the object appears only when Complete succeeds; Abort drops the parts.
  [[nodiscard]] absl::StatusOr<std::string> CreateMultipartUpload(const std::string& bucket,
                                                                  const std::string& key,
                                                                  const PutOptions& options);
  [[nodiscard]] absl::StatusOr<std::string> UploadPart(const std::string& bucket,
                                                       const std::string& key,
                                                       const std::string& upload_id, int number,
                                                       std::string_view body);
  [[nodiscard]] absl::StatusOr<PutResult> CompleteMultipartUpload(
      const std::string& bucket, const std::string& key, const std::string& upload_id,
      const std::vector<CompletedPart>& parts);
  [[nodiscard]] absl::Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                                  const std::string& upload_id);
  // Upload ids of the multipart uploads in progress whose key is exactly `key` (first 1,000).
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> ListMultipartUploads(
      const std::string& bucket, const std::string& key);

  // Bucket notifications over HTTP push, as Ceph RGW takes them (its SNS-compatible topic API
  // on the endpoint's root): a topic pushing to `push_endpoint` (returns the topic's ARN), and
  // the bucket's notification configuration sending every ObjectCreated and ObjectRemoved
  // event to it. For tests and for operators' setup scripts; Ferry itself never changes a
  // bucket's notification configuration.
  [[nodiscard]] absl::StatusOr<std::string> CreateTopic(const std::string& name,
                                                        const std::string& push_endpoint);
  [[nodiscard]] absl::Status PutBucketNotification(const std::string& bucket, const std::string& id,
                                                   const std::string& topic_arn);

  const S3ClientOptions& options() const { return options_; }
  // Requests sent (each attempt counts), for tests and metrics.
  uint64_t requests_sent() const;

  // Ends every call in flight within about a second (a transfer stalled on an unreachable
  // endpoint included) and makes every later call fail at once, with kCancelled: what an owner
  // that stops calls from another thread (EventSink::Cancel). Thread-safe; for good.
  void Cancel() { cancelled_.store(true); }

  // The S3 limit on a key's length, in bytes.
  static constexpr size_t kMaxKeyBytes = 1024;

  struct Request;   // defined in s3_client.cc
  struct Response;  // defined in s3_client.cc

 private:
  explicit S3Client(const S3ClientOptions& options);
  absl::StatusOr<Response> Send(const Request& request);
  absl::StatusOr<Response> SendOnce(const Request& request, void* handle, bool* delivered);
  void* TakeHandle();
  void GiveBack(void* handle);

  // Constant after Open.
  const S3ClientOptions options_;
  Clock* clock_;
  std::string host_;  // Host header: "host[:port]"

  std::atomic<bool> cancelled_{false};
  mutable absl::Mutex mu_;
  std::vector<void*> idle_ ABSL_GUARDED_BY(mu_);  // CURL* handles, connections kept alive
  uint64_t requests_sent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seed_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace ferry::s3
