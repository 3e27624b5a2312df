#include "engine/daemon/event_pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/base/backoff.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "engine/capture/log_capture_target.h"
#include "engine/log/log_format.h"

namespace ferry {

absl::StatusOr<std::unique_ptr<EventPipeline>> EventPipeline::StartCapture(
    EventPipelineOptions options, DurableLog* outbound, std::unique_ptr<Source> source) {
  std::unique_ptr<EventPipeline> p(new EventPipeline(std::move(options)));
  p->source_ = std::move(source);
  {
    absl::MutexLock lock(&p->mu_);
    p->status_.capturing = true;
  }
  p->worker_ = std::thread([raw = p.get(), outbound] { raw->CaptureLoop(outbound); });
  return p;
}

absl::StatusOr<std::unique_ptr<EventPipeline>> EventPipeline::StartApply(
    EventPipelineOptions options, DurableLog* inbound, std::unique_ptr<EventSink> sink) {
  std::unique_ptr<EventPipeline> p(new EventPipeline(std::move(options)));
  p->sink_ = std::move(sink);
  FERRY_ASSIGN_OR_RETURN(std::optional<uint64_t> cursor, inbound->GetCursor(kEventsAppliedCursor));
  uint64_t next = cursor.value_or(1);
  if (next == 0) next = 1;
  p->applied_next_.store(next);
  p->inbound_ = inbound;
  {
    absl::MutexLock scan(&p->scan_mu_);
    p->scanned_next_ = next;
  }
  {
    absl::MutexLock lock(&p->mu_);
    p->status_.paused = p->options_.start_paused;
    p->status_.target = p->sink_->target_name();
    p->status_.pending_scanned_seq = next;
  }
  p->worker_ = std::thread([raw = p.get(), inbound] { raw->ApplyLoop(inbound); });
  return p;
}

EventPipeline::~EventPipeline() { Stop(); }

void EventPipeline::Stop() {
  stop_.Stop();
  // A paused apply and WaitForApplied wait on mu_ for conditions that read stop_: releasing
  // mu_ has them evaluated again.
  { absl::MutexLock lock(&mu_); }
  if (sink_ && worker_.joinable()) sink_->Cancel();  // a copy in flight must not hold the stop
  if (inbound_ != nullptr) inbound_->WakeWaiters();  // an idle apply waits up to 500 ms
  if (worker_.joinable()) worker_.join();
}

EventPipelineStatus EventPipeline::status() const {
  absl::MutexLock lock(&mu_);
  EventPipelineStatus s = status_;
  s.applied_next_seq = applied_next_.load();
  if (source_) s.source = source_->Health();
  return s;
}

bool EventPipeline::WaitForApplied(uint64_t next_seq, absl::Duration timeout) const {
  // ApplyOnce takes mu_ after each batch's progress is stored: the condition is evaluated then.
  auto applied = [this, next_seq]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return applied_next_.load() >= next_seq || stop_.stopped();
  };
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&applied), timeout);
  return applied_next_.load() >= next_seq;
}

void EventPipeline::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  if (!status_.capturing) status_.paused = paused;
}

void EventPipeline::SetError(const absl::Status& s) {
  if (!s.ok() && options_.on_error) options_.on_error(s);
  absl::MutexLock lock(&mu_);
  status_.last_error = s.ok() ? "" : s.ToString();
}

void EventPipeline::CaptureLoop(DurableLog* outbound) {
  SetCurrentThreadName("events-capture");
  LogCaptureTarget target(outbound, options_.region, options_.epoch, options_.clock);
  Backoff backoff({.min = options_.restart_min, .max = options_.restart_max}, /*seed=*/7);
  while (!stop_.stopped()) {
    absl::Status s = target.Load();
    if (s.ok()) s = source_->Run(target, stop_);
    if (stop_.stopped()) break;
    if (s.ok()) s = absl::InternalError("event source returned without being stopped");
    spdlog::warn("event source: {}", s.ToString());
    SetError(s);
    stop_.WaitFor(backoff.Next());
  }
}

void EventPipeline::CountPending() {
  if (inbound_ == nullptr) return;
  if (absl::Status s = ScanPending(inbound_); !s.ok()) {
    spdlog::warn("event apply: counting what is pending: {}", s.ToString());
  }
}

absl::Status EventPipeline::ScanPending(DurableLog* inbound) {
  absl::MutexLock scan(&scan_mu_);
  const uint64_t from = std::max(scanned_next_, applied_next_.load());
  const LogStats bounds = inbound->stats();
  if (from >= bounds.next_seq || from < bounds.first_seq) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records,
                         inbound->Read(from, kPendingScanRecords, options_.max_batch_bytes * 4));
  EventWeight added;
  for (const LogRecord& r : records) {
    if (r.kind != RecordKind::kSourceEvent) continue;
    v1::SourceEvent e;
    if (!e.ParseFromString(r.payload)) continue;  // apply reports it when it gets there
    const EventWeight w = sink_->Weigh(e);
    added.objects += w.objects;
    added.bytes += w.bytes;
  }
  if (records.empty()) return absl::OkStatus();
  scanned_next_ = records.back().seq + 1;
  absl::MutexLock lock(&mu_);
  status_.objects_pending += added.objects;
  status_.bytes_pending += added.bytes;
  status_.pending_scanned_seq = scanned_next_;
  return absl::OkStatus();
}

absl::Status EventPipeline::ApplyOnce(DurableLog* inbound, bool* idle) {
  uint64_t from = applied_next_.load();
  const LogStats bounds = inbound->stats();
  if (from < bounds.first_seq) {
    return absl::DataLossError(absl::StrCat("events: the inbound log was trimmed to seq ",
                                            bounds.first_seq, " past unapplied seq ", from));
  }
  *idle = from >= bounds.next_seq;
  if (*idle) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records,
                         inbound->Read(from, options_.max_batch_records, options_.max_batch_bytes));
  if (records.empty()) {
    *idle = true;
    return absl::OkStatus();
  }
  std::vector<v1::SourceEvent> events;
  std::vector<std::pair<uint64_t, EventWeight>> weights;  // seq, weight
  for (const LogRecord& r : records) {
    if (r.kind != RecordKind::kSourceEvent) continue;
    v1::SourceEvent e;
    if (!e.ParseFromString(r.payload)) {
      return absl::DataLossError(
          absl::StrCat("events: inbound record ", r.seq, " is not a valid SourceEvent"));
    }
    weights.emplace_back(r.seq, sink_->Weigh(e));
    events.push_back(std::move(e));
  }
  {
    absl::MutexLock lock(&mu_);
    status_.events_pending = events.size();
  }
  if (!events.empty()) FERRY_RETURN_IF_ERROR(sink_->ApplyEvents(events));
  if (options_.on_event_applied) {
    const absl::Time now = options_.clock->Now();
    for (const v1::SourceEvent& e : events) {
      if (e.capture_time_us() > 0) {
        options_.on_event_applied(now - absl::FromUnixMicros(e.capture_time_us()));
      }
    }
  }
  const uint64_t next = records.back().seq + 1;
  FERRY_RETURN_IF_ERROR(inbound->SetCursor(kEventsAppliedCursor, next));
  // Progress and the pending count move together: a scan sees either both or neither.
  absl::MutexLock scan(&scan_mu_);
  EventWeight applied;  // of the events a scan had counted as pending
  for (const auto& [seq, w] : weights) {
    if (seq >= scanned_next_) break;
    applied.objects += w.objects;
    applied.bytes += w.bytes;
  }
  applied_next_.store(next);
  scanned_next_ = std::max(scanned_next_, next);
  absl::MutexLock lock(&mu_);
  status_.events_applied += events.size();
  status_.events_pending = 0;
  status_.objects_pending -= std::min(status_.objects_pending, applied.objects);
  status_.bytes_pending -= std::min(status_.bytes_pending, applied.bytes);
  status_.pending_scanned_seq = scanned_next_;
  status_.last_error.clear();
  return absl::OkStatus();
}

void EventPipeline::ApplyLoop(DurableLog* inbound) {
  SetCurrentThreadName("events-apply");
  Backoff backoff({.min = options_.restart_min, .max = options_.restart_max}, /*seed=*/11);
  while (true) {
    const uint64_t wakeups = inbound->wakeups();  // before the check: Stop() ends the idle wait
    if (stop_.stopped()) break;
    // Counted before the pause check: what is pending while paused is what an operator asks.
    CountPending();
    {
      absl::MutexLock lock(&mu_);
      if (status_.paused) {
        // Counted again every paused_recount; a resume or Stop() ends the wait at once.
        auto resumed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return !status_.paused || stop_.stopped();
        };
        mu_.AwaitWithTimeout(absl::Condition(&resumed), options_.paused_recount);
        continue;
      }
    }
    bool idle = false;
    absl::Status s = ApplyOnce(inbound, &idle);
    if (!s.ok()) {
      spdlog::warn("event apply: {}", s.ToString());
      SetError(s);
      stop_.WaitFor(backoff.Next());
      continue;
    }
    backoff.Reset();
    if (idle) {
      inbound->WaitForRecord(applied_next_.load(), options_.clock->Now() + absl::Milliseconds(500),
                             *options_.clock, wakeups);
    }
  }
}

}  // namespace ferry
