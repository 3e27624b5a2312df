// Daemon: one region's ferryd, wired from its parts.
//
//   RoleController   the region's persisted state (role, epoch, phase, paused); the only code
//                    that changes it (engine/region/role_controller.h)
//   PrimaryPipeline  Source -> capture -> outbound log -> Shipper ==> peer   (while primary)
//   StandbyPipeline  peer ==> Receiver -> inbound log -> apply -> Sink       (while standby)
//   LogRetention     trims each log (one per log, on the maintenance thread)
//   admin gRPC service (status, pause, resume, reverse, ...); one HTTP server (engine/http) on
//   listen.metrics for /metrics, /healthz (liveness) and /primary (200 only on the writable
//   primary)
//   the replication listener, in both roles: the peer's stream (to the standby pipeline's
//   receiver, through a ReceiverRouter) and the peer's control calls (RegionControl)
//   DatabaseFence  the database refuses application writes unless this region is the writable
//                  primary (invariant 8); raised and lifted with the role
//
// A planned switchover (Reverse, docs/operations.md "Switchover") runs on the primary: it fences
// its database, drains what it captured to the standby, and asks the standby to flip
// (AcceptSwitchover: apply everything, prepare the capture, raise the epoch durably, become
// primary, lift its fence); then it becomes the new primary's standby. Before the standby's
// flip, a failure rolls both back; after it, the old primary completes, on restart if need be,
// by asking the peer (ResolveSwitchover).
//
// Exactly one pipeline runs at a time. A role change is: stop the running pipeline (drained),
// persist the new role and epoch, start the other pipeline (ChangeRole). The daemon knows
// connectors only through the Source and Sink interfaces; main() passes factories for them, so
// tests can wire the daemon to anything.
//
// Threads: Start() spawns the maintenance thread (trims logs, counts errors); the pipelines,
// gRPC servers and metrics exposer run their own. Status(), Pause(), Resume() and ChangeRole()
// are thread-safe; role changes are serialised.
//
// Example (see cmd/ferryd.cc):
//   FERRY_ASSIGN_OR_RETURN(auto daemon, Daemon::Start(config, factories));
//   WaitForSigterm();
//   daemon->Shutdown(absl::Seconds(20));
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "consistency/grpc/verify_client.h"
#include "consistency/verify_report.h"
#include "engine/admin/admin_service.h"
#include "engine/api/event_sink.h"
#include "engine/api/fence.h"
#include "engine/api/quarantine.h"
#include "engine/api/sink.h"
#include "engine/api/source.h"
#include "engine/base/clock.h"
#include "engine/config/config.h"
#include "engine/daemon/data_dir_lock.h"
#include "engine/daemon/dr_history.h"
#include "engine/daemon/kept_changes.h"
#include "engine/daemon/region_control.h"
#include "engine/stats/table_counts.h"

namespace ferry {
namespace consistency {
class VerifyPeerService;
}  // namespace consistency
class ApplyCutBarrier;

class HttpServer;
struct HttpResponse;
class Metrics;
struct EngineCounters;
class DurableLog;
class EventPipeline;
class LogRetention;
class PrimaryPipeline;
class RoleController;
struct RegionRecord;
class StandbyPipeline;
namespace replication {
class ReceiverRouter;
class ReplicationServer;
}  // namespace replication

// What a factory learns of the region when the daemon starts a pipeline.
struct PipelineContext {
  // The region's epoch now (a sink names its progress with it: the fence against an applier of
  // an older epoch).
  uint64_t epoch = 0;
  // A rejoin runs (docs/operations.md, "Rejoin"): until its repair, apply's conflicts take the
  // new primary's version (the former primary's own changes are in the quarantine).
  bool rejoining = false;
};

// `ferryctl verify --bucket` on the primary (docs/objects.md, "Verify"): what the daemon gives
// the object path's verifier, and what it gets back.
struct BucketVerifyRun {
  uint32_t max_keys = 1000;
  bool repair = false;
  // Takes the cut (the outbound log's end now) and returns once the standby's bucket apply
  // reached it; kDeadlineExceeded, kCancelled or kFailedPrecondition (no bucket apply there).
  std::function<absl::Status()> wait_for_cut;
  std::function<absl::Status()> check_cancelled;
  std::function<void(const std::string&)> step;
};
struct BucketVerifyOutcome {
  v1::VerifyTableResult bucket;  // keys as one "key" column
  uint64_t keys_compared = 0;
  uint64_t bytes_read = 0;
  bool rechecked = false;
  uint64_t recheck_differences = 0;
};

struct DaemonFactories {
  // Builds the region's change source. Called each time the primary pipeline starts.
  std::function<absl::StatusOr<std::unique_ptr<Source>>(const config::Config&,
                                                        const PipelineContext&)>
      source;
  // Builds the region's apply target. Called each time the standby pipeline starts.
  std::function<absl::StatusOr<std::unique_ptr<Sink>>(const config::Config&,
                                                      const PipelineContext&)>
      sink;
  // The verifier (docs/verify.md); without both, verify is refused. Standby: a session on this
  // region's database (its snapshot taken as it opens). Primary: runs a verify as coordinator
  // against `standby`, filling in the database's part of the options.
  std::function<absl::StatusOr<std::unique_ptr<consistency::StandbyPeer>>(const config::Config&)>
      verify_peer;
  // The bucket's verifier (set with objects:); without it, verify --bucket is refused.
  std::function<absl::StatusOr<BucketVerifyOutcome>(const config::Config&, const BucketVerifyRun&)>
      verify_bucket;
  std::function<absl::StatusOr<consistency::RegionVerifyResult>(
      const config::Config&, consistency::RegionVerifyOptions, consistency::GrpcStandbyPeer&)>
      verify;
  // Builds the region's database fence. Optional: unset, the database is never fenced (tests
  // whose databases are doubles).
  std::function<absl::StatusOr<std::unique_ptr<DatabaseFence>>(const config::Config&)> fence;
  // The quarantine on the region's database (rejoin and ferryctl quarantine). Optional: unset,
  // both are refused.
  std::function<absl::StatusOr<std::unique_ptr<QuarantineStore>>(const config::Config&)> quarantine;
  // Optional (null: none): a second source of non-transaction events (a bucket's object
  // events) and its apply target, run beside the database pipeline by an EventPipeline
  // (engine/daemon/event_pipeline.h). Called each time the matching pipeline starts.
  std::function<absl::StatusOr<std::unique_ptr<Source>>(const config::Config&,
                                                        const PipelineContext&)>
      event_source;
  std::function<absl::StatusOr<std::unique_ptr<EventSink>>(const config::Config&,
                                                           const PipelineContext&)>
      event_sink;
  // Optional (set with objects:): a source event of the outbound log as a quarantine entry
  // (connectors/s3/kept_object.h), for a rejoin to keep the objects never shipped; nullopt for
  // an event that names no object.
  KeptEventFn kept_event;
};

class Daemon final : public AdminBackend, public RegionControlBackend {
 public:
  // Opens the region state and logs, settles a role change a crash interrupted, starts the
  // listeners and the role's pipeline. Fails when a listener cannot bind, the data_dir belongs
  // to another region, or a log is corrupt; a database that is down is not a start failure (the
  // pipeline retries and status says so). `clock` (default: the real one) must outlive it.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Daemon>> Start(const config::Config& config,
                                                                     DaemonFactories factories,
                                                                     Clock* clock = Clock::Real());
  ~Daemon() override;

  // Stops, draining for at most `drain` what a restart would lose time on: a primary's source
  // stops capturing and the shipper gets what was captured acknowledged (the RPO of a planned
  // stop). A standby does not apply its backlog first: what it received is durable in the
  // inbound log and is applied after the restart; apply's groups in flight roll back. Then
  // everything stops. Idempotent.
  void Shutdown(absl::Duration drain);

  // Changes this region's role at run time: stops the running pipeline (draining for at most
  // `drain`), raises the epoch and persists the new role, starts the other pipeline. A crash
  // before the new role is persisted restarts in the old role; after it, in the new one.
  // kFailedPrecondition when the region is not replicating in the other role already or
  // another change runs; the new pipeline's start error otherwise (the role is changed then,
  // status and /healthz show the error, and the maintenance thread tries the start again each
  // second).
  [[nodiscard]] absl::Status ChangeRole(Role target, absl::Duration drain);

  v1::StatusReply Status() override;
  absl::StatusOr<bool> Pause() override;
  absl::StatusOr<bool> Resume() override;
  absl::StatusOr<uint64_t> ResumeTable(const std::string& table) override;
  // Re-seeding a region (docs/operations.md): on a replicating standby whose inbound log holds
  // its upstream log from seq 1, stops the standby pipeline, has a fresh sink discard the
  // target's progress of `discard_log_id` (Sink::DiscardProgress: never the inbound log's own
  // log's), and starts the pipeline again, whatever the outcome. status shows the operation
  // while it runs.
  absl::StatusOr<v1::ReseedReply> Reseed(const std::string& discard_log_id) override;
  // Re-snapshotting a table (docs/operations.md): on the replicating primary, has the source
  // copy the table at a consistent cut (Source::Resnapshot); refused on a standby. Serialised
  // with role changes, so the primary pipeline stays while the copy runs.
  absl::StatusOr<v1::ResnapshotReply> Resnapshot(const std::string& table) override;
  // Verifying the regions (docs/verify.md, daemon_verify.cc): on the replicating primary, one at
  // a time, under an operation id that status shows; refused while paused.
  absl::Status Verify(const v1::VerifyRequest& request,
                      const std::function<void(const v1::VerifyEvent&)>& emit,
                      const std::function<bool()>& cancelled) override;
  // A planned switchover (see the top of this file), sent to either region: a standby has its
  // primary run it. Errors as the Reverse RPC in proto/admin.proto.
  absl::StatusOr<v1::ReverseReply> Reverse(absl::Duration timeout) override;
  // An unplanned failover of this standby (docs/operations.md, "Promote"). Errors as the
  // Promote RPC in proto/admin.proto.
  absl::StatusOr<v1::PromoteReply> Promote(bool force, absl::Duration timeout) override;
  // A failback of this former primary (docs/operations.md, "Rejoin"; daemon_rejoin.cc). Errors
  // as the Rejoin RPC in proto/admin.proto.
  absl::StatusOr<v1::RejoinReply> Rejoin(absl::Duration timeout) override;
  absl::StatusOr<v1::QuarantineReply> Quarantine(const v1::QuarantineRequest& request) override;

  // RegionControlBackend (the peer's calls).
  absl::StatusOr<v1::RegionInfo> AcceptSwitchover(const v1::SwitchoverRequest& request,
                                                  absl::Time deadline) override;
  v1::RegionInfo Probe(const std::string& abort_operation) override;
  absl::StatusOr<v1::ReverseOutcome> ReverseForPeer(absl::Duration timeout) override;
  absl::StatusOr<v1::QuarantineKept> KeepQuarantined(const v1::QuarantineBatch& batch) override;
  absl::StatusOr<v1::RejoinRepairReply> RepairForRejoin(const std::string& operation,
                                                        const std::string& region, bool repair,
                                                        bool bucket,
                                                        absl::Duration timeout) override;

  // Changes kept in ferry.quarantine awaiting an operator's decision (QuarantineStore::Pending),
  // as last counted: 0 while the table does not exist (or the factories make no quarantine),
  // -1 when the database could not be asked. A thread of its own counts every 2 s, when no
  // other quarantine call runs (a rejoin keeping changes, an operator's decision), so status
  // never waits for them or for a slow database. Thread-safe.
  int64_t QuarantinePending() const { return quarantine_pending_.load(); }

  // Bound ports (listen addresses may use port 0). The replication listener runs in both roles.
  int admin_port() const;
  int metrics_port() const;
  int replication_port() const;

 private:
  explicit Daemon(const config::Config& config, DaemonFactories factories, Clock* clock);
  absl::Status StartParts();
  // The primary's side of a switchover (Reverse on the primary, or asked by the peer).
  absl::StatusOr<v1::ReverseOutcome> RunReverse(absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(change_mu_);
  // Before the flip: lifts the fence and returns to replicating as primary; `why` annotated.
  absl::Status RollBackReverse(const std::string& operation, const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  // After the peer flipped to `peer_epoch`: stops the primary pipeline and becomes its standby.
  absl::Status CompleteReverse(const std::string& operation, uint64_t peer_epoch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  // A primary left switching (a crash, or the peer's answer lost): asks the peer whether it
  // flipped (aborting the switchover there if it did not) and completes or rolls back. Returns
  // false when the peer did not answer (the region stays switching and fenced).
  absl::StatusOr<bool> ResolveSwitchover(absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  // Brings the database fence to what the region's state requires (raised unless replicating
  // as primary). Failures are kept for status and retried by the maintenance thread.
  void SettleFence() ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  // A replicating primary asks its peer for its epoch: a higher one fences this region for good
  // (invariant 8: it was promoted elsewhere); with failover.self_fence_after_seconds, no answer
  // for that long fences the database until the peer answers again. `deadline` bounds the call.
  void CheckPeerEpoch(absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  // A fenced old primary's divergence from the new primary's answer (`peer`), when the new
  // primary's inbound log copies this region's outbound log.
  void NoteDivergence(const v1::RegionInfo& peer) ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  FenceNotice NoticeFor(const RegionRecord& region) const;
  // A rejoin's steps on the former primary (daemon_rejoin.cc): capture what the slot still
  // holds into the outbound log (the database is fenced: up to a marker), then keep every record
  // from `from` on in the peer's quarantine. Return the outbound log's end / the changes kept.
  absl::StatusOr<uint64_t> DrainSlot(const std::string& operation, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  // A promote's last step: the changes received for the `stopped` tables (never applied here)
  // kept in this region's quarantine. Returns how many.
  absl::StatusOr<uint64_t> KeepStoppedTables(const StoppedTables& stopped,
                                             const std::string& source_region);
  // Reads this region's row for each change of `batch` (old_primary_row) and has the peer keep
  // them in its quarantine under `operation`.
  absl::StatusOr<v1::QuarantineKept> SendToQuarantine(v1::QuarantineBatch& batch,
                                                      const std::string& operation,
                                                      absl::Time deadline);
  // A rejoin's anomalies (`compared`: a comparison without repair) kept in the peer's
  // quarantine with this region's rows. Returns how many.
  absl::StatusOr<uint64_t> KeepAnomalies(const v1::RejoinRepairReply& compared,
                                         const std::string& operation, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  absl::StatusOr<KeptCount> QuarantineFrom(uint64_t from, const std::string& operation,
                                           absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  // Has a new source make upstream keep everything from now on for this region's turn as
  // primary under `epoch` (Source::PrepareTakeover on the outbound log).
  absl::Status PrepareCapture(uint64_t epoch);
  v1::RegionInfo Info() ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  // kFailedPrecondition "region R's capture stopped until an operator acts (<its error>)" once
  // the primary's capture stopped so (PrimaryPipeline::capture_halt); OK otherwise. What a
  // switchover and a verify refuse on: nothing committed from then on reaches the standby.
  absl::Status CaptureHalted() ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  void SetOperationNote(std::string note) ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  absl::Status StartPipeline(Role role) ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  // The role's event pipeline (null when the factories make none).
  absl::StatusOr<std::unique_ptr<EventPipeline>> StartEvents(Role role,
                                                             const PipelineContext& context);
  // `apply_backlog`: a standby applies what it received before it stops (a role change), its
  // bucket's events too, until `deadline`. Returns false when a standby's bucket apply stopped
  // short of the inbound log's end (not drained in time, paused, or not asked to drain).
  bool StopPipeline(absl::Time deadline, bool apply_backlog)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_) ABSL_LOCKS_EXCLUDED(pipeline_mu_);
  void MaintenanceLoop();
  // The names of every table apply has applied here, kept in the inbound log's state
  // (kAppliedTablesState), so that a restarted standby lists them, and has their series, from
  // its start (daemon_view.cc). Load: at start; Save: maintenance thread, when names appeared,
  // and once more at shutdown after it stopped.
  void LoadAppliedTableNames();
  void SaveAppliedTableNames();
  // Counts the quarantine's pending entries every 2 s until maintenance_stop_ (daemon_view.cc).
  void QuarantineCountLoop() ABSL_LOCKS_EXCLUDED(quarantine_mu_);
  void RestartFailedPipeline() ABSL_LOCKS_EXCLUDED(change_mu_);
  void RestartFailedPipelineLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(change_mu_);
  void Trim();
  void CountErrors();
  absl::StatusOr<bool> SetPaused(bool paused);
  EngineCounters Counters();
  HttpResponse Healthz();
  HttpResponse PrimaryCheck();
  HttpResponse StatusPage();  // /status (daemon_view.cc)
  HttpResponse StatusJson();  // /status.json: Status() in protobuf's JSON form
  // Records a change of direction this region took part in (status' last_change).
  void RecordChange(const std::string& kind, const std::string& operation, absl::Time started,
                    uint64_t epoch, const std::string& new_primary, const v1::LossBound* loss);

  const config::Config config_;
  const DaemonFactories factories_;
  Clock* const clock_;
  const absl::Time started_;
  // Constant after StartParts().
  std::optional<DataDirLock> data_dir_lock_;
  std::unique_ptr<RoleController> roles_;
  std::unique_ptr<DurableLog> outbound_;
  std::unique_ptr<DurableLog> inbound_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> admin_server_;
  int admin_port_ = 0;
  replication::TlsOptions tls_;                  // the replication listener's and its clients'
  std::unique_ptr<DatabaseFence> fence_;         // null: the database is not fenced
  std::unique_ptr<QuarantineStore> quarantine_;  // null: no rejoin, no quarantine verbs
  absl::Mutex quarantine_mu_;  // one quarantine call at a time (QuarantineStore is not shared)
  // The verifier's standby half (daemon_verify.cc); before the listener that hosts it.
  std::unique_ptr<ApplyCutBarrier> cut_barrier_;
  std::unique_ptr<consistency::VerifyPeerService> verify_service_;
  std::unique_ptr<replication::ReceiverRouter> router_;
  std::unique_ptr<RegionControlService> control_service_;
  std::unique_ptr<replication::ReplicationServer> replication_server_;
  std::unique_ptr<RegionControlClient> peer_;
  std::unique_ptr<Metrics> metrics_owner_;
  std::unique_ptr<HttpServer> http_;  // listen.metrics: /metrics, /healthz, /primary
  // The metrics endpoint once it runs; pipeline hooks read it (they may start first, and a
  // batch before then is simply not observed).
  std::atomic<Metrics*> metrics_{nullptr};

  // Serialises role changes, pause/resume, resume-table, resnapshot and the start of shutdown (held
  // across a pipeline's drain and start; never while the admin or HTTP server stops).
  absl::Mutex change_mu_ ABSL_ACQUIRED_BEFORE(pipeline_mu_);
  bool shut_down_ ABSL_GUARDED_BY(change_mu_) = false;
  // The running pipeline (at most one is set). Held briefly by readers (status, maintenance).
  mutable absl::Mutex pipeline_mu_;
  std::unique_ptr<PrimaryPipeline> primary_ ABSL_GUARDED_BY(pipeline_mu_);
  std::unique_ptr<StandbyPipeline> standby_ ABSL_GUARDED_BY(pipeline_mu_);
  // The event pipeline of the role, when the factories make one.
  std::unique_ptr<EventPipeline> events_ ABSL_GUARDED_BY(pipeline_mu_);
  std::string pipeline_error_ ABSL_GUARDED_BY(pipeline_mu_);
  uint64_t operations_ ABSL_GUARDED_BY(change_mu_) = 0;
  // A switchover runs on this region (RunReverse): a second one is refused, not queued.
  std::atomic<bool> reversing_{false};
  // Switchovers the peer aborted before they flipped here (Probe): never flipped any more.
  std::vector<std::string> aborted_switchovers_ ABSL_GUARDED_BY(change_mu_);
  // The operation running now with its step ("" when none), for status' operation field.
  std::string operation_note_ ABSL_GUARDED_BY(pipeline_mu_);
  // The last switchover this region flipped in (as the standby).
  std::string flipped_operation_ ABSL_GUARDED_BY(pipeline_mu_);
  // A fenced old primary's divergence (known once the new primary answered).
  v1::Divergence divergence_ ABSL_GUARDED_BY(pipeline_mu_);
  // Serialises the fence's database calls (held across them; never while pipeline_mu_ is).
  absl::Mutex fence_mu_ ABSL_ACQUIRED_AFTER(change_mu_);
  // The database fence as last set: "" unknown, "lifted", or the notice's message; and why the
  // last attempt failed. Held briefly, never across a database call.
  mutable absl::Mutex fence_state_mu_;
  std::string fence_applied_ ABSL_GUARDED_BY(fence_state_mu_);
  std::string fence_error_ ABSL_GUARDED_BY(fence_state_mu_);
  // status' `fence`: "" (never set), "lifted" or "raised".
  std::string FenceWordLocked() const ABSL_SHARED_LOCKS_REQUIRED(fence_state_mu_);
  // The primary has not heard from its peer for failover.self_fence_after_seconds.
  std::atomic<bool> self_fenced_{false};
  absl::Time peer_answered_ ABSL_GUARDED_BY(change_mu_) = absl::InfinitePast();

  // The verify running now ("" when none) and its step, for status' operation field.
  absl::Mutex verify_mu_;
  std::string verify_operation_ ABSL_GUARDED_BY(verify_mu_);
  std::string VerifyOperation() ABSL_LOCKS_EXCLUDED(verify_mu_);
  // verify --bucket (daemon_verify_bucket.cc), under `operation`; `step` reports progress.
  absl::Status VerifyBucket(const v1::VerifyRequest& request, const std::string& operation,
                            const std::function<void(const std::string&)>& step,
                            const std::function<void(const v1::VerifyEvent&)>& emit,
                            const std::function<bool()>& cancelled);

  // Per-table counts (status' tables): what capture made durable and what apply committed,
  // since ferryd started; both kept across role changes.
  TableCounts captured_tables_;
  TableCounts applied_tables_;
  // The last switchover or promote and the last verify (constant pointer after StartParts()).
  std::unique_ptr<DrHistory> dr_history_;
  // QuarantinePending's last count, written by the quarantine thread only (daemon_view.cc).
  std::atomic<int64_t> quarantine_pending_{0};
  std::thread quarantine_thread_;  // runs QuarantineCountLoop while quarantine_ is set

  // Maintenance thread only.
  std::unique_ptr<LogRetention> outbound_retention_;
  std::unique_ptr<LogRetention> inbound_retention_;
  uint64_t stream_errors_seen_ = 0;
  size_t applied_tables_saved_ = 0;  // names in kAppliedTablesState
  uint64_t apply_errors_seen_ = 0;
  absl::Notification maintenance_stop_;
  std::thread maintenance_thread_;
};

}  // namespace ferry
