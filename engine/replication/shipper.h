// Shipper: the primary's end of the replication stream (proto/replication.md). It reads the
// outbound log and sends it to the peer region's Receiver over one gRPC stream, pipelined: up to
// window_bytes of batches are in flight unacknowledged, so a batch never waits a round trip.
// When the window is full it waits for acks (backpressure from a slow receiver).
//
// On every connection it says Hello (region, epoch, token, log_id) and resumes exactly at the
// receiver's durable_next_seq, so each record lands in the inbound log once, whatever broke in
// between. Acks move the "acked" and "peer_applied" cursors of the outbound log (persisted at
// most every cursor_persist_interval, and at each disconnect); the outbound log may be trimmed
// below "acked" (TrimAcknowledged). Any failure (refusal, network, timeout, a receiver that
// cannot write) ends the connection; the shipper reconnects after an exponential backoff with
// jitter and reports the cause in status().last_error.
//
// Threads: Start() runs a connection thread that, for each connection, starts a writer thread
// (reads the log, sends Hello, batches and Pings) and a reader thread (receives the Welcome and
// Acks), and supervises both: handshake and ack timeouts, Stop(). All shared state is under mu_.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto shipper, Shipper::Start(options, outbound.get()));
//   ShipperStatus s = shipper->status();   // for the admin API and /metrics
//   FERRY_RETURN_IF_ERROR(shipper->TrimAcknowledged(/*keep_records=*/100000));
//   shipper->Stop();
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/base/backoff.h"
#include "engine/base/clock.h"
#include "engine/log/durable_log.h"
#include "engine/replication/credentials.h"
#include "proto/replication.pb.h"

namespace ferry::replication {

struct ShipperOptions {
  // This region's name. Required.
  std::string region;
  // This region's current epoch, read at each connection. Required.
  std::function<uint64_t()> epoch;
  // The peer region's replication listener, host:port. Required.
  std::string peer_address;
  // Shared replication token presented at handshake.
  std::string token;
  // Mutual TLS; all empty: plaintext.
  TlsOptions tls;
  // Name the peer's certificate must carry; empty: the host of peer_address.
  std::string tls_server_name;
  // zstd level of batches; 0 = no compression.
  int compression_level = 3;
  // Uncompressed batch bytes sent and not yet acknowledged; >= 1.
  size_t window_bytes = size_t{64} << 20;
  // A batch holds records up to this many payload bytes (at least one record) ...
  size_t max_batch_bytes = size_t{4} << 20;
  // ... and at most this many records.
  size_t max_batch_records = 10000;
  // Largest gRPC message; a batch is split to fit. A single record that does not fit stops the
  // stream with kFailedPrecondition.
  size_t max_message_bytes = size_t{16} << 20;
  // Reconnect schedule.
  BackoffOptions backoff;
  // Seed of the backoff jitter; 0: random.
  uint64_t backoff_seed = 0;
  // Connection and handshake must complete within this.
  absl::Duration connect_timeout = absl::Seconds(10);
  // While something is unacknowledged (a batch or a Ping), the receiver must acknowledge within
  // this, or the connection is considered dead (a partition) and replaced.
  absl::Duration ack_timeout = absl::Seconds(10);
  // A Ping is sent after this long without sending anything.
  absl::Duration keepalive_interval = absl::Seconds(2);
  // How often the "acked" cursor is persisted while acks arrive.
  absl::Duration cursor_persist_interval = absl::Milliseconds(100);
  // The slice of the internal waits that also watch the clock (the timeouts, the keepalive):
  // real time for the waits on the shipper's own state, which its events end; on the clock for
  // the writer's wait for the next record, which a record, a stop or a session's end ends.
  absl::Duration poll_slice = absl::Milliseconds(50);
  // Initial state of the pause switch (see SetPaused).
  bool start_paused = false;
  // Called for every batch sent with its number of records (on the writer thread, under the
  // shipper's lock: must be cheap, e.g. a metrics histogram).
  std::function<void(uint64_t records)> on_batch_sent;
  // Time source for timeouts, backoff and lag; not owned; null: Clock::Real().
  Clock* clock = nullptr;
};

// The peer's apply state as its receiver last reported it (proto/replication.md,
// PeerApplyState). Untrusted input, kept bounded: at most kMaxTables tables, every string cut to
// kMaxText bytes at a UTF-8 character boundary.
struct PeerApplyReport {
  static constexpr size_t kMaxTables = 100;
  static constexpr size_t kMaxText = 1024;
  struct StoppedTable {
    std::string table;
    std::string reason;
    uint64_t seq = 0;
  };
  bool known = false;  // false until the peer reported one
  std::vector<StoppedTable> stopped_tables;
  uint64_t stopped_tables_total = 0;  // >= stopped_tables.size()
  uint64_t conflicts = 0;
  std::string last_error;
  bool failed = false;

  // The sanitized report of what a peer sent.
  static PeerApplyReport From(const ferry::v1::PeerApplyState& state);
  // `text` cut to at most kMaxText bytes at a UTF-8 character boundary, "..." appended when cut
  // (a proto3 string must stay valid UTF-8, or the frame carrying it does not parse).
  static std::string Cut(const std::string& text);
};

// A snapshot for the admin API and metrics. Sequences are exclusive bounds ("next").
struct ShipperStatus {
  bool connected = false;
  bool paused = false;
  std::string peer_region;  // from the last Welcome
  uint64_t peer_epoch = 0;
  std::string last_error;  // the cause of the last disconnect or refusal; empty when none
  absl::Time last_error_time = absl::InfinitePast();
  uint64_t connects = 0;                           // handshakes completed
  uint64_t disconnects = 0;                        // connections ended (including failed attempts)
  int backoff_attempt = 0;                         // consecutive failed attempts
  absl::Time next_attempt = absl::InfinitePast();  // when disconnected: the next try

  uint64_t log_next_seq = 0;      // the outbound log's next_seq
  uint64_t shipped_next_seq = 0;  // every record below was sent on the current connection
  uint64_t acked_next_seq = 0;    // every record below is durable in the peer's inbound log
  uint64_t peer_applied_seq = 0;  // the peer's "applied" cursor, as last reported
  PeerApplyReport peer_apply;     // the peer's stopped tables, conflicts, apply error

  uint64_t batches = 0;             // since Start
  uint64_t records = 0;             // sent since Start (re-sent ones count again)
  uint64_t wire_bytes = 0;          // batch blobs as sent (compressed)
  uint64_t uncompressed_bytes = 0;  // batch contents
  // High-water marks since Start of the unacknowledged batches and their uncompressed bytes:
  // evidence of pipelining (> 1 batch) and of the window (bytes <= window + one record).
  uint64_t max_inflight_batches = 0;
  uint64_t max_inflight_bytes = 0;

  // RPO: the unacknowledged tail of the outbound log.
  uint64_t unacked_records = 0;
  // Payload bytes of the unacknowledged records in the outbound log (exact:
  // DurableLog::PayloadBytesFrom).
  uint64_t unacked_bytes = 0;
  // Now minus the time the shipper first saw the oldest unacknowledged record in the log (the
  // shipper does not decode payloads, so capture times are not known here). Zero when all is
  // acknowledged.
  absl::Duration unacked_age = absl::ZeroDuration();
};

// Thread safety: all methods are thread-safe.
class Shipper {
 public:
  // Validates the options, creates the outbound log's log_id on first use, and starts
  // connecting. `outbound` must outlive the shipper. kInvalidArgument on bad options.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Shipper>> Start(const ShipperOptions& options,
                                                                      DurableLog* outbound);
  ~Shipper();  // Stop()

  Shipper(const Shipper&) = delete;
  Shipper& operator=(const Shipper&) = delete;

  // While paused the connection stays up (Pings continue, in-flight batches are acknowledged)
  // but no new batch is sent.
  void SetPaused(bool paused);

  // Trims the outbound log below acked_next_seq - keep_records. Never trims unacknowledged
  // records.
  [[nodiscard]] absl::Status TrimAcknowledged(uint64_t keep_records);

  ShipperStatus status() const;
  // The outbound log's id (proto/replication.md), constant for the log's life.
  const std::string& log_id() const { return log_id_; }

  // Blocks until acked_next_seq >= seq or the deadline passes; true when reached.
  bool WaitForAck(uint64_t seq, absl::Time deadline) const;

  // Ends the connection, persists the cursors and joins the threads. Idempotent.
  void Stop();

 private:
  struct Session;
  struct InFlight {
    uint64_t end_seq;  // exclusive
    size_t bytes;      // uncompressed
  };
  Shipper(const ShipperOptions& options, DurableLog* outbound, std::string log_id, uint64_t acked);

  void Run();  // the connection thread
  // One connection, from dial to the end; returns why it ended.
  absl::Status RunSession(bool* made_progress);
  void WriteLoop(Session* session);
  void ReadLoop(Session* session);
  // Records the first error of the session and wakes everyone.
  void Fail(Session* session, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the log holds beyond the peer's acknowledgement (ShipperProgress).
  void FillProgress(ferry::v1::ShipperProgress& progress) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleAck(Session* session, uint64_t durable_next, uint64_t applied)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistCursors(bool force) ABSL_LOCKS_EXCLUDED(mu_);
  // Notes the log's next_seq for the RPO age.
  void ObserveLog() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after Start.
  const ShipperOptions options_;
  DurableLog* const outbound_;
  Clock* const clock_;
  const std::string log_id_;

  absl::Notification stop_requested_;
  std::thread run_thread_;  // owned by Stop()'s caller; joined once

  mutable absl::Mutex mu_;
  mutable absl::CondVar cv_;  // any change below
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  Session* session_ ABSL_GUARDED_BY(mu_) = nullptr;
  ShipperStatus stats_ ABSL_GUARDED_BY(mu_);
  std::deque<InFlight> inflight_ ABSL_GUARDED_BY(mu_);
  size_t inflight_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // RPO age: (first sequence of a range of records, when the shipper first saw it).
  mutable std::deque<std::pair<uint64_t, absl::Time>> seen_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t observed_next_ ABSL_GUARDED_BY(mu_) = 0;
  // Cursors as last persisted, and when.
  uint64_t persisted_acked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t persisted_applied_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time persisted_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Mutex persist_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one persister at a time, in order
  absl::Mutex join_mu_;                               // serializes Stop()'s join of run_thread_
};

}  // namespace ferry::replication
