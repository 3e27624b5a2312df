// StandbyPipeline: what runs while this region is standby.
//
//   peer ==> ReplicationServer -> Receiver -> inbound DurableLog -> ApplyScheduler -> Sink
//
// Started when the region becomes standby, stopped when it stops being one (see
// primary_pipeline.h). Owns the receiver, its gRPC server, the sink and the apply scheduler;
// the inbound log belongs to the daemon and outlives it.
//
// Threads: the server, the receiver and the scheduler run their own. Every method is
// thread-safe.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto standby,
//                          StandbyPipeline::Start(options, inbound, std::move(sink)));
//   int port = standby->port();
//   standby->Stop(clock->Now() + absl::Seconds(20));
#pragma once

#include <atomic>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/api/sink.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/base/clock.h"
#include "engine/daemon/apply_cut_barrier.h"
#include "engine/log/durable_log.h"
#include "engine/replication/receiver.h"
#include "engine/replication/receiver_router.h"
#include "engine/replication/server.h"

namespace ferry {

struct StandbyPipelineOptions {
  replication::ReceiverOptions receiver;
  replication::ReplicationServerOptions server;
  // When set, the receiver is attached to this router of a listener the owner runs (the
  // daemon's, which listens in both roles), and `server` is not used. Must outlive the pipeline.
  replication::ReceiverRouter* router = nullptr;
  ApplyOptions apply;
  // The verifier's cut barrier (docs/verify.md), owned by the daemon with the verify service on
  // its listener: this pipeline lends it its apply while it runs. Null: none.
  ApplyCutBarrier* cut_barrier = nullptr;
  // Start with apply held back (receiving goes on).
  bool start_paused = false;
  // Time for Stop()'s deadline; also given to apply (options.apply.clock). Not owned.
  Clock* clock = Clock::Real();
};

// What the receiver carries back to the primary of apply's state (proto/replication.md,
// PeerApplyState): at most PeerApplyReport::kMaxTables stopped tables, texts cut.
ferry::v1::PeerApplyState PeerApplyStateOf(const ApplyStatus& status);

class StandbyPipeline {
 public:
  // Starts listening for the peer and applying what `inbound` (which must outlive the
  // pipeline) holds. Errors: kUnavailable when the listener cannot bind; those of the receiver
  // and the scheduler's start.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StandbyPipeline>> Start(
      StandbyPipelineOptions options, DurableLog* inbound, std::unique_ptr<Sink> sink);
  ~StandbyPipeline();  // Stop(now)

  // Holds apply back, or lets it go. Receiving goes on either way.
  void SetPaused(bool paused);

  // Refuses new batches, then stops apply, and returns whether everything received was
  // applied. Idempotent. With `apply_backlog` (a role change: the new primary must hold
  // everything) apply first commits what is durable here, until `deadline`. Without it (a
  // shutdown) apply stops at once: groups in flight roll back (a statement waits at most the
  // sink's lock_timeout), and everything not applied stays in the inbound log, applied after
  // the restart; the backlog never holds a shutdown back.
  bool Stop(absl::Time deadline, bool apply_backlog = true);

  // The port of the pipeline's own server (0 when attached to a router).
  int port() const { return server_ != nullptr ? server_->port() : 0; }
  const replication::Receiver& receiver() const { return *receiver_; }
  const ApplyScheduler& apply() const { return *apply_; }
  ApplyScheduler& apply() { return *apply_; }

 private:
  StandbyPipeline(DurableLog* inbound, Clock* clock) : inbound_(inbound), clock_(clock) {}
  // Ends the stream and refuses new ones (the receiver, then the router or own server).
  void StopReceiving();

  DurableLog* const inbound_;
  Clock* const clock_;
  // Constant after Start(); destroyed in reverse order of declaration.
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<replication::Receiver> receiver_;
  std::unique_ptr<replication::ReplicationServer> server_;  // unless attached to router_
  replication::ReceiverRouter* router_ = nullptr;
  ApplyCutBarrier* cut_barrier_ = nullptr;  // not owned
  std::unique_ptr<ApplyScheduler> apply_;

  // apply_ once it runs, for the receiver's apply_state callback (the receiver starts first).
  std::atomic<const ApplyScheduler*> apply_for_peer_{nullptr};

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry
