// BucketSource: the object path's ferry::Source. It captures which keys of one bucket changed
// into the outbound log as SourceEvents of type "s3.object" (object_event.proto); the peer
// applies each by making its bucket's key equal this bucket's (object_applier.h).
//
// Ways in (docs/objects.md):
//   - HTTP push (webhook): RGW and MinIO POST their notification records to
//     webhook_listen (any path). Each notice is a hint: the source reads the bucket's truth
//     for the key (HEAD) and logs that; the POST is answered 200 only once those events are
//     durable in the log (invariant 1), 503 when the bucket or the log failed (the sender may
//     retry; the backfill covers a sender that does not), 401 for a wrong token, 413 over the
//     size bound, 400 for a notification that cannot be read. Records that cannot be read,
//     and records for another bucket, are kept in the log as "s3.dead_letter" events (with
//     the reason and the record's first bytes) and skipped, never lost silently.
//   - A listing backfill (ListObjectsV2) at every start (a restart is a gap in the pushes),
//     and every backfill_interval when set. Each page is logged with the continuation token
//     in the same atomic append (CaptureTarget::AppendEvents), so a restart resumes from the
//     last durable page. Listed objects are logged as hints without a HEAD (the applier reads
//     the truth anyway).
//   - Kafka (kafka_notice_reader.h), when `kafka` is set: a consumer in a group beside the
//     webhook, its offsets durable in the log with the events.
// No loops: an object whose current version carries Ferry's replica marker for its key was
// written by Ferry's apply, and a notice for it is dropped (counted as own_writes_skipped).
//
// Thread safety: Run() runs on the capture thread; the webhook's handlers on the HTTP
// server's threads; Health() and counters() from anywhere.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "connectors/s3/kafka_options.h"
#include "connectors/s3/notification.h"
#include "connectors/s3/object_event.pb.h"
#include "connectors/s3/s3_client.h"
#include "engine/api/source.h"
#include "engine/http/http_server.h"

namespace ferry::s3 {

using ObjectEvent = ::ferry::objects::v1::ObjectEvent;

inline constexpr char kObjectEventType[] = "s3.object";
inline constexpr char kDeadLetterType[] = "s3.dead_letter";
// Logged after the last page of a backfill: the applier then also looks at every key the
// target holds, so a delete whose notice was lost is applied too (the listing of the source
// cannot show it). Body: the bucket's name.
inline constexpr char kReconcileType[] = "s3.reconcile";

struct BucketSourceOptions {
  // Its options make the source's own client (Run's stop cancels that one: a call stalled on an
  // unreachable bucket never holds a stop).
  std::shared_ptr<S3Client> client;
  std::string bucket;
  // HOST:PORT of the webhook listener ("127.0.0.1:0" picks a port); "" for none.
  std::string webhook_listen;
  // When set, a push must carry it: "Authorization: Bearer TOKEN", a "token=TOKEN" query, or
  // a path "/TOKEN" (RGW's push endpoint cannot set headers).
  std::string webhook_token;
  // Notifications from Kafka; brokers "" for none.
  KafkaNoticeOptions kafka;
  // Backfill again this long after the last one ended; zero: only at start.
  absl::Duration backfill_interval = absl::ZeroDuration();
  int list_page_keys = 1000;
  Clock* clock = nullptr;  // not owned; null: the real clock
};

struct BucketSourceCounters {
  uint64_t notices = 0;             // notices read from pushes
  uint64_t dead_letters = 0;        // records kept as dead letters
  uint64_t own_writes_skipped = 0;  // notices for Ferry's own writes
  uint64_t events = 0;              // object events made durable
  uint64_t backfill_pages = 0;
  uint64_t backfills_completed = 0;
};

class BucketSource final : public Source {
 public:
  // Starts the webhook listener (answering 503 until Run() starts). kInvalidArgument for
  // missing options, kUnavailable when the listener cannot bind.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BucketSource>> Create(
      BucketSourceOptions options);
  ~BucketSource() override;

  absl::Status Run(CaptureTarget& target, const StopSignal& stop) override;
  SourceHealth Health() const override;

  const std::string& bucket() const { return options_.bucket; }
  // The webhook's bound port (0 when there is no webhook).
  int webhook_port() const { return http_ ? http_->port() : 0; }
  BucketSourceCounters counters() const;

  // Reads the truth of each notice's key and appends the events (and `dead_letters`, each
  // "reason\nrecord", and `source_state`, e.g. Kafka offsets) durably in one append. Used by
  // every way in. Errors: the bucket's or the log's; nothing of this call is durable then.
  [[nodiscard]] absl::Status CaptureNotices(
      CaptureTarget& target, const std::vector<BucketNotice>& notices, const std::string& cause,
      std::vector<std::string> dead_letters,
      std::vector<std::pair<std::string, std::string>> source_state = {});

  // The source-state keys of the backfill (for tests and status).
  std::string backfill_token_key() const { return "s3/" + options_.bucket + "/backfill_token"; }
  std::string backfill_done_key() const { return "s3/" + options_.bucket + "/backfill_done_us"; }

 private:
  explicit BucketSource(BucketSourceOptions options);
  HttpResponse OnPush(const HttpRequest& request);
  bool TokenMatches(const HttpRequest& request) const;
  absl::Status Backfill(CaptureTarget& target, const StopSignal& stop);
  void SetError(const absl::Status& s);

  const BucketSourceOptions options_;
  Clock* const clock_;
  std::unique_ptr<HttpServer> http_;

  mutable absl::Mutex mu_;
  CaptureTarget* target_ ABSL_GUARDED_BY(mu_) = nullptr;  // set while Run() runs
  int pushes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;         // Run() returns once none uses target_
  BucketSourceCounters counters_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  std::string last_dead_letter_ ABSL_GUARDED_BY(mu_);  // its first line, cut
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::s3
