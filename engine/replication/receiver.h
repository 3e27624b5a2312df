// Receiver: the standby's end of the replication stream (proto/replication.md). It implements
// the ferry.v1.Replication gRPC service, checks every frame, writes batches durably to the
// inbound log, and only then acknowledges them (DESIGN.md invariant 2). It keeps the inbound log
// an exact copy of the shipper's outbound log: same sequence numbers, no gap, no duplicate.
//
// Handshake checks, in order, each refusing the stream with a gRPC status that names the cause:
//   protocol version (FAILED_PRECONDITION), token (UNAUTHENTICATED, constant-time compare),
//   region (PERMISSION_DENIED: our own region or not the expected peer), epoch (a lower one is
//   refused, FAILED_PRECONDITION "stale epoch N < M"; a higher one is adopted durably through
//   adopt_epoch before anything is accepted: fencing, invariant 6), log_id (a different log
//   than the one this inbound log copies, at an epoch not higher than the recorded one, is
//   refused), and the positions (the shipper must still hold our next record; a new, empty
//   inbound log may instead start right after the apply target's progress when that progress
//   counts the shipper's log: options.target_progress).
// Then every batch must start exactly at the inbound log's next sequence and pass DecodeBatch
// (size limits, checksum, count); a bad batch ends the stream with the error (nothing of it is
// written). If the receiver's epoch moves past the stream's epoch, the stream is ended.
//
// One stream at a time: a new stream that passes the handshake replaces the active one (which
// is cancelled). The sender of a stale connection is usually the same shipper after a network
// fault it has noticed before us, and refusing it would keep replication down until TCP gives up.
//
// Threads: gRPC runs Replicate() on its own threads; each stream has the handler thread (reads
// and validates frames) and one appender thread (merges queued batches into one
// DurableLog::Append, then writes the Ack). The appender is a thread of its own so that frames
// are read while an append syncs and the next sync takes them all: a receiver that read only
// after its append returned (built and reverted in session 26, bench/side_by_side/FINDINGS.md)
// took one batch per sync and would fall behind a primary with a faster disk
// (BatchesThatArriveWhileTheInboundLogSyncsShareTheNextSync). An append error ends the stream: the
// receiver sends a StreamError frame and stops acknowledging; the stream's status is UNAVAILABLE.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto receiver, Receiver::Create(options, inbound.get()));
//   FERRY_ASSIGN_OR_RETURN(auto server, ReplicationServer::Start(server_options, receiver.get()));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/log/durable_log.h"
#include "proto/replication.grpc.pb.h"

namespace ferry::replication {

struct ReceiverOptions {
  // This region's name. Required.
  std::string region;
  // When set, only a shipper of this region is accepted.
  std::string expected_peer_region;
  // Shared replication token; when empty, the token is not checked.
  std::string token;
  // This region's current epoch. Required.
  std::function<uint64_t()> epoch;
  // Durably adopts a higher epoch presented by a shipper; the stream is accepted only when it
  // returns OK. Required.
  std::function<absl::Status(uint64_t)> adopt_epoch;
  // The apply target's durable progress and the upstream log it counts (Sink::CommittedProgress).
  // Optional. When set, a new (empty) inbound log whose next record the shipper no longer holds
  // starts right after the target's progress, if that progress counts the shipper's log and the
  // shipper still holds the record after it (see CheckHello). Called during a handshake.
  std::function<absl::StatusOr<TargetProgress>()> target_progress;
  // Largest uncompressed batch accepted (zstd bomb protection). Must be at least the shipper's
  // max_batch_bytes plus framing.
  size_t max_uncompressed_batch_bytes = size_t{64} << 20;
  // Decoded batches waiting to be appended, in bytes; the handler stops reading (TCP pushes back)
  // above it.
  size_t max_queued_bytes = size_t{64} << 20;
  // One inbound Append groups queued batches up to this many payload bytes.
  size_t max_append_bytes = size_t{16} << 20;
  // The standby's apply state, sent to the shipper in the Welcome and in Acks when it changed
  // (proto/replication.md). Called on the stream's threads; must be cheap and thread-safe.
  // Unset, or nullopt: nothing is reported.
  std::function<std::optional<ferry::v1::PeerApplyState>()> apply_state;
};

struct ReceiverStatus {
  bool connected = false;
  std::string peer_region;
  std::string peer_address;
  uint64_t peer_epoch = 0;
  uint64_t durable_next_seq = 0;  // the inbound log's next_seq
  uint64_t batches = 0;           // since Create
  uint64_t records = 0;
  uint64_t wire_bytes = 0;          // batch blobs as received
  uint64_t uncompressed_bytes = 0;  // batch contents
  uint64_t streams_accepted = 0;
  uint64_t streams_refused = 0;
  uint64_t streams_replaced = 0;
  std::string last_error;  // the last refusal or stream error, empty when none
  // The shipper's last ShipperProgress and when any frame last arrived (a promote's loss bound).
  uint64_t peer_outbound_next_seq = 0;
  uint64_t peer_unacked_bytes = 0;
  int64_t peer_oldest_unacked_us = 0;
  absl::Time peer_progress_at = absl::InfinitePast();
  absl::Time last_frame_at = absl::InfinitePast();
};

// Thread safety: all methods are thread-safe.
class Receiver final : public ferry::v1::Replication::Service {
 public:
  // `inbound` must outlive the receiver. kInvalidArgument on missing options.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Receiver>> Create(
      const ReceiverOptions& options, DurableLog* inbound);
  ~Receiver() override;

  grpc::Status Replicate(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<ferry::v1::ReceiverFrame, ferry::v1::ShipperFrame>* stream) override;

  ReceiverStatus status() const;

  // Ends the active stream and refuses new ones (UNAVAILABLE). Call before shutting down the
  // server. Idempotent.
  void Shutdown();

 private:
  struct Stream;
  Receiver(const ReceiverOptions& options, DurableLog* inbound);
  // Handshake checks; records the log_id and adopts the epoch. Serialized by handshake_mu_.
  [[nodiscard]] absl::Status CheckHello(const ferry::v1::Hello& hello);
  [[nodiscard]] absl::Status CheckLogId(const ferry::v1::Hello& hello)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(handshake_mu_);
  // The shipper no longer holds `next`, the inbound log's next record: starts an empty inbound
  // log right after the target's progress when that is safe (returns the new next seq), or
  // says why not (kFailedPrecondition; kUnavailable when the target cannot be read).
  [[nodiscard]] absl::StatusOr<uint64_t> StartAtTargetProgress(const ferry::v1::Hello& hello,
                                                               uint64_t next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(handshake_mu_);
  // Makes `stream` the active one, cancelling and waiting out the previous one.
  [[nodiscard]] absl::Status Activate(Stream* stream);
  void Deactivate(Stream* stream);
  grpc::Status Refuse(const absl::Status& status, const std::string& peer);
  // The appender thread of one stream.
  void AppendLoop(Stream* stream,
                  grpc::ServerReaderWriter<ferry::v1::ReceiverFrame, ferry::v1::ShipperFrame>* rw);
  uint64_t AppliedSeq() const;

  // Constant after Create.
  const ReceiverOptions options_;
  DurableLog* const inbound_;

  absl::Mutex handshake_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable absl::Mutex mu_;
  absl::CondVar active_changed_;
  Stream* active_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  ReceiverStatus stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::replication
