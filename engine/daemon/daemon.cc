#include "engine/daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "consistency/grpc/verify_service.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "engine/daemon/apply_cut_barrier.h"
#include "engine/daemon/event_pipeline.h"
#include "engine/daemon/log_retention.h"
#include "engine/daemon/primary_pipeline.h"
#include "engine/daemon/standby_pipeline.h"
#include "engine/daemon/status_report.h"
#include "engine/http/http_server.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"
#include "engine/metrics/metrics.h"
#include "engine/region/role_controller.h"
#include "engine/replication/receiver_router.h"
#include "engine/replication/server.h"

namespace ferry {
namespace {

constexpr char kVersion[] = "0.1.0";

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Source commit time (or heartbeat time) of a log record, in microseconds; 0 when unknown.
int64_t RecordTimeUs(const LogRecord& record) {
  if (record.kind == RecordKind::kHeartbeat) {
    v1::Heartbeat h;
    return h.ParseFromString(record.payload) ? h.time_us() : 0;
  }
  if (record.kind == RecordKind::kSourceEvent) {
    v1::SourceEvent e;
    if (!e.ParseFromString(record.payload)) return 0;
    return e.event_time_us() > 0 ? e.event_time_us() : e.capture_time_us();
  }
  v1::Transaction t;
  return t.ParseFromString(record.payload) ? t.commit_time_us() : 0;
}

}  // namespace

Daemon::Daemon(const config::Config& config, DaemonFactories factories, Clock* clock)
    : config_(config), factories_(std::move(factories)), clock_(clock), started_(clock->Now()) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const config::Config& config,
                                                      DaemonFactories factories, Clock* clock) {
  std::unique_ptr<Daemon> daemon(new Daemon(config, std::move(factories), clock));
  absl::Status s = daemon->StartParts();
  if (!s.ok()) {
    daemon->Shutdown(absl::ZeroDuration());
    return s;
  }
  return daemon;
}

absl::Status Daemon::StartParts() {
  const Role initial = config_.role;
  FERRY_ASSIGN_OR_RETURN(DataDirLock dir_lock, DataDirLock::Acquire(config_.data_dir));
  data_dir_lock_.emplace(std::move(dir_lock));
  FERRY_ASSIGN_OR_RETURN(roles_, RoleController::Open(config_.data_dir, config_.region, initial));
  FERRY_ASSIGN_OR_RETURN(const RegionRecord region, roles_->RecoverAfterRestart());
  if (region.role != initial) {
    spdlog::warn("region {}: persisted role {} overrides the configured role {}", config_.region,
                 RoleName(region.role), RoleName(initial));
  }
  FERRY_ASSIGN_OR_RETURN(outbound_, DurableLog::Open({.path = config_.data_dir + "/outbound"}));
  dr_history_ = std::make_unique<DrHistory>(outbound_.get());
  dr_history_->Load();
  FERRY_ASSIGN_OR_RETURN(inbound_, DurableLog::Open({.path = config_.data_dir + "/inbound"}));
  LoadAppliedTableNames();
  // The paused flag moved from the outbound log into the region state: carry it over once.
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> legacy_paused,
                         outbound_->GetState(kLegacyPausedState));
  if (legacy_paused.value_or("") == "1") {
    FERRY_RETURN_IF_ERROR(roles_->SetPaused(true));
    AppendRequest clear;
    clear.state.emplace_back(kLegacyPausedState, "0");
    FERRY_RETURN_IF_ERROR(outbound_->Append(std::move(clear)).status());
  }
  outbound_retention_ = std::make_unique<LogRetention>(
      clock_, absl::Seconds(config_.log.retention_seconds), config_.log.retention_bytes);
  inbound_retention_ = std::make_unique<LogRetention>(
      clock_, absl::Seconds(config_.log.retention_seconds), config_.log.retention_bytes);
  if (factories_.fence) {
    FERRY_ASSIGN_OR_RETURN(fence_, factories_.fence(config_));
  }
  if (factories_.quarantine) {
    FERRY_ASSIGN_OR_RETURN(quarantine_, factories_.quarantine(config_));
  }

  // The replication listener, in both roles: the peer's stream and its control calls.
  replication::TlsOptions& tls = tls_;
  FERRY_ASSIGN_OR_RETURN(tls.ca_pem, ReadPem(config_.security.tls.ca_file));
  FERRY_ASSIGN_OR_RETURN(tls.cert_pem, ReadPem(config_.security.tls.cert_file));
  FERRY_ASSIGN_OR_RETURN(tls.key_pem, ReadPem(config_.security.tls.key_file));
  router_ = std::make_unique<replication::ReceiverRouter>([this] {
    const RegionRecord r = roles_->Get();
    return absl::StrCat("region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
                        std::string(RegionPhaseName(r.phase)), " under epoch ", r.epoch,
                        ": it takes no stream now");
  });
  control_service_ = std::make_unique<RegionControlService>(
      this, config_.region, config_.security.token.value, config_.peer.region);
  replication::ReplicationServerOptions server_options;
  server_options.listen_address = config_.listen.replication.ToString();
  server_options.tls = tls;
  server_options.max_message_bytes = config_.stream.max_message_bytes;
  std::vector<grpc::Service*> services = {router_.get(), control_service_.get()};
  if (factories_.verify_peer) {
    // The verifier's standby half (docs/verify.md): its cut barrier is lent the apply of each
    // standby pipeline while it runs; its replies carry rows.
    cut_barrier_ = std::make_unique<ApplyCutBarrier>(config_.region);
    consistency::VerifyServiceOptions verify;
    verify.region = config_.region;
    verify.token = config_.security.token.value;
    verify.barrier = cut_barrier_.get();
    verify.open_peer = [this] { return factories_.verify_peer(config_); };
    verify_service_ = std::make_unique<consistency::VerifyPeerService>(std::move(verify));
    services.push_back(verify_service_.get());
    server_options.max_send_message_bytes = config_.stream.max_message_bytes;
  }
  FERRY_ASSIGN_OR_RETURN(replication_server_,
                         replication::ReplicationServer::Start(server_options, services, nullptr));
  FERRY_ASSIGN_OR_RETURN(peer_,
                         RegionControlClient::Create(config_.peer.replication.ToString(), tls,
                                                     config_.security.token.value, config_.region));

  if (region.phase == RegionPhase::kSwitching) {
    // A switchover this primary began: no pipeline until the peer says whether it flipped
    // (the maintenance thread asks); the database stays fenced meanwhile.
    spdlog::warn("region {}: switchover {} is unsettled; asking {} whether it flipped",
                 config_.region, region.operation, config_.peer.region);
    SettleFence();
  } else {
    if (region.role == Role::kPrimary) {
      // A primary that restarts while its peer was promoted must not take a write first.
      absl::MutexLock change(&change_mu_);
      CheckPeerEpoch(absl::Now() + absl::Seconds(1));
    }
    const RegionRecord now = roles_->Get();
    if (now.phase == RegionPhase::kFenced ||
        (now.phase == RegionPhase::kRejoining && now.role == Role::kPrimary)) {
      // No pipeline until an operator rejoins (a rejoin that was running goes on when asked
      // again); the database stays fenced.
      SettleFence();
    } else {
      FERRY_RETURN_IF_ERROR(StartPipeline(now.role));
    }
  }

  // Admin service, with reflection so that grpcurl and friends can discover it.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  admin_service_ = std::make_unique<AdminService>(this, config_.security.admin_token.value);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen.admin.ToString(), grpc::InsecureServerCredentials(),
                           &admin_port_);
  builder.RegisterService(admin_service_.get());
  admin_server_ = builder.BuildAndStart();
  if (admin_server_ == nullptr || admin_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on listen.admin ", config_.listen.admin.ToString()));
  }

  metrics_owner_ = Metrics::Create([this] { return Status(); }, [this] { return Counters(); });
  metrics_.store(metrics_owner_.get());
  FERRY_ASSIGN_OR_RETURN(http_,
                         HttpServer::Start({.listen_address = config_.listen.metrics.ToString()}));
  http_->Handle("/metrics", [m = metrics_owner_.get()](const HttpRequest&) {
    return HttpResponse{200, m->Scrape(), Metrics::kContentType};
  });
  http_->Handle("/healthz", [this](const HttpRequest&) { return Healthz(); });
  http_->Handle("/primary", [this](const HttpRequest&) { return PrimaryCheck(); });
  http_->Handle("/status", [this](const HttpRequest&) { return StatusPage(); });
  http_->Handle("/status.json", [this](const HttpRequest&) { return StatusJson(); });
  maintenance_thread_ = std::thread([this] { MaintenanceLoop(); });
  if (quarantine_ != nullptr) quarantine_thread_ = std::thread([this] { QuarantineCountLoop(); });
  spdlog::info("region {} started as {} (epoch {}): admin {}, metrics {}, replication {}",
               config_.region, RoleName(region.role), roles_->epoch(), admin_port(), metrics_port(),
               region.role == Role::kPrimary ? "-> " + config_.peer.replication.ToString()
                                             : std::to_string(replication_port()));
  return absl::OkStatus();
}

void Daemon::MaintenanceLoop() {
  SetCurrentThreadName("maintenance");
  while (!maintenance_stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    RestartFailedPipeline();
    SettleFence();
    CountErrors();
    SaveAppliedTableNames();
    Trim();
    {
      absl::MutexLock lock(&pipeline_mu_);  // held briefly: one bounded read of the log
      if (events_) events_->CountPending();
    }
  }
}

// Errors by kind for ferry_errors_total: stream disconnects and refusals, apply rollbacks
// (each retry of a failed group). Source errors are counted where they happen. A new pipeline
// counts from zero again; the totals here only grow.
void Daemon::CountErrors() {
  uint64_t stream = 0, apply = 0;
  {
    absl::MutexLock lock(&pipeline_mu_);
    if (primary_) stream = primary_->shipper().status().disconnects;
    if (standby_) {
      stream = standby_->receiver().status().streams_refused;
      apply = standby_->apply().status().resets;
    }
  }
  Metrics* m = metrics_.load();
  if (m == nullptr) return;
  if (stream < stream_errors_seen_) stream_errors_seen_ = 0;  // a new pipeline
  if (apply < apply_errors_seen_) apply_errors_seen_ = 0;
  for (uint64_t i = stream_errors_seen_; i < stream; ++i) m->CountError("stream");
  for (uint64_t i = apply_errors_seen_; i < apply; ++i) m->CountError("apply");
  stream_errors_seen_ = stream;
  apply_errors_seen_ = apply;
}

// Keeps acknowledged (outbound) or applied (inbound) records for log.retention_seconds, or
// until the log holds more than log.retention_bytes; never trims anything still needed.
void Daemon::Trim() {
  std::optional<uint64_t> outbound_safe, inbound_safe;
  {
    absl::MutexLock lock(&pipeline_mu_);
    if (primary_) outbound_safe = primary_->shipper().status().acked_next_seq;
    if (standby_) inbound_safe = standby_->apply().status().applied_seq + 1;
    if (standby_ && events_) {
      inbound_safe = std::min(*inbound_safe, events_->applied_next_seq());
    }
  }
  if (inbound_safe.has_value()) {
    auto retain = inbound_->GetCursor(kApplyRetainCursor);
    if (retain.ok() && retain->has_value() && **retain > 0) {
      inbound_safe = std::min(*inbound_safe, **retain);
    }
  }
  if (outbound_safe.has_value()) {
    if (absl::Status s = outbound_retention_->Trim(*outbound_, *outbound_safe); !s.ok()) {
      spdlog::warn("trimming the outbound log failed: {}", s.ToString());
    }
  }
  if (inbound_safe.has_value()) {
    if (absl::Status s = inbound_retention_->Trim(*inbound_, *inbound_safe); !s.ok()) {
      spdlog::warn("trimming the inbound log failed: {}", s.ToString());
    }
  }
}

EngineCounters Daemon::Counters() {
  EngineCounters c;
  const LogStats out = outbound_->stats(), in = inbound_->stats();
  c.outbound_appended_records = out.appended_records;
  c.outbound_appended_bytes = out.appended_bytes;
  c.outbound_disk_bytes = out.approximate_disk_bytes;
  c.inbound_appended_records = in.appended_records;
  c.inbound_appended_bytes = in.appended_bytes;
  c.inbound_disk_bytes = in.approximate_disk_bytes;
  absl::MutexLock lock(&pipeline_mu_);
  if (primary_) {
    c.captured_transactions = primary_->capture().transactions();
    const auto s = primary_->shipper().status();
    c.stream_wire_bytes = s.wire_bytes;
    c.stream_raw_bytes = s.uncompressed_bytes;
    c.stream_batches = s.batches;
  }
  if (standby_) c.applied_transactions = standby_->apply().status().transactions_applied;
  return c;
}

v1::StatusReply Daemon::Status() {
  StatusSnapshot s;
  std::optional<EventPipelineStatus> events;
  s.region = config_.region;
  s.version = kVersion;
  s.state = roles_->Get();
  s.started = started_;
  s.now = clock_->Now();
  s.outbound = outbound_->stats();
  s.inbound = inbound_->stats();
  s.peer_region = config_.peer.region;
  s.peer_address = config_.peer.replication.ToString();
  s.bytes_from = [this](bool outbound, uint64_t seq) -> uint64_t {
    absl::StatusOr<uint64_t> bytes = (outbound ? *outbound_ : *inbound_).PayloadBytesFrom(seq);
    return bytes.ok() ? *bytes : 0;
  };
  s.record_time_us = [this](bool outbound, uint64_t seq) -> int64_t {
    auto records = (outbound ? *outbound_ : *inbound_).Read(seq, 1, 1);
    return records.ok() && !records->empty() ? RecordTimeUs(records->front()) : 0;
  };
  if (std::string verify = VerifyOperation(); !verify.empty()) s.state.operation = verify;
  {
    absl::MutexLock lock(&pipeline_mu_);
    s.pipeline_error = pipeline_error_;
    s.divergence = divergence_;
    {
      absl::MutexLock fence_lock(&fence_state_mu_);
      s.fence = FenceWordLocked();
      s.fence_error = fence_error_;
    }
    if (!operation_note_.empty()) s.state.operation = operation_note_;
    if (primary_) {
      PrimarySnapshot& p = s.primary.emplace();
      p.captured_position = primary_->capture().CapturedPosition();
      p.captured_position_text = primary_->source().FormatPosition(p.captured_position);
      p.source = primary_->source().Health();
      p.shipper = primary_->shipper().status();
      p.capture_error = primary_->capture_error();
      p.uncaptured = primary_->source().Uncaptured(p.captured_position);
    }
    if (standby_) {
      s.standby = StandbySnapshot{.receiver = standby_->receiver().status(),
                                  .apply = standby_->apply().status()};
      // Before apply bound a round (a new inbound log), the log the receiver recorded.
      if (s.standby->apply.log_id.empty()) {
        auto id = inbound_->GetState(kPeerLogIdState);
        if (id.ok() && id->has_value()) s.standby->apply.log_id = **id;
      }
    }
    if (events_) events = events_->status();
  }
  s.table_counts = (s.primary.has_value() ? captured_tables_ : applied_tables_).Snapshot();
  v1::StatusReply reply = AssembleStatus(s);
  *reply.mutable_last_change() = dr_history_->last_change();
  *reply.mutable_last_verify() = dr_history_->last_verify();
  reply.set_quarantine_pending(QuarantinePending());
  if (events) {
    v1::ObjectsState* o = reply.mutable_objects();
    o->set_mode(events->capturing ? "capture" : "apply");
    o->set_bucket(events->source.upstream_name);
    o->set_connected(events->source.connected);
    o->set_events_applied(events->events_applied);
    if (!events->capturing && s.inbound.next_seq > events->applied_next_seq) {
      o->set_records_pending(s.inbound.next_seq - events->applied_next_seq);
    }
    o->set_last_error(!events->last_error.empty() ? events->last_error : events->source.last_error);
    o->set_dead_letters(events->source.dead_letters);
    for (const std::string& w : events->source.warnings) o->add_warnings(w);
    if (!events->capturing) {
      o->set_target_bucket(events->target);
      o->set_objects_pending(events->objects_pending);
      o->set_bytes_pending(events->bytes_pending);
      o->set_pending_scanned_seq(events->pending_scanned_seq);
    }
  }
  return reply;
}

absl::StatusOr<bool> Daemon::Pause() { return SetPaused(true); }
absl::StatusOr<bool> Daemon::Resume() { return SetPaused(false); }

// Persists the choice first (so that a restarted ferryd keeps it), then holds shipping and
// applying back or lets them go. Returns whether the region was paused before; when the choice
// cannot be persisted, nothing changes and the error says why.
absl::StatusOr<bool> Daemon::SetPaused(bool paused) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const bool was = roles_->paused();
  if (absl::Status s = roles_->SetPaused(paused); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot persist the ", paused ? "paused" : "resumed",
                                               " state: ", s.message()));
  }
  absl::MutexLock lock(&pipeline_mu_);
  if (primary_) primary_->SetPaused(paused);
  if (standby_) standby_->SetPaused(paused);
  if (events_) events_->SetPaused(paused);
  return was;
}

// Liveness: 200 while a pipeline runs (or a role change is swapping them); a stopped table or a
// database that is down does not fail it, a pipeline that could not start does.
HttpResponse Daemon::Healthz() {
  const RegionRecord region = roles_->Get();
  absl::MutexLock lock(&pipeline_mu_);
  const bool running = primary_ != nullptr || standby_ != nullptr;
  if (!running && !pipeline_error_.empty()) {
    return {503, absl::StrCat("unhealthy: ", pipeline_error_, "\n")};
  }
  return {200, absl::StrCat("ok: ", std::string(RoleName(region.role)), " ",
                            std::string(RegionPhaseName(region.phase)), "\n")};
}

// 200 only while this region is the writable, unfenced primary under its epoch: what a DNS
// failover record or a load balancer polls to send writes here.
HttpResponse Daemon::PrimaryCheck() {
  const RegionRecord region = roles_->Get();
  bool shipping;
  {
    absl::MutexLock lock(&pipeline_mu_);
    shipping = primary_ != nullptr;
  }
  if (region.role == Role::kPrimary && region.phase == RegionPhase::kReplicating && shipping &&
      !self_fenced_.load()) {
    return {200, absl::StrCat("primary ", config_.region, " epoch ", region.epoch, "\n")};
  }
  return {503,
          absl::StrCat("not the writable primary: ", config_.region, " is ",
                       std::string(RoleName(region.role)), " ",
                       std::string(RegionPhaseName(region.phase)), " epoch ", region.epoch, "\n")};
}

absl::StatusOr<uint64_t> Daemon::ResumeTable(const std::string& table) {
  const size_t dot = table.find('.');
  const TableName name{table.substr(0, dot), dot == std::string::npos ? "" : table.substr(dot + 1)};
  // Serialised with role changes: the standby pipeline stays while the table replays.
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  StandbyPipeline* standby;
  {
    absl::MutexLock lock(&pipeline_mu_);
    standby = standby_.get();
  }
  if (standby == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is not a standby: only a standby applies, and stops, tables"));
  }
  uint64_t from = 0;
  const ApplyStatus before = standby->apply().status();
  auto it = before.stopped_tables.find(name);
  if (it == before.stopped_tables.end()) {
    return absl::NotFoundError(absl::StrCat("table ", table, " is not stopped"));
  }
  from = it->second.seq;
  absl::Status s = standby->apply().ResumeTable(name);
  if (s.code() == absl::StatusCode::kNotFound) return s;
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("table ", table, " stays stopped: ", s.message()));
  }
  return from;
}

absl::StatusOr<v1::ResnapshotReply> Daemon::Resnapshot(const std::string& table) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const RegionRecord region = roles_->Get();
  PrimaryPipeline* primary;
  {
    absl::MutexLock lock(&pipeline_mu_);
    primary = primary_.get();
  }
  if (region.role != Role::kPrimary || region.phase != RegionPhase::kReplicating ||
      primary == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(region.role)), " and ",
        std::string(RegionPhaseName(region.phase)),
        ": a table is re-snapshotted from the source database; send resnapshot to the primary"));
  }
  FERRY_ASSIGN_OR_RETURN(Source::ResnapshotResult done, primary->Resnapshot(table));
  v1::ResnapshotReply reply;
  reply.set_table(table);
  reply.set_rows(done.rows);
  reply.set_id(done.id);
  return reply;
}

absl::StatusOr<v1::ReseedReply> Daemon::Reseed(const std::string& discard_log_id) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const RegionRecord region = roles_->Get();
  if (region.role != Role::kStandby || region.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(region.role)), " and ",
        std::string(RegionPhaseName(region.phase)), ": only a replicating standby is re-seeded"));
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> keep, inbound_->GetState(kPeerLogIdState));
  if (!keep.has_value() || keep->empty()) {
    return absl::FailedPreconditionError(
        "the inbound log copies no upstream log yet: start the peer region with its new log, "
        "let it connect (status shows log_identity.inbound_log_id), then re-seed");
  }
  if (*keep == discard_log_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "log ", discard_log_id,
        " is the log the inbound log copies: its progress is never "
        "discarded (re-seeding discards the progress of the log the peer had before)"));
  }
  if (inbound_->first_seq() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("the inbound log starts at seq ", inbound_->first_seq(),
                     ", so it no longer holds log ", *keep,
                     " from its beginning: stop ferryd, re-create this region's data_dir and start "
                     "it again, then re-seed (docs/operations.md, Re-seeding a region)"));
  }
  // Refuse what DiscardProgress would refuse before stopping anything: a refused re-seed leaves
  // the pipeline running. (DiscardProgress checks again: the target may change meanwhile.)
  {
    absl::StatusOr<std::unique_ptr<Sink>> sink =
        factories_.sink(config_, PipelineContext{.epoch = roles_->epoch()});
    if (!sink.ok()) return sink.status();
    absl::StatusOr<TargetProgress> target = (*sink)->CommittedProgress();
    if (!target.ok()) return Annotate(target.status(), "reading the target's progress");
    if (target->applied_seq > 0 && target->log_id == *keep) {
      return absl::FailedPreconditionError(
          absl::StrCat("the target's progress (seq ", target->applied_seq, ") counts log ", *keep,
                       ", the log the inbound log copies: there is nothing to re-seed"));
    }
    if (target->applied_seq > 0 && target->log_id != discard_log_id) {
      return absl::FailedPreconditionError(
          absl::StrCat("the target's progress (seq ", target->applied_seq, ") counts log ",
                       target->log_id.empty() ? "unrecorded" : target->log_id, ", not ",
                       discard_log_id.empty() ? "unrecorded" : discard_log_id,
                       ": nothing discarded (status shows the log as log_identity.target_log_id)"));
    }
  }
  const std::string operation = absl::StrCat("reseed-", region.epoch, "-", ++operations_);
  {
    absl::MutexLock lock(&pipeline_mu_);
    operation_note_ = absl::StrCat(operation, ": discarding the target's progress of log ",
                                   discard_log_id.empty() ? "unrecorded" : discard_log_id);
  }
  spdlog::warn(
      "region {}: {}: stopping the standby pipeline to discard the target's progress of "
      "log {} and apply log {} from its beginning",
      config_.region, operation, discard_log_id.empty() ? "unrecorded" : discard_log_id, *keep);
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);  // what is not applied stays in the log
  absl::StatusOr<uint64_t> discarded = absl::UnavailableError("no sink");
  {
    absl::StatusOr<std::unique_ptr<Sink>> sink =
        factories_.sink(config_, PipelineContext{.epoch = roles_->epoch()});
    discarded = sink.ok() ? (*sink)->DiscardProgress(discard_log_id, *keep) : sink.status();
  }
  absl::Status started = StartPipeline(Role::kStandby);
  {
    absl::MutexLock lock(&pipeline_mu_);
    operation_note_.clear();
    pipeline_error_ = started.ok() ? "" : started.ToString();
  }
  if (!discarded.ok()) {
    return Annotate(discarded.status(), absl::StrCat(operation, ": nothing more discarded"));
  }
  if (!started.ok()) return started;
  v1::ReseedReply reply;
  reply.set_discarded_applied_seq(*discarded);
  reply.set_inbound_log_id(*keep);
  return reply;
}

int Daemon::admin_port() const { return admin_port_; }
int Daemon::metrics_port() const { return http_ != nullptr ? http_->port() : 0; }
int Daemon::replication_port() const {
  return replication_server_ != nullptr ? replication_server_->port() : 0;
}

void Daemon::Shutdown(absl::Duration drain) {
  {
    // Role changes, pause/resume and resume-table are refused from here on (shut_down_); the
    // lock is released before the servers stop, so an admin call waiting for it returns and
    // the admin server's shutdown never waits on a handler that waits on us.
    absl::MutexLock change(&change_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    StopPipeline(clock_->Now() + drain, /*apply_backlog=*/false);
  }
  maintenance_stop_.Notify();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  SaveAppliedTableNames();  // names that appeared since its last round
  if (quarantine_thread_.joinable()) quarantine_thread_.join();
  // gRPC's deadlines are on the system clock, whatever clock the daemon runs on.
  if (admin_server_) admin_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  if (replication_server_) replication_server_->Shutdown();
  if (http_) http_->Stop();  // no handler runs after this
  metrics_.store(nullptr);
  metrics_owner_.reset();
  if (outbound_) outbound_->Close();
  if (inbound_) inbound_->Close();
  spdlog::info("region {} stopped", config_.region);
}

Daemon::~Daemon() { Shutdown(absl::ZeroDuration()); }

}  // namespace ferry
