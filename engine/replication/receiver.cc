#include "engine/replication/receiver.h"

#include <spdlog/spdlog.h>

#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "engine/log/log_names.h"
#include "engine/replication/batch_codec.h"
#include "engine/replication/stream_format.h"

namespace ferry::replication {
namespace {

using RW = grpc::ServerReaderWriter<ferry::v1::ReceiverFrame, ferry::v1::ShipperFrame>;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Compares without an early exit, so the time taken does not reveal how much of a guessed token
// was right.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace

// One accepted stream. The handler thread owns `expected_next`; the queue is shared with the
// appender thread under mu.
struct Receiver::Stream {
  struct Item {
    uint64_t first_seq = 0;
    // The batch's content, which its records borrow from: kept until their append returns.
    std::unique_ptr<const std::string> content;
    // Empty: a ping, answered with an Ack of first_seq, the stream's end when it was queued
    // (what the stream made durable once everything queued before it is appended; the log's
    // own end may be past it, moved by another stream's handshake).
    std::vector<NewRecord> records;
    size_t bytes = 0;
  };

  grpc::ServerContext* context = nullptr;
  std::string peer;  // "region@address" for logs
  uint64_t epoch = 0;
  // The apply state last sent on this stream, serialized (the handler thread writes it before
  // the appender thread starts; the appender owns it after).
  std::string apply_state_sent;

  absl::Mutex mu;
  absl::CondVar changed;
  std::deque<Item> queue ABSL_GUARDED_BY(mu);
  size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
  bool input_done ABSL_GUARDED_BY(mu) = false;
  absl::Status append_error ABSL_GUARDED_BY(mu);
};

Receiver::Receiver(const ReceiverOptions& options, DurableLog* inbound)
    : options_(options), inbound_(inbound) {}

Receiver::~Receiver() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Receiver>> Receiver::Create(const ReceiverOptions& options,
                                                           DurableLog* inbound) {
  if (inbound == nullptr) return absl::InvalidArgumentError("receiver: no inbound log");
  if (options.region.empty()) return absl::InvalidArgumentError("receiver: region is empty");
  if (!options.epoch || !options.adopt_epoch) {
    return absl::InvalidArgumentError("receiver: epoch and adopt_epoch are required");
  }
  if (options.max_uncompressed_batch_bytes == 0 || options.max_queued_bytes == 0 ||
      options.max_append_bytes == 0) {
    return absl::InvalidArgumentError("receiver: size limits must be positive");
  }
  return std::unique_ptr<Receiver>(new Receiver(options, inbound));
}

void Receiver::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  while (active_ != nullptr) {
    active_->context->TryCancel();
    active_changed_.Wait(&mu_);
  }
}

ReceiverStatus Receiver::status() const {
  ReceiverStatus s;
  {
    absl::MutexLock lock(&mu_);
    s = stats_;
    s.connected = active_ != nullptr;
  }
  s.durable_next_seq = inbound_->next_seq();
  return s;
}

uint64_t Receiver::AppliedSeq() const {
  absl::StatusOr<std::optional<uint64_t>> applied = inbound_->GetCursor(kAppliedCursor);
  return applied.ok() && applied->has_value() ? **applied : 0;
}

grpc::Status Receiver::Refuse(const absl::Status& status, const std::string& peer) {
  spdlog::warn("replication: refused stream from {}: {}", peer, status.ToString());
  absl::MutexLock lock(&mu_);
  ++stats_.streams_refused;
  stats_.last_error = status.ToString();
  return ToGrpc(status);
}

absl::Status Receiver::CheckHello(const ferry::v1::Hello& hello) {
  if (hello.protocol_version() != kProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat("unsupported protocol version ",
                                                      hello.protocol_version(),
                                                      " (this receiver "
                                                      "speaks ",
                                                      kProtocolVersion, ")"));
  }
  if (!options_.token.empty() && !ConstantTimeEquals(hello.token(), options_.token)) {
    return absl::UnauthenticatedError("wrong replication token");
  }
  if (hello.region().empty() || hello.region() == options_.region) {
    return absl::PermissionDeniedError(
        absl::StrCat("shipper region \"", hello.region(), "\" is empty or this region's own name"));
  }
  if (!options_.expected_peer_region.empty() && hello.region() != options_.expected_peer_region) {
    return absl::PermissionDeniedError(absl::StrCat("shipper region \"", hello.region(),
                                                    "\" is not the expected peer region \"",
                                                    options_.expected_peer_region, "\""));
  }
  if (!IsValidLogId(hello.log_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hello's log_id is not 32 lowercase hex digits (", hello.log_id().size(), " bytes)"));
  }
  if (hello.next_seq() < hello.first_available_seq()) {
    return absl::InvalidArgumentError(absl::StrCat("hello's next_seq ", hello.next_seq(),
                                                   " is below its first_available_seq ",
                                                   hello.first_available_seq()));
  }

  absl::MutexLock lock(&handshake_mu_);
  const uint64_t ours = options_.epoch();
  if (hello.epoch() < ours) {
    return absl::FailedPreconditionError(absl::StrCat("stale epoch ", hello.epoch(), " < ", ours));
  }
  if (hello.epoch() > ours) {
    FERRY_RETURN_IF_ERROR(Annotate(options_.adopt_epoch(hello.epoch()),
                                   absl::StrCat("adopting epoch ", hello.epoch())));
    spdlog::info("replication: adopted epoch {} of region {} (was {})", hello.epoch(),
                 hello.region(), ours);
  }
  FERRY_RETURN_IF_ERROR(CheckLogId(hello));

  uint64_t next = inbound_->next_seq();
  if (hello.first_available_seq() > next) {
    FERRY_ASSIGN_OR_RETURN(next, StartAtTargetProgress(hello, next));
  }
  if (hello.next_seq() < next) {
    return absl::FailedPreconditionError(
        absl::StrCat("this inbound log is ahead of the shipper's log (", next, " > ",
                     hello.next_seq(), "): the logs diverged"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Receiver::StartAtTargetProgress(const ferry::v1::Hello& hello,
                                                         uint64_t next) {
  const std::string trimmed =
      absl::StrCat("the shipper's log starts at sequence ", hello.first_available_seq(),
                   " but this inbound log needs ", next, " next: the records between were trimmed");
  if (inbound_->first_seq() != next) {
    return absl::FailedPreconditionError(
        absl::StrCat(trimmed, " (this inbound log holds records, so it cannot start further on)"));
  }
  if (!options_.target_progress) return absl::FailedPreconditionError(trimmed);
  absl::StatusOr<TargetProgress> target = options_.target_progress();
  if (target.status().code() == absl::StatusCode::kUnimplemented) {
    return absl::FailedPreconditionError(trimmed);  // a sink that cannot tell
  }
  if (!target.ok()) {
    return absl::UnavailableError(
        absl::StrCat(trimmed,
                     "; this new inbound log could start where the target's progress is, but it "
                     "cannot be read: ",
                     target.status().ToString()));
  }
  const uint64_t applied = target->applied_seq;
  std::string why;
  if (applied == 0) {
    why = absl::StrCat("the target holds no progress of log ", hello.log_id(),
                       " to start after; re-seed this region (docs/operations.md)");
  } else if (target->log_id != hello.log_id()) {
    why = absl::StrCat("the target's progress (seq ", applied, ") counts log ",
                       target->log_id.empty() ? "unrecorded" : target->log_id, ", not ",
                       hello.log_id());
  } else if (applied == UINT64_MAX || applied + 1 < hello.first_available_seq()) {
    why = absl::StrCat("the target applied log ", hello.log_id(), " only up to sequence ", applied,
                       ": the records after it were trimmed by the shipper; re-seed "
                       "this region (docs/operations.md)");
  } else if (applied + 1 > hello.next_seq()) {
    why = absl::StrCat("the target applied log ", hello.log_id(), " up to sequence ", applied,
                       ", past the shipper's log end (next ", hello.next_seq(),
                       "): the logs diverged");
  }
  if (!why.empty()) return absl::FailedPreconditionError(absl::StrCat(trimmed, "; ", why));
  // The target has applied everything of this log up to `applied` (durably: the progress was
  // flushed), and the shipper holds what follows: the inbound log starts right there, its
  // applied cursor at the target's progress, in one atomic append.
  AppendRequest start;
  start.start_at = applied + 1;
  start.cursors.emplace_back(kAppliedCursor, applied);
  start.state.emplace_back(kPeerLogIdState, hello.log_id());
  start.state.emplace_back(kPeerLogEpochState, absl::StrCat(hello.epoch()));
  FERRY_RETURN_IF_ERROR(
      Annotate(inbound_->Append(std::move(start)).status(), "starting the new inbound log"));
  spdlog::warn(
      "replication: the new inbound log starts at sequence {}, right after the target's progress "
      "in log {} (the shipper no longer holds sequence {})",
      applied + 1, hello.log_id(), next);
  return applied + 1;
}

absl::Status Receiver::CheckLogId(const ferry::v1::Hello& hello) {
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> id, inbound_->GetState(kPeerLogIdState));
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> epoch_text,
                         inbound_->GetState(kPeerLogEpochState));
  uint64_t recorded_epoch = 0;
  if (epoch_text.has_value() && !absl::SimpleAtoi(*epoch_text, &recorded_epoch)) {
    return absl::DataLossError(
        absl::StrCat("inbound log state ", kPeerLogEpochState, " is not a number: ", *epoch_text));
  }
  if (id.has_value() && *id == hello.log_id() && hello.epoch() <= recorded_epoch) {
    return absl::OkStatus();
  }
  if (id.has_value() && *id != hello.log_id()) {
    if (hello.epoch() <= recorded_epoch) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shipper log_id ", hello.log_id(), " differs from log_id ", *id, " recorded at epoch ",
          recorded_epoch, ": this inbound log copies another log"));
    }
    spdlog::warn("replication: inbound log now copies log {} (epoch {}), was {} (epoch {})",
                 hello.log_id(), hello.epoch(), *id, recorded_epoch);
  }
  AppendRequest record;
  record.state.emplace_back(kPeerLogIdState, hello.log_id());
  record.state.emplace_back(kPeerLogEpochState, absl::StrCat(hello.epoch()));
  return Annotate(inbound_->Append(std::move(record)).status(), "recording the shipper's log_id");
}

absl::Status Receiver::Activate(Stream* stream) {
  absl::MutexLock lock(&mu_);
  while (active_ != nullptr && !shutdown_) {
    spdlog::info("replication: stream from {} replaces the one from {}", stream->peer,
                 active_->peer);
    ++stats_.streams_replaced;
    active_->context->TryCancel();
    active_changed_.Wait(&mu_);
  }
  if (shutdown_) return absl::UnavailableError("the receiver is shutting down");
  active_ = stream;
  ++stats_.streams_accepted;
  stats_.peer_region = stream->peer.substr(0, stream->peer.find('@'));
  stats_.peer_address = stream->context->peer();
  stats_.peer_epoch = stream->epoch;
  return absl::OkStatus();
}

void Receiver::Deactivate(Stream* stream) {
  absl::MutexLock lock(&mu_);
  if (active_ == stream) active_ = nullptr;
  active_changed_.SignalAll();
}

grpc::Status Receiver::Replicate(grpc::ServerContext* context, RW* rw) {
  ferry::v1::ShipperFrame frame;
  if (!rw->Read(&frame)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "stream ended before the hello");
  }
  if (!frame.has_hello()) {
    return Refuse(absl::InvalidArgumentError("the first frame must be a hello"), context->peer());
  }
  Stream stream;
  stream.context = context;
  stream.epoch = frame.hello().epoch();
  stream.peer = absl::StrCat(frame.hello().region(), "@", context->peer());
  if (absl::Status s = CheckHello(frame.hello()); !s.ok()) return Refuse(s, stream.peer);
  if (absl::Status s = Activate(&stream); !s.ok()) return Refuse(s, stream.peer);

  uint64_t expected_next = inbound_->next_seq();
  ferry::v1::ReceiverFrame welcome;
  welcome.mutable_welcome()->set_region(options_.region);
  welcome.mutable_welcome()->set_epoch(options_.epoch());
  welcome.mutable_welcome()->set_durable_next_seq(expected_next);
  welcome.mutable_welcome()->set_applied_seq(AppliedSeq());
  if (options_.apply_state) {
    if (std::optional<ferry::v1::PeerApplyState> state = options_.apply_state()) {
      stream.apply_state_sent = state->SerializeAsString();
      *welcome.mutable_welcome()->mutable_apply_state() = *std::move(state);
    }
  }
  if (!rw->Write(welcome)) {
    Deactivate(&stream);
    return grpc::Status(grpc::StatusCode::CANCELLED, "the shipper went away during the handshake");
  }
  spdlog::info("replication: accepted stream from {} at epoch {}, resuming at sequence {}",
               stream.peer, stream.epoch, expected_next);

  std::thread appender([this, &stream, rw] { AppendLoop(&stream, rw); });
  const DecodeLimits limits{.max_uncompressed_bytes = options_.max_uncompressed_batch_bytes,
                            .max_record_bytes = inbound_->options().max_record_bytes};
  absl::Status result;
  while (result.ok() && rw->Read(&frame)) {
    Stream::Item item;
    {
      absl::MutexLock lock(&mu_);
      stats_.last_frame_at = absl::Now();
      if (frame.has_progress()) {
        stats_.peer_outbound_next_seq = frame.progress().outbound_next_seq();
        stats_.peer_unacked_bytes = frame.progress().unacked_bytes();
        stats_.peer_oldest_unacked_us = frame.progress().oldest_unacked_us();
        stats_.peer_progress_at = stats_.last_frame_at;
      }
    }
    if (frame.has_batch()) {
      const ferry::v1::Batch& batch = frame.batch();
      if (const uint64_t ours = options_.epoch(); ours > stream.epoch) {
        result = absl::FailedPreconditionError(
            absl::StrCat("stale epoch ", stream.epoch, " < ", ours, " (this region moved on)"));
        break;
      }
      if (batch.first_seq() != expected_next) {
        result = absl::InvalidArgumentError(absl::StrCat(
            "batch starts at sequence ", batch.first_seq(), ", expected ", expected_next));
        break;
      }
      absl::StatusOr<DecodedBatch> decoded = DecodeBatch(batch, limits);
      if (!decoded.ok()) {
        result = decoded.status();
        break;
      }
      item.first_seq = batch.first_seq();
      item.content = std::move(decoded->content);
      item.records = std::move(decoded->records);
      item.bytes = batch.uncompressed_size();
      expected_next += item.records.size();
      absl::MutexLock lock(&mu_);
      ++stats_.batches;
      stats_.records += item.records.size();
      stats_.wire_bytes += batch.blob().size();
      stats_.uncompressed_bytes += batch.uncompressed_size();
    } else if (frame.has_ping()) {
      // An empty item: the appender answers it with an Ack once the queue before it is durable.
      item.first_seq = expected_next;
    } else {
      result = absl::InvalidArgumentError("unexpected frame after the handshake");
      break;
    }
    absl::MutexLock lock(&stream.mu);
    while (stream.queued_bytes > options_.max_queued_bytes && stream.append_error.ok()) {
      stream.changed.Wait(&stream.mu);
    }
    if (!stream.append_error.ok()) break;
    stream.queued_bytes += item.bytes;
    stream.queue.push_back(std::move(item));
    stream.changed.SignalAll();
  }
  {
    absl::MutexLock lock(&stream.mu);
    stream.input_done = true;
    stream.changed.SignalAll();
  }
  appender.join();
  {
    absl::MutexLock lock(&stream.mu);
    if (result.ok()) result = stream.append_error;
  }
  Deactivate(&stream);
  if (!result.ok()) {
    spdlog::warn("replication: stream from {} ended: {}", stream.peer, result.ToString());
    absl::MutexLock lock(&mu_);
    stats_.last_error = result.ToString();
  } else {
    spdlog::info("replication: stream from {} ended", stream.peer);
  }
  return ToGrpc(result);
}

void Receiver::AppendLoop(Stream* stream, RW* rw) {
  SetCurrentThreadName("recv-append");
  while (true) {
    std::vector<Stream::Item> items;
    {
      absl::MutexLock lock(&stream->mu);
      while (stream->queue.empty() && !stream->input_done) stream->changed.Wait(&stream->mu);
      if (stream->queue.empty()) return;
      size_t bytes = 0;
      while (!stream->queue.empty() && (items.empty() || bytes < options_.max_append_bytes)) {
        bytes += stream->queue.front().bytes;
        items.push_back(std::move(stream->queue.front()));
        stream->queue.pop_front();
      }
    }
    AppendRequest request;
    size_t bytes = 0;
    uint64_t ping_next = 0;  // the last ping's stream end (items are in the stream's order)
    for (Stream::Item& item : items) {
      if (item.records.empty()) ping_next = item.first_seq;
      if (!item.records.empty() && !request.expected_first_seq.has_value()) {
        request.expected_first_seq = item.first_seq;
      }
      bytes += item.bytes;
      // The records borrow from item.content, which `items` keeps until the append returns.
      for (NewRecord& r : item.records) request.records.push_back(std::move(r));
    }
    uint64_t durable_next = 0;
    absl::Status error;
    if (!request.records.empty()) {
      const size_t count = request.records.size();
      absl::StatusOr<uint64_t> first = inbound_->Append(std::move(request));
      if (first.ok()) {
        durable_next = *first + count;
      } else {
        error = absl::UnavailableError(
            absl::StrCat("the inbound log cannot write: ", first.status().ToString()));
      }
    } else {
      durable_next = ping_next;
    }
    if (!error.ok()) {
      // Stop acknowledging; tell the shipper why, so it reports the cause and backs off.
      ferry::v1::ReceiverFrame frame;
      frame.mutable_error()->set_code(static_cast<int>(error.code()));
      frame.mutable_error()->set_message(std::string(error.message()));
      (void)rw->Write(frame);
      absl::MutexLock lock(&stream->mu);
      stream->append_error = error;
      stream->queue.clear();
      stream->changed.SignalAll();
      return;
    }
    KillPoint("receiver.appended");  // durable here, not yet acknowledged
    ferry::v1::ReceiverFrame ack;
    ack.mutable_ack()->set_durable_next_seq(durable_next);
    ack.mutable_ack()->set_applied_seq(AppliedSeq());
    if (options_.apply_state) {
      if (std::optional<ferry::v1::PeerApplyState> state = options_.apply_state()) {
        std::string serialized = state->SerializeAsString();
        if (serialized != stream->apply_state_sent) {
          stream->apply_state_sent = std::move(serialized);
          *ack.mutable_ack()->mutable_apply_state() = *std::move(state);
        }
      }
    }
    const bool written = rw->Write(ack);
    absl::MutexLock lock(&stream->mu);
    stream->queued_bytes -= bytes;
    stream->changed.SignalAll();
    if (!written) {
      // The stream is gone (cancelled or the shipper left): the records are durable, the next
      // stream's Welcome reports them.
      stream->append_error = absl::CancelledError("the stream closed while acknowledging");
      stream->queue.clear();
      return;
    }
  }
}

}  // namespace ferry::replication
