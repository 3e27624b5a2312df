#include "connectors/s3/bucket_source.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "connectors/s3/kafka_notice_reader.h"
#include "connectors/s3/replica_marker.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {
namespace {

// The first line of a dead letter's reason, at most 200 bytes, for status.
std::string FirstLine(absl::string_view text) {
  text = text.substr(0, text.find('\n'));
  if (text.size() > 200) return absl::StrCat(text.substr(0, 200), "...");
  return std::string(text);
}

// A dead letter keeps this much of the record that could not be read.
constexpr size_t kDeadLetterBytes = 4096;

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

v1::SourceEvent DeadLetter(const std::string& text) {
  v1::SourceEvent e;
  e.set_type(kDeadLetterType);
  e.set_body(text.substr(0, kDeadLetterBytes));
  return e;
}

}  // namespace

BucketSource::BucketSource(BucketSourceOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()) {}

BucketSource::~BucketSource() {
  if (http_) http_->Stop();
}

absl::StatusOr<std::unique_ptr<BucketSource>> BucketSource::Create(BucketSourceOptions options) {
  if (options.client == nullptr || options.bucket.empty()) {
    return absl::InvalidArgumentError("bucket source needs a client and a bucket");
  }
  if (options.list_page_keys < 1 || options.list_page_keys > 1000) {
    return absl::InvalidArgumentError("list_page_keys must be 1-1000");
  }
  // A client of its own, with the given one's options: Run's stop cancels it (see Run) without
  // cancelling the caller's.
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> own, S3Client::Open(options.client->options()));
  options.client = std::shared_ptr<S3Client>(std::move(own));
  std::unique_ptr<BucketSource> source(new BucketSource(std::move(options)));
  if (!source->options_.webhook_listen.empty()) {
    FERRY_ASSIGN_OR_RETURN(source->http_,
                           HttpServer::Start({.listen_address = source->options_.webhook_listen,
                                              .max_body_bytes = kMaxNotificationBytes}));
    BucketSource* self = source.get();
    source->http_->HandleOthers([self](const HttpRequest& r) { return self->OnPush(r); });
  }
  return source;
}

BucketSourceCounters BucketSource::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

SourceHealth BucketSource::Health() const {
  absl::MutexLock lock(&mu_);
  SourceHealth h;
  h.connected = connected_;
  h.last_error = last_error_;
  h.upstream_name = options_.bucket;
  h.dead_letters = counters_.dead_letters;
  if (counters_.dead_letters > 0) {
    h.warnings.push_back(absl::StrCat(
        counters_.dead_letters,
        " notification record(s) could not be read and were kept in the log as dead letters "
        "(type s3.dead_letter, with their first bytes); the last: ",
        last_dead_letter_,
        ". Nothing was skipped silently: a backfill (at the next start, or every "
        "objects.backfill_interval_seconds) finds the changes they stood for"));
  }
  return h;
}

void BucketSource::SetError(const absl::Status& s) {
  absl::MutexLock lock(&mu_);
  connected_ = s.ok();
  last_error_ = s.ok() ? "" : s.ToString();
}

bool BucketSource::TokenMatches(const HttpRequest& request) const {
  const std::string& token = options_.webhook_token;
  if (token.empty()) return true;
  auto auth = request.headers.find("authorization");
  if (auth != request.headers.end() && absl::StartsWith(auth->second, "Bearer ") &&
      ConstantTimeEquals(auth->second.substr(7), token)) {
    return true;
  }
  for (absl::string_view part : absl::StrSplit(request.query, '&')) {
    if (absl::StartsWith(part, "token=") &&
        ConstantTimeEquals(std::string(part.substr(6)), token)) {
      return true;
    }
  }
  return ConstantTimeEquals(request.path, "/" + token);
}

HttpResponse BucketSource::OnPush(const HttpRequest& request) {
  if (request.method != "POST") return {405, "POST bucket notifications here\n"};
  if (!TokenMatches(request)) return {401, "wrong or missing token\n"};
  CaptureTarget* target;
  {
    absl::MutexLock lock(&mu_);
    if (target_ == nullptr) return {503, "not capturing\n"};
    target = target_;
    ++pushes_in_flight_;
  }
  HttpResponse response;
  absl::StatusOr<ParsedNotification> parsed = ParseNotification(request.body);
  absl::Status s;
  if (!parsed.ok()) {
    s = target->AppendEvents(
        {DeadLetter(absl::StrCat(parsed.status().message(), "\n", request.body))}, {});
    if (s.ok()) {
      absl::MutexLock lock(&mu_);
      ++counters_.dead_letters;
      last_dead_letter_ = FirstLine(parsed.status().message());
    }
    response = s.ok() ? HttpResponse{400, absl::StrCat(parsed.status().message(), "\n")}
                      : HttpResponse{503, absl::StrCat(s.message(), "\n")};
  } else {
    std::vector<BucketNotice> ours;
    std::vector<std::string> dead;
    for (const RejectedRecord& r : parsed->rejected) {
      dead.push_back(absl::StrCat("record ", r.index, ": ", r.reason));
    }
    for (BucketNotice& n : parsed->notices) {
      if (n.bucket != options_.bucket) {
        dead.push_back(absl::StrCat("notice for bucket '", n.bucket, "', not '", options_.bucket,
                                    "': key '", n.key, "'"));
      } else {
        ours.push_back(std::move(n));
      }
    }
    {
      absl::MutexLock lock(&mu_);
      counters_.notices += parsed->notices.size();
    }
    s = CaptureNotices(*target, ours, "webhook", std::move(dead));
    response = s.ok() ? HttpResponse{200, "durable\n"}
                      : HttpResponse{503, absl::StrCat(s.message(), "\n")};
  }
  absl::MutexLock lock(&mu_);
  --pushes_in_flight_;
  return response;
}

absl::Status BucketSource::CaptureNotices(
    CaptureTarget& target, const std::vector<BucketNotice>& notices, const std::string& cause,
    std::vector<std::string> dead_letters,
    std::vector<std::pair<std::string, std::string>> source_state) {
  std::vector<v1::SourceEvent> events;
  uint64_t own = 0;
  for (const BucketNotice& notice : notices) {
    ObjectEvent event;
    event.set_format(1);
    event.set_bucket(options_.bucket);
    event.set_key(notice.key);
    event.set_cause(cause);
    event.set_sequencer(notice.sequencer);
    absl::StatusOr<ObjectInfo> truth = options_.client->HeadObject(options_.bucket, notice.key);
    if (truth.ok()) {
      if (ReadReplicaMarker(truth->metadata, notice.key)) {
        ++own;  // Ferry's apply wrote this state: never captured again
        continue;
      }
      event.set_kind(ObjectEvent::PUT);
      event.set_version_id(truth->version_id);
      event.set_etag(truth->etag);
      event.set_size(truth->size);
      event.set_content_type(truth->content_type);
      for (const auto& [k, v] : UserMetadata(truth->metadata)) (*event.mutable_metadata())[k] = v;
    } else if (truth.status().code() == absl::StatusCode::kNotFound) {
      event.set_kind(ObjectEvent::DELETE);
    } else {
      SetError(truth.status());
      return truth.status();
    }
    v1::SourceEvent e;
    e.set_type(kObjectEventType);
    e.set_event_time_us(notice.event_time_us);
    if (!event.SerializeToString(e.mutable_body())) {
      return absl::InternalError("cannot serialize an object event");
    }
    events.push_back(std::move(e));
  }
  const uint64_t dead = dead_letters.size();
  const std::string last_dead = dead > 0 ? dead_letters.back() : "";
  for (const std::string& d : dead_letters) events.push_back(DeadLetter(d));
  const uint64_t made = events.size() - dead;
  if (!events.empty() || !source_state.empty()) {
    absl::Status s = target.AppendEvents(std::move(events), std::move(source_state));
    if (!s.ok()) {
      SetError(s);
      return s;
    }
  }
  SetError(absl::OkStatus());
  absl::MutexLock lock(&mu_);
  counters_.own_writes_skipped += own;
  counters_.dead_letters += dead;
  if (dead > 0) last_dead_letter_ = FirstLine(last_dead);
  counters_.events += made;
  return absl::OkStatus();
}

absl::Status BucketSource::Backfill(CaptureTarget& target, const StopSignal& stop) {
  FERRY_ASSIGN_OR_RETURN(std::string token, target.GetSourceState(backfill_token_key()));
  if (token == "-") token.clear();  // "-": the last backfill completed
  do {
    if (stop.stopped()) return absl::OkStatus();
    absl::StatusOr<ListPage> page =
        options_.client->ListObjectsV2(options_.bucket, "", token, options_.list_page_keys);
    if (!page.ok()) {
      SetError(page.status());
      return page.status();
    }
    std::vector<v1::SourceEvent> events;
    for (const ListedObject& o : page->objects) {
      ObjectEvent event;
      event.set_format(1);
      event.set_bucket(options_.bucket);
      event.set_key(o.key);
      event.set_kind(ObjectEvent::PUT);
      event.set_etag(o.etag);
      event.set_size(o.size);
      event.set_cause("backfill");
      v1::SourceEvent e;
      e.set_type(kObjectEventType);
      event.SerializeToString(e.mutable_body());
      events.push_back(std::move(e));
    }
    token = page->next_continuation_token;
    std::vector<std::pair<std::string, std::string>> state = {
        {backfill_token_key(), token.empty() ? "-" : token}};
    const uint64_t made = events.size();
    if (token.empty()) {
      state.emplace_back(backfill_done_key(), absl::StrCat(absl::ToUnixMicros(clock_->Now())));
      v1::SourceEvent reconcile;
      reconcile.set_type(kReconcileType);
      reconcile.set_body(options_.bucket);
      events.push_back(std::move(reconcile));
    }
    absl::Status s = target.AppendEvents(std::move(events), std::move(state));
    if (!s.ok()) {
      SetError(s);
      return s;
    }
    SetError(absl::OkStatus());
    absl::MutexLock lock(&mu_);
    counters_.events += made;
    ++counters_.backfill_pages;
    if (token.empty()) ++counters_.backfills_completed;
  } while (!token.empty());
  return absl::OkStatus();
}

absl::Status BucketSource::Run(CaptureTarget& target, const StopSignal& stop) {
  {
    absl::MutexLock lock(&mu_);
    target_ = &target;
  }
  // The Kafka reader runs beside the backfill; either one's error stops both.
  StopSignal inner;
  std::unique_ptr<KafkaNoticeReader> kafka;
  std::thread kafka_thread;
  absl::Status kafka_status;
  if (!options_.kafka.brokers.empty()) {
    absl::StatusOr<std::unique_ptr<KafkaNoticeReader>> reader =
        KafkaNoticeReader::Create(options_.kafka, this);
    if (!reader.ok()) return reader.status();
    kafka = std::move(*reader);
    kafka_thread = std::thread([&] {
      kafka_status = kafka->Run(target, inner);
      if (!kafka_status.ok()) inner.Stop();
    });
  }
  std::thread forward([&inner, &stop, client = options_.client] {
    // Stops `inner` when the owner stops; returns when inner stops for any reason. The owner's
    // stop also cancels the client: a call stalled on an unreachable bucket (a listing, a
    // notice's HEAD) must not hold a stop, a role change or a SIGTERM drain for its timeouts
    // and retries. The owner runs this source no more after its stop.
    while (!inner.WaitFor(absl::Milliseconds(100))) {
      if (stop.stopped()) {
        client->Cancel();
        inner.Stop();
      }
    }
  });
  absl::Status s = Backfill(target, inner);
  while (s.ok() && !inner.stopped()) {
    if (options_.backfill_interval <= absl::ZeroDuration()) {
      inner.WaitFor(absl::Seconds(1));
      continue;
    }
    if (inner.WaitFor(options_.backfill_interval)) break;
    s = Backfill(target, inner);
  }
  inner.Stop();
  forward.join();
  if (kafka_thread.joinable()) kafka_thread.join();
  if (s.ok()) s = kafka_status;
  absl::MutexLock lock(&mu_);
  target_ = nullptr;
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return pushes_in_flight_ == 0; };
  mu_.Await(absl::Condition(&idle));
  return s;
}

}  // namespace ferry::s3
