#include "engine/replication/shipper.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "engine/replication/batch_codec.h"
#include "engine/replication/stream_format.h"
#include "proto/replication.grpc.pb.h"

namespace ferry::replication {
namespace {

using RW = grpc::ClientReaderWriter<ferry::v1::ShipperFrame, ferry::v1::ReceiverFrame>;

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::string NewLogId() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  return absl::StrFormat("%016x%016x", rng(), rng());
}

}  // namespace

// One connection. Fields are guarded by Shipper::mu_ except `context` and `rw`, which gRPC
// makes safe for one reader thread and one writer thread, plus TryCancel from the supervisor.
struct Shipper::Session {
  grpc::ClientContext context;
  std::unique_ptr<RW> rw;
  absl::Time started;

  bool hello_sent = false;
  bool welcomed = false;
  bool broken = false;       // a Write failed: the stream's status says why
  bool reader_done = false;  // Read returned false
  bool made_progress = false;
  absl::Status error;  // the first local or peer-reported error; wins over the stream's status
  uint64_t next_to_send = 0;
  absl::Time last_send = absl::InfinitePast();
  absl::Time last_progress = absl::InfinitePast();  // a ShipperProgress was sent
  // When the oldest thing still unacknowledged (a batch or a Ping) was sent, or the last ack
  // progress after it; InfiniteFuture when nothing is awaited.
  absl::Time awaiting_since = absl::InfiniteFuture();
  bool ping_outstanding = false;
};

Shipper::Shipper(const ShipperOptions& options, DurableLog* outbound, std::string log_id,
                 uint64_t acked)
    : options_(options),
      outbound_(outbound),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      log_id_(std::move(log_id)) {
  absl::MutexLock lock(&mu_);
  paused_ = options.start_paused;
  stats_.paused = paused_;
  stats_.acked_next_seq = acked;
  stats_.shipped_next_seq = acked;
  persisted_acked_ = acked;
  observed_next_ = acked;
}

Shipper::~Shipper() { Stop(); }

absl::StatusOr<std::unique_ptr<Shipper>> Shipper::Start(const ShipperOptions& options,
                                                        DurableLog* outbound) {
  if (outbound == nullptr) return absl::InvalidArgumentError("shipper: no outbound log");
  if (options.region.empty()) return absl::InvalidArgumentError("shipper: region is empty");
  if (!options.epoch) return absl::InvalidArgumentError("shipper: epoch is required");
  if (options.peer_address.empty()) {
    return absl::InvalidArgumentError("shipper: peer_address is empty");
  }
  if (options.window_bytes == 0 || options.max_batch_bytes == 0 || options.max_batch_records == 0 ||
      options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError(
        "shipper: window_bytes, max_batch_bytes and max_batch_records must be positive and "
        "max_message_bytes at least 1024");
  }
  if (options.max_message_bytes > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError("shipper: max_message_bytes exceeds 2 GiB");
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> id, outbound->GetState(kLogIdState));
  if (!id.has_value()) {
    AppendRequest request;
    request.state.emplace_back(kLogIdState, NewLogId());
    FERRY_RETURN_IF_ERROR(
        Annotate(outbound->Append(request).status(), "shipper: persisting the log_id"));
    id = request.state.front().second;
    spdlog::info("replication: outbound log {} has the new log_id {}", outbound->options().path,
                 *id);
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<uint64_t> acked, outbound->GetCursor(kAckedCursor));
  FERRY_ASSIGN_OR_RETURN(std::optional<uint64_t> applied, outbound->GetCursor(kPeerAppliedCursor));
  std::unique_ptr<Shipper> shipper(
      new Shipper(options, outbound, *id, acked.value_or(outbound->first_seq())));
  {
    absl::MutexLock lock(&shipper->mu_);
    shipper->stats_.peer_applied_seq = applied.value_or(0);
    shipper->persisted_applied_ = applied.value_or(0);
  }
  shipper->run_thread_ = std::thread([s = shipper.get()] { s->Run(); });
  return shipper;
}

void Shipper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_requested_.Notify();
    }
    cv_.SignalAll();
    outbound_->WakeWaiters();  // the writer may wait for the next record (up to poll_slice)
  }
  // Only the first caller finds the thread joinable; others return once it has been joined
  // (Stop is normally called once, by the owner).
  absl::MutexLock join_lock(&join_mu_);
  if (run_thread_.joinable()) {
    run_thread_.join();
    PersistCursors(/*force=*/true);
  }
}

void Shipper::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  if (paused_ != paused) {
    spdlog::info("replication: shipping to {} {}", options_.peer_address,
                 paused ? "paused" : "resumed");
  }
  paused_ = paused;
  stats_.paused = paused;
  cv_.SignalAll();
}

absl::Status Shipper::TrimAcknowledged(uint64_t keep_records) {
  uint64_t acked;
  {
    absl::MutexLock lock(&mu_);
    acked = stats_.acked_next_seq;
  }
  if (acked <= keep_records + 1) return absl::OkStatus();
  return outbound_->TrimBelow(acked - keep_records);
}

std::string PeerApplyReport::Cut(const std::string& text) {
  if (text.size() <= kMaxText) return text;
  size_t n = kMaxText;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return text.substr(0, n) + "...";
}

PeerApplyReport PeerApplyReport::From(const ferry::v1::PeerApplyState& state) {
  PeerApplyReport r;
  r.known = true;
  for (const auto& t : state.stopped_tables()) {
    if (r.stopped_tables.size() >= kMaxTables) break;
    r.stopped_tables.push_back({Cut(t.table()), Cut(t.reason()), t.seq()});
  }
  r.stopped_tables_total =
      std::max<uint64_t>(state.stopped_tables_total(), state.stopped_tables_size());
  r.conflicts = state.conflicts();
  r.last_error = Cut(state.last_error());
  r.failed = state.failed();
  return r;
}

bool Shipper::WaitForAck(uint64_t seq, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  while (stats_.acked_next_seq < seq) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return stats_.acked_next_seq >= seq;
}

void Shipper::ObserveLog() const {
  const uint64_t next = outbound_->next_seq();
  if (next <= observed_next_) return;
  if (stats_.acked_next_seq >= observed_next_) seen_.clear();  // every older range is acked
  seen_.emplace_back(observed_next_, clock_->Now());
  observed_next_ = next;
}

void Shipper::FillProgress(ferry::v1::ShipperProgress& progress) const {
  ObserveLog();
  const uint64_t acked = stats_.acked_next_seq;
  progress.set_outbound_next_seq(outbound_->next_seq());
  absl::StatusOr<uint64_t> bytes = outbound_->PayloadBytesFrom(std::max<uint64_t>(acked, 1));
  progress.set_unacked_bytes(bytes.ok() ? *bytes : 0);
  if (acked < observed_next_ && !seen_.empty()) {
    progress.set_oldest_unacked_us(absl::ToUnixMicros(seen_.front().second));
  }
}

ShipperStatus Shipper::status() const {
  ShipperStatus s;
  uint64_t inflight_bytes = 0;
  {
    absl::MutexLock lock(&mu_);
    ObserveLog();
    s = stats_;
    inflight_bytes = inflight_bytes_;
    s.log_next_seq = outbound_->next_seq();
    s.unacked_records = s.log_next_seq > s.acked_next_seq ? s.log_next_seq - s.acked_next_seq : 0;
    if (s.acked_next_seq < observed_next_ && !seen_.empty()) {
      s.unacked_age = std::max(absl::ZeroDuration(), clock_->Now() - seen_.front().second);
    }
  }
  // Read outside the lock: it may read up to 1 MiB of records back.
  if (s.unacked_records > 0) {
    absl::StatusOr<uint64_t> bytes = outbound_->PayloadBytesFrom(s.acked_next_seq);
    if (bytes.ok()) {
      s.unacked_bytes = *bytes;
    } else {
      // Not fatal for a status: at least what is in flight; the log's reader reports the error.
      s.unacked_bytes = inflight_bytes;
    }
  }
  return s;
}

void Shipper::Fail(Session* session, absl::Status status) {
  if (session->error.ok()) session->error = std::move(status);
  cv_.SignalAll();
  outbound_->WakeWaiters();  // the writer ends the session without waiting out its poll
}

void Shipper::PersistCursors(bool force) {
  absl::MutexLock persist_lock(&persist_mu_);
  uint64_t acked, applied;
  {
    absl::MutexLock lock(&mu_);
    acked = stats_.acked_next_seq;
    applied = stats_.peer_applied_seq;
    if (acked == persisted_acked_ && applied == persisted_applied_) return;
    if (!force && clock_->Now() - persisted_at_ < options_.cursor_persist_interval) return;
  }
  AppendRequest request;
  request.cursors.emplace_back(kAckedCursor, acked);
  request.cursors.emplace_back(kPeerAppliedCursor, applied);
  absl::Status s = outbound_->Append(std::move(request)).status();
  absl::MutexLock lock(&mu_);
  if (!s.ok()) {
    // Not fatal: the cursor only lags (trimming waits); the peer's Welcome is the resume truth.
    spdlog::warn("replication: cannot persist the acked cursor: {}", s.ToString());
    return;
  }
  persisted_acked_ = acked;
  persisted_applied_ = applied;
  persisted_at_ = clock_->Now();
}

void Shipper::Run() {
  SetCurrentThreadName("ship");
  Backoff backoff(options_.backoff,
                  options_.backoff_seed != 0 ? options_.backoff_seed : std::random_device()());
  std::string previous_error;
  while (!stop_requested_.HasBeenNotified()) {
    bool made_progress = false;
    absl::Status status = RunSession(&made_progress);
    PersistCursors(/*force=*/true);
    if (stop_requested_.HasBeenNotified()) break;
    if (made_progress) backoff.Reset();
    const absl::Duration delay = backoff.Next();
    absl::Time next_attempt;
    {
      absl::MutexLock lock(&mu_);
      ++stats_.disconnects;
      stats_.last_error = status.ToString();
      stats_.last_error_time = clock_->Now();
      stats_.backoff_attempt = backoff.attempt();
      next_attempt = stats_.last_error_time + delay;
      stats_.next_attempt = next_attempt;
      cv_.SignalAll();
    }
    // One line per new cause; a peer that stays down does not fill the log.
    if (status.ToString() != previous_error) {
      spdlog::warn("replication: connection to {} ended: {}; retrying with backoff",
                   options_.peer_address, status.ToString());
      previous_error = status.ToString();
    }
    clock_->SleepUntil(next_attempt, &stop_requested_);
  }
}

absl::Status Shipper::RunSession(bool* made_progress) {
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                         ChannelCredentialsFor(options_.tls));
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  args.SetMaxReceiveMessageSize(4 << 20);
  // A fresh channel per connection, sharing no subchannel (and so no gRPC-internal reconnect
  // backoff) with earlier ones: our Backoff alone decides when to try again.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!options_.tls_server_name.empty()) args.SetSslTargetNameOverride(options_.tls_server_name);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options_.peer_address, credentials, args);
  std::unique_ptr<ferry::v1::Replication::Stub> stub = ferry::v1::Replication::NewStub(channel);

  Session session;
  session.started = clock_->Now();
  // Initial metadata goes out with the Hello, on the writer thread, so creating the call never
  // blocks this (supervising) thread on a connection that hangs.
  session.context.set_initial_metadata_corked(true);
  session.rw = stub->Replicate(&session.context);
  {
    absl::MutexLock lock(&mu_);
    session_ = &session;
    inflight_.clear();
    inflight_bytes_ = 0;
    session.next_to_send = stats_.acked_next_seq;
    session.last_send = clock_->Now();
  }
  std::thread writer([this, &session] { WriteLoop(&session); });
  std::thread reader([this, &session] { ReadLoop(&session); });

  // Wakes for what ends the session; the timeouts and the cursors' persistence are polled. Not
  // a wait on cv_, which every ack signals: this thread would wake for each (about one per
  // append under load) to find nothing to do.
  auto session_over = [this, &session]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !session.error.ok() || session.broken || session.reader_done;
  };
  mu_.Lock();
  while (!session_over()) {
    const absl::Time now = clock_->Now();
    if (!session.welcomed && now - session.started > options_.connect_timeout) {
      Fail(&session, absl::DeadlineExceededError(
                         absl::StrCat("no handshake with ", options_.peer_address, " within ",
                                      absl::FormatDuration(options_.connect_timeout))));
      break;
    }
    if (session.welcomed && now - session.awaiting_since > options_.ack_timeout) {
      Fail(&session,
           absl::DeadlineExceededError(absl::StrCat("no ack from ", options_.peer_address, " for ",
                                                    absl::FormatDuration(options_.ack_timeout))));
      break;
    }
    mu_.AwaitWithTimeout(absl::Condition(&session_over), options_.poll_slice);
    mu_.Unlock();
    PersistCursors(/*force=*/false);
    mu_.Lock();
  }
  // Cancel only for a local cause: when the call ended by itself (a refusal, a broken
  // connection), cancelling would replace the peer's status with CANCELLED.
  const bool cancel = stopping_ || !session.error.ok();
  mu_.Unlock();

  if (cancel) session.context.TryCancel();
  writer.join();
  reader.join();
  const grpc::Status finish = session.rw->Finish();

  absl::MutexLock lock(&mu_);
  session_ = nullptr;
  stats_.connected = false;
  stats_.shipped_next_seq = stats_.acked_next_seq;
  inflight_.clear();
  inflight_bytes_ = 0;
  *made_progress = session.made_progress ||
                   (session.welcomed && clock_->Now() - session.started >= options_.ack_timeout);
  cv_.SignalAll();
  if (!session.error.ok()) return session.error;
  if (!finish.ok()) {
    absl::Status status = Annotate(FromGrpc(finish), absl::StrCat("peer ", options_.peer_address));
    if (!session.welcomed && options_.tls.enabled() && absl::IsUnavailable(status)) {
      // A peer that rejects our certificate just closes the socket; say what that may mean.
      status = absl::UnavailableError(absl::StrCat(
          status.message(), " (no TLS session: the peer may refuse our certificate, or we its)"));
    }
    return status;
  }
  return absl::UnavailableError(absl::StrCat("peer ", options_.peer_address, " ended the stream"));
}

void Shipper::WriteLoop(Session* session) {
  SetCurrentThreadName("ship-write");
  ferry::v1::ShipperFrame hello_frame;
  ferry::v1::Hello* hello = hello_frame.mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_region(options_.region);
  hello->set_epoch(options_.epoch());
  hello->set_token(options_.token);
  hello->set_log_id(log_id_);
  hello->set_first_available_seq(outbound_->first_seq());
  hello->set_next_seq(outbound_->next_seq());
  const bool hello_written = session->rw->Write(hello_frame);
  {
    absl::MutexLock lock(&mu_);
    session->hello_sent = true;
    if (!hello_written) session->broken = true;
    cv_.SignalAll();
    if (!hello_written) return;
  }

  BatchEncoder encoder(options_.compression_level);
  while (true) {
    bool send_batch = false, send_ping = false;
    uint64_t from = 0;
    size_t budget = 0;
    // Read before the checks below: a Stop() or a session's end between them and the wait for
    // the next record ends that wait at once.
    const uint64_t wakeups = outbound_->wakeups();
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && session->error.ok() && !session->broken && !session->welcomed &&
             !session->reader_done) {
        cv_.Wait(&mu_);
      }
      if (stopping_ || !session->error.ok() || session->broken || session->reader_done) return;
      ObserveLog();
      from = session->next_to_send;
      const bool window_open = inflight_bytes_ < options_.window_bytes;
      if (!paused_ && window_open && outbound_->next_seq() > from) {
        send_batch = true;
        budget = std::min(options_.max_batch_bytes, options_.window_bytes - inflight_bytes_);
      } else if (!session->ping_outstanding &&
                 clock_->Now() - session->last_send >= options_.keepalive_interval) {
        send_ping = true;
      } else if (paused_ || !window_open) {
        cv_.WaitWithTimeout(&mu_, options_.poll_slice);
        continue;
      }
    }
    if (!send_batch && !send_ping) {
      outbound_->WaitForRecord(from, clock_->Now() + options_.poll_slice, *clock_, wakeups);
      continue;
    }

    ferry::v1::ShipperFrame frame;
    uint64_t end = from;
    size_t uncompressed = 0;
    if (send_batch) {
      absl::StatusOr<std::vector<LogRecord>> records =
          outbound_->Read(from, options_.max_batch_records, budget);
      if (!records.ok() || records->empty()) {
        absl::Status error =
            records.ok() ? absl::InternalError("empty read below next_seq") : records.status();
        if (absl::IsOutOfRange(error)) {
          error = absl::FailedPreconditionError(
              absl::StrCat("the peer needs record ", from,
                           ", trimmed from the outbound log: ", error.message()));
        }
        absl::MutexLock lock(&mu_);
        Fail(session, Annotate(error, "reading the outbound log"));
        return;
      }
      // Split until the frame fits in one gRPC message.
      while (true) {
        absl::StatusOr<ferry::v1::Batch> batch = encoder.Encode(*records);
        if (!batch.ok()) {
          absl::MutexLock lock(&mu_);
          Fail(session, batch.status());
          return;
        }
        *frame.mutable_batch() = *std::move(batch);
        if (frame.ByteSizeLong() + 64 <= options_.max_message_bytes) break;
        if (records->size() == 1) {
          absl::MutexLock lock(&mu_);
          Fail(session, absl::FailedPreconditionError(
                            absl::StrCat("record ", from, " does not fit in max_message_bytes (",
                                         options_.max_message_bytes, ")")));
          return;
        }
        records->resize(records->size() / 2);
      }
      end = from + records->size();
      uncompressed = frame.batch().uncompressed_size();
    } else {
      frame.mutable_ping();
    }
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = clock_->Now();
      if (!send_batch || now - session->last_progress >= absl::Seconds(1)) {
        FillProgress(*frame.mutable_progress());
        session->last_progress = now;
      }
      if (inflight_.empty() && !session->ping_outstanding) session->awaiting_since = now;
      session->last_send = now;
      if (send_batch) {
        inflight_.push_back({end, uncompressed});
        inflight_bytes_ += uncompressed;
        stats_.max_inflight_batches =
            std::max<uint64_t>(stats_.max_inflight_batches, inflight_.size());
        stats_.max_inflight_bytes = std::max<uint64_t>(stats_.max_inflight_bytes, inflight_bytes_);
        session->next_to_send = end;
        stats_.shipped_next_seq = end;
        ++stats_.batches;
        stats_.records += end - from;
        if (options_.on_batch_sent) options_.on_batch_sent(end - from);
        stats_.wire_bytes += frame.batch().blob().size();
        stats_.uncompressed_bytes += uncompressed;
      } else {
        session->ping_outstanding = true;
      }
    }
    if (!session->rw->Write(frame)) {
      absl::MutexLock lock(&mu_);
      session->broken = true;
      cv_.SignalAll();
      return;
    }
  }
}

void Shipper::HandleAck(Session* session, uint64_t durable_next, uint64_t applied) {
  if (durable_next < stats_.acked_next_seq || durable_next > session->next_to_send) {
    Fail(session, absl::InternalError(absl::StrCat("the peer acknowledged sequence ", durable_next,
                                                   " outside [", stats_.acked_next_seq, ", ",
                                                   session->next_to_send, "]")));
    return;
  }
  const bool advanced = durable_next > stats_.acked_next_seq;
  while (!inflight_.empty() && inflight_.front().end_seq <= durable_next) {
    inflight_bytes_ -= inflight_.front().bytes;
    inflight_.pop_front();
  }
  stats_.acked_next_seq = durable_next;
  stats_.peer_applied_seq = applied;
  session->ping_outstanding = false;
  if (inflight_.empty()) {
    session->awaiting_since = absl::InfiniteFuture();
  } else if (advanced) {
    session->awaiting_since = clock_->Now();
  }
  while (seen_.size() >= 2 && seen_[1].first <= durable_next) seen_.pop_front();
  if (!seen_.empty() && seen_.front().first < durable_next) seen_.front().first = durable_next;
  if (durable_next >= observed_next_) seen_.clear();
  if (advanced) session->made_progress = true;
  cv_.SignalAll();
}

void Shipper::ReadLoop(Session* session) {
  SetCurrentThreadName("ship-read");
  {
    absl::MutexLock lock(&mu_);
    while (!session->hello_sent) cv_.Wait(&mu_);
    if (session->broken) {
      session->reader_done = true;
      return;
    }
  }
  ferry::v1::ReceiverFrame frame;
  while (session->rw->Read(&frame)) {
    bool persist = false;
    {
      absl::MutexLock lock(&mu_);
      if (frame.has_welcome()) {
        const ferry::v1::Welcome& welcome = frame.welcome();
        if (session->welcomed) {
          Fail(session, absl::InternalError("the peer sent a second welcome"));
          break;
        }
        const uint64_t first = outbound_->first_seq(), next = outbound_->next_seq();
        if (welcome.durable_next_seq() < first) {
          Fail(session, absl::FailedPreconditionError(
                            absl::StrCat("the peer needs record ", welcome.durable_next_seq(),
                                         " but the outbound log starts at ", first, " (trimmed)")));
          break;
        }
        if (welcome.durable_next_seq() > next) {
          Fail(session, absl::FailedPreconditionError(absl::StrCat(
                            "the peer's inbound log is ahead of the outbound log (",
                            welcome.durable_next_seq(), " > ", next, "): the logs diverged")));
          break;
        }
        session->welcomed = true;
        session->next_to_send = welcome.durable_next_seq();
        stats_.acked_next_seq = welcome.durable_next_seq();
        stats_.shipped_next_seq = welcome.durable_next_seq();
        stats_.peer_applied_seq = welcome.applied_seq();
        if (welcome.has_apply_state()) {
          stats_.peer_apply = PeerApplyReport::From(welcome.apply_state());
        }
        stats_.peer_region = welcome.region();
        stats_.peer_epoch = welcome.epoch();
        stats_.connected = true;
        ++stats_.connects;
        if (!seen_.empty() && seen_.front().first > welcome.durable_next_seq()) {
          seen_.front().first = welcome.durable_next_seq();
        }
        spdlog::info("replication: connected to region {} at {} (epoch {}), resuming at {}",
                     welcome.region(), options_.peer_address, welcome.epoch(),
                     welcome.durable_next_seq());
        cv_.SignalAll();
      } else if (frame.has_ack()) {
        if (!session->welcomed) {
          Fail(session, absl::InternalError("the peer acknowledged before its welcome"));
          break;
        }
        HandleAck(session, frame.ack().durable_next_seq(), frame.ack().applied_seq());
        if (frame.ack().has_apply_state()) {
          stats_.peer_apply = PeerApplyReport::From(frame.ack().apply_state());
        }
        KillPoint("shipper.acked");
        if (!session->error.ok()) break;
        persist = true;
      } else if (frame.has_error()) {
        Fail(session, Annotate(absl::Status(static_cast<absl::StatusCode>(frame.error().code()),
                                            frame.error().message()),
                               absl::StrCat("peer ", options_.peer_address)));
        break;
      } else {
        Fail(session, absl::InternalError("the peer sent an unknown frame"));
        break;
      }
    }
    if (persist) PersistCursors(/*force=*/false);
  }
  absl::MutexLock lock(&mu_);
  session->reader_done = true;
  cv_.SignalAll();
  outbound_->WakeWaiters();
}

}  // namespace ferry::replication
