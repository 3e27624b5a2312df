#include "engine/daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "consistency/grpc/verify_service.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "engine/capture/log_capture_target.h"
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
  FERRY_ASSIGN_OR_RETURN(inbound_, DurableLog::Open({.path = config_.data_dir + "/inbound"}));
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
      CheckPeerEpoch(clock_->Now() + absl::Seconds(1));
    }
    const RegionRecord now = roles_->Get();
    if (now.phase == RegionPhase::kFenced) {
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
  maintenance_thread_ = std::thread([this] { MaintenanceLoop(); });
  spdlog::info("region {} started as {} (epoch {}): admin {}, metrics {}, replication {}",
               config_.region, RoleName(region.role), roles_->epoch(), admin_port(), metrics_port(),
               region.role == Role::kPrimary ? "-> " + config_.peer.replication.ToString()
                                             : std::to_string(replication_port()));
  return absl::OkStatus();
}

// Builds the role's pipeline without holding pipeline_mu_ (a factory may connect to a database,
// the server binds), then installs it. REQUIRES: change_mu_ held, or the daemon is starting.
absl::Status Daemon::StartPipeline(Role role) {
  const PipelineContext context{.epoch = roles_->epoch()};
  const bool paused = roles_->paused();
  RoleController* roles = roles_.get();
  auto epoch = [roles] { return roles->epoch(); };
  const replication::TlsOptions& tls = tls_;

  if (role == Role::kPrimary) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Source> source, factories_.source(config_, context));
    PrimaryPipelineOptions po;
    po.region = config_.region;
    po.epoch = epoch;
    po.start_paused = paused;
    po.clock = clock_;
    po.on_source_error = [this](const absl::Status&) {
      if (Metrics* m = metrics_.load()) m->CountError("source");
    };
    replication::ShipperOptions& so = po.shipper;
    so.peer_address = config_.peer.replication.ToString();
    so.token = config_.security.token.value;
    so.tls = tls;
    so.compression_level = config_.stream.compression_level;
    so.window_bytes = config_.stream.window_bytes;
    so.max_batch_bytes = config_.stream.max_batch_bytes;
    so.max_message_bytes = config_.stream.max_message_bytes;
    so.backoff.min = absl::Milliseconds(config_.stream.reconnect_min_ms);
    so.backoff.max = absl::Milliseconds(config_.stream.reconnect_max_ms);
    so.on_batch_sent = [this](uint64_t records) {
      if (Metrics* m = metrics_.load()) m->ObserveBatchRecords(static_cast<double>(records));
    };
    FERRY_ASSIGN_OR_RETURN(
        std::unique_ptr<PrimaryPipeline> primary,
        PrimaryPipeline::Start(std::move(po), outbound_.get(), std::move(source)));
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EventPipeline> events, StartEvents(role, context));
    {
      absl::MutexLock lock(&pipeline_mu_);
      primary_ = std::move(primary);
      events_ = std::move(events);
      pipeline_error_.clear();
    }
    SettleFence();  // lifted: the database takes writes
    return absl::OkStatus();
  }
  // A standby's database is fenced, and holds nothing for a capture (the slot of its last turn
  // as primary, or of a switchover rolled back, would retain WAL).
  SettleFence();
  {
    absl::StatusOr<std::unique_ptr<Source>> source = factories_.source(config_, context);
    absl::Status released = source.ok() ? (*source)->ReleaseCapture() : source.status();
    if (!released.ok()) {
      spdlog::warn("region {}: releasing the capture's upstream position failed: {}",
                   config_.region, released.ToString());
    }
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Sink> sink, factories_.sink(config_, context));
  StandbyPipelineOptions options;
  options.start_paused = paused;
  options.clock = clock_;
  replication::ReceiverOptions& ro = options.receiver;
  ro.region = config_.region;
  ro.expected_peer_region = config_.peer.region;
  ro.token = config_.security.token.value;
  ro.epoch = epoch;
  ro.adopt_epoch = [roles](uint64_t e) { return roles->AdoptEpoch(e).status(); };
  ro.max_uncompressed_batch_bytes = config_.stream.max_message_bytes * 4;
  options.router = router_.get();
  options.cut_barrier = cut_barrier_.get();
  ApplyOptions& ao = options.apply;
  ao.workers = config_.apply.workers;
  ao.max_group_transactions = static_cast<size_t>(config_.apply.group_max_transactions);
  ao.max_group_bytes = config_.apply.group_max_bytes;
  ao.max_group_delay = absl::Milliseconds(config_.apply.group_max_delay_ms);
  ao.stopped_table_retention_bytes = config_.apply.stopped_table_retention_bytes;
  ao.on_group_committed = [this](absl::Duration latency, size_t transactions) {
    if (Metrics* m = metrics_.load()) {
      m->ObserveApplyLatency(absl::ToDoubleSeconds(latency));
      m->ObserveBatchRecords(static_cast<double>(transactions));
    }
  };
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<StandbyPipeline> standby,
      StandbyPipeline::Start(std::move(options), inbound_.get(), std::move(sink)));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EventPipeline> events, StartEvents(role, context));
  absl::MutexLock lock(&pipeline_mu_);
  standby_ = std::move(standby);
  events_ = std::move(events);
  pipeline_error_.clear();
  return absl::OkStatus();
}

// Detaches the running pipeline (status then shows none) and stops it, draining until
// `deadline`, without holding pipeline_mu_. REQUIRES: change_mu_ held.
absl::StatusOr<std::unique_ptr<EventPipeline>> Daemon::StartEvents(Role role,
                                                                   const PipelineContext& context) {
  const bool primary = role == Role::kPrimary;
  if (primary ? !factories_.event_source : !factories_.event_sink) {
    return std::unique_ptr<EventPipeline>();
  }
  RoleController* roles = roles_.get();
  EventPipelineOptions options{
      .region = config_.region, .epoch = [roles] { return roles->epoch(); }, .clock = clock_};
  options.on_event_applied = [this](absl::Duration latency) {
    if (Metrics* m = metrics_.load()) m->ObserveObjectLatency(absl::ToDoubleSeconds(latency));
  };
  options.on_error = [this](const absl::Status& s) {
    if (Metrics* m = metrics_.load()) {
      std::string kind = absl::StatusCodeToString(s.code());
      for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      m->CountObjectError(kind);
    }
  };
  if (primary) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Source> source,
                           factories_.event_source(config_, context));
    return EventPipeline::StartCapture(std::move(options), outbound_.get(), std::move(source));
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<EventSink> sink, factories_.event_sink(config_, context));
  options.start_paused = roles_->paused();
  return EventPipeline::StartApply(std::move(options), inbound_.get(), std::move(sink));
}

void Daemon::StopPipeline(absl::Time deadline, bool apply_backlog) {
  std::unique_ptr<PrimaryPipeline> primary;
  std::unique_ptr<StandbyPipeline> standby;
  std::unique_ptr<EventPipeline> events;
  {
    absl::MutexLock lock(&pipeline_mu_);
    primary = std::move(primary_);
    standby = std::move(standby_);
    events = std::move(events_);
  }
  if (events) events->Stop();  // before the primary's drain: what it captured is then shipped
  if (primary) primary->Stop(deadline);
  if (standby) standby->Stop(deadline, apply_backlog);
}

absl::Status Daemon::ChangeRole(Role target, absl::Duration drain) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const RegionRecord before = roles_->Get();
  if (before.role == target || before.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is ", std::string(RoleName(before.role)), " and ",
                     std::string(RegionPhaseName(before.phase)), "; cannot become ",
                     std::string(RoleName(target))));
  }
  const std::string operation = absl::StrCat("role-", before.epoch, "-", ++operations_);
  FERRY_RETURN_IF_ERROR(roles_->BeginSwitch(operation));
  StopPipeline(clock_->Now() + drain, /*apply_backlog=*/true);
  // Read after the drain: a standby's receiver may have adopted a higher epoch meanwhile.
  const uint64_t new_epoch = roles_->epoch() + 1;
  if (absl::Status s = roles_->CompleteSwitch(operation, new_epoch); !s.ok()) {
    // Not flipped: back to the old role, as a restart would do.
    (void)roles_->RollBackSwitch(operation);
    absl::Status restart = StartPipeline(before.role);
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = restart.ok() ? "" : restart.ToString();
    return s;
  }
  spdlog::info("region {}: now {} under epoch {}", config_.region, RoleName(target),
               roles_->epoch());
  absl::Status started = StartPipeline(target);
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  return started;
}

// A pipeline that could not start (a factory's database down, a port taken) is tried again
// every maintenance round, so the region recovers without a restart. Skipped while a role
// change, pause or shutdown holds change_mu_.
void Daemon::RestartFailedPipeline() {
  if (!change_mu_.TryLock()) return;
  RestartFailedPipelineLocked();
  change_mu_.Unlock();
}

void Daemon::RestartFailedPipelineLocked() {
  if (shut_down_) return;
  CheckPeerEpoch(clock_->Now() + absl::Milliseconds(500));
  const RegionRecord region = roles_->Get();
  if (region.phase == RegionPhase::kSwitching && region.role == Role::kPrimary) {
    (void)ResolveSwitchover(absl::Now() + absl::Seconds(2));
    return;
  }
  {
    absl::MutexLock lock(&pipeline_mu_);
    if (primary_ != nullptr || standby_ != nullptr || pipeline_error_.empty()) return;
  }
  if (region.phase != RegionPhase::kReplicating) return;
  absl::Status s = StartPipeline(region.role);
  if (s.ok()) {
    spdlog::info("region {}: the {} pipeline started on a retry", config_.region,
                 RoleName(region.role));
    return;
  }
  absl::MutexLock lock(&pipeline_mu_);
  pipeline_error_ = s.ToString();
}

void Daemon::MaintenanceLoop() {
  SetCurrentThreadName("maintenance");
  while (!maintenance_stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    RestartFailedPipeline();
    SettleFence();
    CountErrors();
    Trim();
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
    {
      absl::MutexLock fence_lock(&fence_state_mu_);
      s.fence = fence_applied_.empty() ? "" : fence_applied_ == "lifted" ? "lifted" : "raised";
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
  v1::StatusReply reply = AssembleStatus(s);
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

// --- The database fence --------------------------------------------------------------------

FenceNotice Daemon::NoticeFor(const RegionRecord& region) const {
  const std::string& peer = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  if (region.role == Role::kPrimary && region.phase == RegionPhase::kReplicating &&
      self_fenced_.load()) {
    return {absl::StrCat("ferry: region ", config_.region, " fenced itself: no answer from region ",
                         peer, " for ", config_.failover.self_fence_after_seconds,
                         " s, which may have been promoted"),
            "writes resume here once the peer answers and was not promoted; otherwise write there"};
  }
  if (region.phase == RegionPhase::kFenced) {
    return {absl::StrCat("ferry: region ", config_.region, " is fenced: region ", peer,
                         " was promoted under a higher epoch (this region's is ", region.epoch,
                         "): write to region ", peer),
            "ferryctl rejoin makes this region the new primary's standby"};
  }
  if (region.phase == RegionPhase::kSwitching) {
    return {absl::StrCat("ferry: region ", config_.region, " is fenced (switchover ",
                         region.operation, " in progress): write to region ", peer),
            absl::StrCat("region ", peer, " takes writes once the switchover completes")};
  }
  return {absl::StrCat("ferry: region ", config_.region, " is fenced (",
                       std::string(RoleName(region.role)), ", ",
                       std::string(RegionPhaseName(region.phase)), ", epoch ", region.epoch,
                       "): write to region ", peer),
          absl::StrCat("region ", peer, " is the primary; only Ferry writes here")};
}

void Daemon::SettleFence() {
  if (fence_ == nullptr) return;
  absl::MutexLock io(&fence_mu_);
  // Writable exactly while primary and replicating, whether or not ferryd's capture runs: its
  // slot keeps what is written meanwhile (a takeover creates it before the flip), and a
  // stopped ferryd must not stop the primary's application. Read under fence_mu_, so that a
  // switchover that raised the fence meanwhile is seen.
  const RegionRecord region = roles_->Get();
  const bool writable = region.role == Role::kPrimary &&
                        region.phase == RegionPhase::kReplicating && !self_fenced_.load();
  const FenceNotice notice = writable ? FenceNotice{} : NoticeFor(region);
  const std::string want = writable ? "lifted" : notice.message;
  bool logged_error;
  {
    absl::MutexLock lock(&fence_state_mu_);
    if (fence_applied_ == want) return;
    logged_error = !fence_error_.empty();
  }
  absl::Status s = writable ? fence_->Lift() : fence_->Raise(notice, /*end_sessions=*/false);
  if (!s.ok()) {
    if (!logged_error) {
      spdlog::error("region {}: {} the database fence failed: {}", config_.region,
                    writable ? "lifting" : "raising", s.ToString());
    }
    absl::MutexLock lock(&fence_state_mu_);
    fence_error_ = s.ToString();
    return;
  }
  spdlog::info("region {}: database fence {}", config_.region,
               writable ? "lifted: it takes application writes" : "raised: " + notice.message);
  absl::MutexLock lock(&fence_state_mu_);
  fence_applied_ = want;
  fence_error_.clear();
}

void Daemon::SetOperationNote(std::string note) {
  if (!note.empty()) spdlog::info("region {}: {}", config_.region, note);
  absl::MutexLock lock(&pipeline_mu_);
  operation_note_ = std::move(note);
}

v1::RegionInfo Daemon::Info() {
  const RegionRecord r = roles_->Get();
  v1::RegionInfo info;
  info.set_region(config_.region);
  info.set_role(std::string(RoleName(r.role)));
  info.set_epoch(r.epoch);
  info.set_state(std::string(RegionPhaseName(r.phase)));
  info.set_operation(r.operation);
  info.set_paused(r.paused);
  absl::MutexLock lock(&pipeline_mu_);
  info.set_flipped_operation(flipped_operation_);
  if (standby_) {
    const ApplyStatus apply = standby_->apply().status();
    info.set_applied_seq(apply.applied_seq);
    info.set_stopped_tables(apply.stopped_tables.size());
  }
  return info;
}

// --- Planned switchover: the primary's side ------------------------------------------------

absl::StatusOr<v1::ReverseReply> Daemon::Reverse(absl::Duration timeout) {
  absl::StatusOr<v1::ReverseOutcome> done;
  const RegionRecord region = roles_->Get();
  if (region.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is ", std::string(RegionPhaseName(region.phase)),
                     region.operation.empty() ? "" : " (operation " + region.operation + ")",
                     ": reverse refused"));
  }
  if (region.role == Role::kStandby) {
    // Sent to the standby: the primary runs it (it holds the database to fence).
    done = peer_->Reverse(timeout, absl::Now() + timeout + absl::Seconds(30));
  } else {
    done = RunReverse(timeout);
  }
  if (!done.ok()) return done.status();
  v1::ReverseReply reply;
  reply.set_operation(done->operation());
  reply.set_new_primary(done->new_primary());
  reply.set_epoch(done->epoch());
  reply.set_through_seq(done->through_seq());
  *reply.mutable_steps() = done->steps();
  return reply;
}

absl::StatusOr<v1::ReverseOutcome> Daemon::ReverseForPeer(absl::Duration timeout) {
  if (roles_->role() != Role::kPrimary) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is not the primary either"));
  }
  return RunReverse(timeout);
}

absl::StatusOr<v1::ReverseOutcome> Daemon::RunReverse(absl::Duration timeout) {
  if (reversing_.exchange(true)) {
    return absl::FailedPreconditionError(
        absl::StrCat("a switchover is already running on region ", config_.region));
  }
  struct Done {
    std::atomic<bool>* flag;
    ~Done() { flag->store(false); }
  } done{&reversing_};
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  // gRPC deadlines and the peer's clock are real time, whatever clock the daemon runs on.
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  const RegionRecord r = roles_->Get();
  const std::string& peer_name = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  if (r.role != Role::kPrimary || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
        std::string(RegionPhaseName(r.phase)),
        (r.operation.empty() ? "" : " (operation " + r.operation + ")"), ": reverse refused"));
  }
  if (r.paused) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is paused: resume it first (a paused region ships nothing)"));
  }
  PrimaryPipeline* primary;
  std::string pipeline_error;
  {
    absl::MutexLock lock(&pipeline_mu_);
    primary = primary_.get();
    pipeline_error = pipeline_error_;
  }
  if (primary == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, "'s capture is not running: ", pipeline_error));
  }
  absl::StatusOr<v1::RegionInfo> peer =
      peer_->Probe("", std::min(deadline, absl::Now() + absl::Seconds(5)));
  if (!peer.ok()) {
    return absl::UnavailableError(absl::StrCat("region ", peer_name, " cannot be reached (",
                                               peer.status().message(), "): nothing changed"));
  }
  if (peer->role() != "standby" || peer->state() != "replicating" || peer->epoch() != r.epoch ||
      peer->paused() || peer->stopped_tables() > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", peer->region(), " is ", peer->role(), " and ", peer->state(), " under epoch ",
        peer->epoch(), " (this region: epoch ", r.epoch, ")",
        peer->paused() ? ", paused: resume it first" : "",
        peer->stopped_tables() > 0
            ? absl::StrCat(", with ", peer->stopped_tables(),
                           " stopped table(s): resume or re-snapshot them first")
            : "",
        "; a switchover needs a replicating, unpaused standby at the same epoch: nothing "
        "changed"));
  }

  const std::string operation = absl::StrFormat("%s%d-%08x", kReverseOperationPrefix, r.epoch,
                                                absl::Uniform<uint32_t>(absl::BitGen()));
  v1::ReverseOutcome outcome;
  outcome.set_operation(operation);
  auto step = [&](const std::string& what) {
    outcome.add_steps(
        absl::StrFormat("%8.3fs %s", absl::ToDoubleSeconds(absl::Now() - start), what));
    SetOperationNote(absl::StrCat(operation, ": ", what));
  };
  FERRY_RETURN_IF_ERROR(roles_->BeginSwitch(operation));
  step("switching");

  // 1. Fence: application writes are refused from here on; sessions that may have passed the
  // fence's check end; a marker after everything committed carries the sequences' values.
  uint64_t marker = 0;
  if (fence_ != nullptr) {
    absl::Status fenced;
    {
      absl::MutexLock io(&fence_mu_);
      const FenceNotice notice = NoticeFor(roles_->Get());
      fenced = fence_->Raise(notice, /*end_sessions=*/true);
      absl::MutexLock lock(&fence_state_mu_);
      fence_applied_ = fenced.ok() ? notice.message : "";
    }
    if (!fenced.ok()) return RollBackReverse(operation, Annotate(fenced, "fencing the database"));
    KillPoint("reverse.fenced");
    absl::StatusOr<uint64_t> marked;
    {
      absl::MutexLock io(&fence_mu_);
      marked = fence_->Mark(operation);
    }
    if (!marked.ok()) {
      return RollBackReverse(operation, Annotate(marked.status(), "writing the fence's marker"));
    }
    marker = *marked;
    step(absl::StrCat("fenced; marker at ", primary->source().FormatPosition(marker)));
  }

  // 2. Drain: the capture passes the marker, then stops (nothing after the marker is ever
  // shipped under this epoch: it stays in the slot, which a rollback resumes and the flip
  // drops), and the shipper gets everything captured acknowledged.
  while (primary->capture().CapturedPosition() <= marker && marker != 0) {
    if (absl::Now() >= deadline) {
      return RollBackReverse(
          operation,
          absl::DeadlineExceededError(absl::StrCat(
              "the capture did not reach the fence's marker within the timeout (captured ",
              primary->source().FormatPosition(primary->capture().CapturedPosition()),
              primary->capture_error().empty() ? "" : "; " + primary->capture_error(), ")")));
    }
    absl::SleepFor(absl::Milliseconds(2));  // the capture appends on its own thread
  }
  std::unique_ptr<PrimaryPipeline> stopped;
  {
    absl::MutexLock lock(&pipeline_mu_);
    stopped = std::move(primary_);
  }
  const bool acknowledged = stopped->Stop(clock_->Now() + (deadline - absl::Now()));
  const uint64_t through = outbound_->next_seq();
  const uint64_t acked = stopped->shipper().status().acked_next_seq;
  stopped.reset();
  outcome.set_through_seq(through);
  if (!acknowledged || acked < through) {
    return RollBackReverse(
        operation, absl::DeadlineExceededError(
                       absl::StrCat("region ", peer_name, " did not acknowledge seq ", through - 1,
                                    " within the timeout (acknowledged below ", acked, ")")));
  }
  step(absl::StrCat("drained: ", peer_name, " holds every record below seq ", through));
  KillPoint("reverse.drained");

  // 3. The standby applies it all and flips (its durable record of the new epoch).
  v1::SwitchoverRequest request;
  request.set_epoch(r.epoch);
  request.set_operation(operation);
  request.set_new_epoch(r.epoch + 1);
  request.set_through_seq(through);
  absl::StatusOr<v1::RegionInfo> flipped = peer_->Switchover(request, deadline);
  if (!flipped.ok()) {
    const absl::StatusCode code = flipped.status().code();
    if (code == absl::StatusCode::kFailedPrecondition ||
        code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kPermissionDenied ||
        code == absl::StatusCode::kUnauthenticated) {
      return RollBackReverse(operation, flipped.status());  // refused before anything changed
    }
    // The answer was lost or late: only the peer knows whether it flipped.
    step(absl::StrCat("no answer from ", peer_name, " (", flipped.status().message(),
                      "); asking whether it flipped"));
    absl::StatusOr<bool> settled = ResolveSwitchover(absl::Now() + absl::Seconds(10));
    if (!settled.ok()) return settled.status();
    if (!*settled) {
      return absl::UnavailableError(absl::StrCat(
          "switchover ", operation, ": region ", peer_name,
          " did not answer whether it flipped; this region stays fenced until it does (status "
          "shows the operation)"));
    }
    const RegionRecord now = roles_->Get();
    if (now.role == Role::kPrimary) {
      return absl::Status(code, absl::StrCat("switchover ", operation,
                                             " rolled back: ", flipped.status().message()));
    }
    flipped = Info();  // completed: report the flip
    flipped->set_region(peer_name);
    flipped->set_epoch(now.epoch);
  } else {
    KillPoint("reverse.peer_flipped");
    step(absl::StrCat(peer_name, " flipped: primary under epoch ", flipped->epoch()));
    FERRY_RETURN_IF_ERROR(CompleteReverse(operation, flipped->epoch()));
  }
  step(absl::StrCat(config_.region, " is a fenced standby of ", peer_name));
  SetOperationNote("");
  outcome.set_new_primary(peer_name);
  outcome.set_epoch(flipped->epoch());
  return outcome;
}

absl::Status Daemon::RollBackReverse(const std::string& operation, const absl::Status& why) {
  FERRY_RETURN_IF_ERROR(roles_->RollBackSwitch(operation));
  SetOperationNote("");
  bool running;
  {
    absl::MutexLock lock(&pipeline_mu_);
    running = primary_ != nullptr;
  }
  if (!running) {
    // The drain stopped it: capture resumes from the slot, nothing after the marker lost.
    absl::Status started = StartPipeline(Role::kPrimary);
    if (!started.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = started.ToString();
    }
  }
  SettleFence();  // lifted again
  absl::MutexLock lock(&fence_state_mu_);
  const std::string lifted =
      fence_applied_ == "lifted"
          ? "the fence is lifted"
          : "the fence could not be lifted yet (tried again each second): " + fence_error_;
  return absl::Status(why.code(),
                      absl::StrCat("switchover ", operation, " rolled back (", config_.region,
                                   " is primary as before; ", lifted, "): ", why.message()));
}

absl::Status Daemon::CompleteReverse(const std::string& operation, uint64_t peer_epoch) {
  // Whatever was captured after the marker (a superuser's write past the fence) stays in the
  // outbound log: it is never shipped under the old epoch.
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);
  FERRY_RETURN_IF_ERROR(roles_->CompleteSwitch(operation, peer_epoch));
  spdlog::warn("region {}: switchover {} complete: standby under epoch {}", config_.region,
               operation, peer_epoch);
  absl::Status started = StartPipeline(Role::kStandby);  // fenced; the old slot released
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  return absl::OkStatus();  // a pipeline that did not start is retried each second
}

absl::StatusOr<bool> Daemon::ResolveSwitchover(absl::Time deadline) {
  const RegionRecord r = roles_->Get();
  if (r.phase != RegionPhase::kSwitching || r.role != Role::kPrimary) return true;
  absl::StatusOr<v1::RegionInfo> peer = absl::UnavailableError("not asked");
  while (true) {
    peer = peer_->Probe(r.operation, std::min(deadline, absl::Now() + absl::Seconds(2)));
    if (peer.ok() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));  // the peer restarting: ask again
  }
  if (!peer.ok()) {
    SetOperationNote(absl::StrCat(r.operation, ": waiting for ", config_.peer.region,
                                  " to say whether it flipped (", peer.status().message(), ")"));
    return false;
  }
  if (peer->role() == "primary" && peer->epoch() > r.epoch) {
    FERRY_RETURN_IF_ERROR(CompleteReverse(r.operation, peer->epoch()));
    SetOperationNote("");
    return true;
  }
  if (peer->role() == "standby" && peer->epoch() == r.epoch && peer->state() == "replicating") {
    // It did not flip, and after this answer it never will in this operation.
    absl::Status s = RollBackReverse(
        r.operation, absl::AbortedError(absl::StrCat(config_.peer.region, " did not flip")));
    spdlog::warn("region {}: {}", config_.region, s.ToString());
    return true;
  }
  SetOperationNote(absl::StrCat(r.operation, ": ", config_.peer.region, " is ", peer->role(),
                                " under epoch ", peer->epoch(), "; staying fenced"));
  return false;
}

// --- Planned switchover: the standby's side ------------------------------------------------

v1::RegionInfo Daemon::Probe(const std::string& abort_operation) {
  absl::MutexLock change(&change_mu_);  // after a Switchover call in flight
  if (!abort_operation.empty()) {
    bool flipped;
    {
      absl::MutexLock lock(&pipeline_mu_);
      flipped = flipped_operation_ == abort_operation;
    }
    if (!flipped && std::find(aborted_switchovers_.begin(), aborted_switchovers_.end(),
                              abort_operation) == aborted_switchovers_.end()) {
      spdlog::warn("region {}: switchover {} aborted by {}", config_.region, abort_operation,
                   config_.peer.region);
      aborted_switchovers_.push_back(abort_operation);
    }
  }
  return Info();
}

absl::StatusOr<v1::RegionInfo> Daemon::AcceptSwitchover(const v1::SwitchoverRequest& request,
                                                        absl::Time deadline) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const std::string& op = request.operation();
  const RegionRecord r = roles_->Get();
  if (std::find(aborted_switchovers_.begin(), aborted_switchovers_.end(), op) !=
      aborted_switchovers_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("switchover ", op, " was aborted"));
  }
  if (r.role != Role::kStandby || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
                     std::string(RegionPhaseName(r.phase)), ", not a replicating standby"));
  }
  if (r.epoch != request.epoch()) {
    return absl::FailedPreconditionError(absl::StrCat("region ", config_.region, " runs epoch ",
                                                      r.epoch, ", the caller ", request.epoch()));
  }
  if (r.paused) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " is paused: resume it first"));
  }
  StandbyPipeline* standby;
  {
    absl::MutexLock lock(&pipeline_mu_);
    standby = standby_.get();
  }
  if (standby == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, "'s apply is not running"));
  }
  const uint64_t through = request.through_seq();
  SetOperationNote(absl::StrCat(op, ": applying through seq ", through - 1));
  if (!standby->apply().WaitForApplied(through - 1, deadline - absl::Now())) {
    SetOperationNote("");
    return absl::DeadlineExceededError(
        absl::StrCat("region ", config_.region, " applied through seq ",
                     standby->apply().status().applied_seq, " of ", through - 1, " in time"));
  }
  if (!standby->apply().status().stopped_tables.empty()) {
    SetOperationNote("");
    return absl::FailedPreconditionError(absl::StrCat("region ", config_.region,
                                                      " has stopped tables: their changes are not "
                                                      "applied; resume or re-snapshot them first"));
  }
  if (inbound_->next_seq() != through) {
    SetOperationNote("");
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " holds inbound records up to seq ", inbound_->next_seq() - 1,
        ", the primary's drain counted them up to ", through - 1));
  }
  FERRY_RETURN_IF_ERROR(roles_->BeginSwitch(op));
  KillPoint("switchover.begun");
  StopPipeline(clock_->Now(), /*apply_backlog=*/true);
  // Any failure from here to the flip: back to a replicating standby, the capture released.
  auto roll_back = [&](const absl::Status& why) -> absl::Status {
    absl::Status back = roles_->RollBackSwitch(op);
    absl::Status restarted = back.ok() ? StartPipeline(Role::kStandby) : back;
    if (!restarted.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = restarted.ToString();
    }
    SetOperationNote("");
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, " ", why.message(), ": nothing changed"));
  };
  // Sequences a little past the marker's values: nextval() is not fenced, so a value handed out
  // on the old primary after its marker must not be handed out here again.
  if (fence_ != nullptr) {
    absl::MutexLock io(&fence_mu_);
    if (absl::Status s = fence_->AdvanceSequences(config_.failover.sequence_gap); !s.ok()) {
      return roll_back(Annotate(s, "could not advance its sequences"));
    }
  }
  // The capture starts at the database's current end, before the flip and before the fence
  // lifts, so nothing written after the flip is missed; what apply wrote is never captured.
  absl::Status prepared;
  {
    absl::StatusOr<std::unique_ptr<Source>> source =
        factories_.source(config_, PipelineContext{.epoch = request.new_epoch()});
    prepared = source.status();
    if (source.ok()) {
      LogCaptureTarget target(outbound_.get(), config_.region,
                              [e = request.new_epoch()] { return e; });
      prepared = target.Load();
      if (prepared.ok()) prepared = (*source)->PrepareTakeover(target);
    }
  }
  if (!prepared.ok()) return roll_back(Annotate(prepared, "could not prepare its capture"));
  KillPoint("switchover.capture_prepared");
  if (absl::Status flip = roles_->CompleteSwitch(op, request.new_epoch()); !flip.ok()) {
    return roll_back(Annotate(flip, "could not record the flip"));  // not written: still standby
  }
  {
    absl::MutexLock lock(&pipeline_mu_);
    flipped_operation_ = op;
  }
  spdlog::warn("region {}: switchover {}: now primary under epoch {}", config_.region, op,
               request.new_epoch());
  absl::Status started = StartPipeline(Role::kPrimary);  // lifts the fence once it runs
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  SetOperationNote("");
  return Info();
}

// --- Unplanned failover --------------------------------------------------------------------

void Daemon::CheckPeerEpoch(absl::Time deadline) {
  const RegionRecord r = roles_->Get();
  if (r.role != Role::kPrimary || r.phase != RegionPhase::kReplicating) return;
  absl::StatusOr<v1::RegionInfo> peer = peer_->Probe("", deadline);
  const absl::Time now = clock_->Now();
  if (peer.ok()) {
    peer_answered_ = now;
    if (peer->epoch() > r.epoch) {
      absl::StatusOr<bool> fenced = roles_->AdoptEpoch(peer->epoch());
      if (!fenced.ok() || !*fenced) return;
      spdlog::error(
          "region {}: region {} is {} under epoch {} (this region's was {}): fenced; this "
          "region ships no more and its database refuses writes (ferryctl rejoin)",
          config_.region, peer->region(), peer->role(), peer->epoch(), r.epoch);
      StopPipeline(now, /*apply_backlog=*/false);
      self_fenced_ = false;
      SettleFence();
      return;
    }
    if (self_fenced_.exchange(false)) {
      spdlog::warn("region {}: region {} answers again and was not promoted: fence lifted",
                   config_.region, peer->region());
      SettleFence();
    }
    return;
  }
  const int64_t after = config_.failover.self_fence_after_seconds;
  if (after <= 0) return;
  if (peer_answered_ == absl::InfinitePast()) peer_answered_ = now;  // counted from the start
  if (now - peer_answered_ >= absl::Seconds(after) && !self_fenced_.exchange(true)) {
    spdlog::error(
        "region {}: no answer from region {} for {} s (failover.self_fence_after_seconds): "
        "fencing this database, since the peer may have been promoted",
        config_.region, config_.peer.region, after);
    SettleFence();
  }
}

absl::StatusOr<v1::PromoteReply> Daemon::Promote(bool force, absl::Duration timeout) {
  absl::MutexLock change(&change_mu_);
  if (shut_down_) return absl::FailedPreconditionError("ferryd is shutting down");
  const absl::Time start = absl::Now();
  const RegionRecord r = roles_->Get();
  if (r.role != Role::kStandby || r.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(r.role)), " and ",
        std::string(RegionPhaseName(r.phase)), ": only a replicating standby is promoted"));
  }
  const std::string& peer_name = config_.peer.region.empty() ? "the peer" : config_.peer.region;
  if (!force) {
    absl::StatusOr<v1::RegionInfo> peer = peer_->Probe("", absl::Now() + absl::Seconds(2));
    if (peer.ok() && peer->role() == "primary" && peer->state() == "replicating" &&
        peer->epoch() >= r.epoch) {
      return absl::FailedPreconditionError(absl::StrCat(
          "region ", peer_name, " answers as the replicating primary under epoch ", peer->epoch(),
          ": promoting this region now would make two primaries. For a planned change use "
          "ferryctl reverse; if ",
          peer_name,
          " is unusable although it answers, promote --force (it fences itself when "
          "it learns of the new epoch)"));
    }
  }
  StandbyPipeline* standby;
  {
    absl::MutexLock lock(&pipeline_mu_);
    standby = standby_.get();
  }
  if (standby == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("region ", config_.region, "'s apply is not running"));
  }
  const std::string operation =
      absl::StrFormat("promote-%d-%08x", r.epoch + 1, absl::Uniform<uint32_t>(absl::BitGen()));
  v1::PromoteReply reply;
  reply.set_operation(operation);
  auto step = [&](const std::string& what) {
    reply.add_steps(absl::StrFormat("%8.3fs %s", absl::ToDoubleSeconds(absl::Now() - start), what));
    SetOperationNote(absl::StrCat(operation, ": ", what));
  };

  // The loss bound, from the lost primary's last report on the stream.
  const uint64_t next = inbound_->next_seq();
  *reply.mutable_loss() = LossBoundOf(standby->receiver().status(), next, absl::Now());

  // 1. Everything received is applied (a paused apply too: a promote needs it).
  step(absl::StrCat("applying what was received (through seq ", next - 1, ")"));
  if (r.paused) standby->SetPaused(false);
  if (next > 1 && !standby->apply().WaitForApplied(next - 1, timeout)) {
    if (r.paused) standby->SetPaused(true);
    SetOperationNote("");
    return absl::DeadlineExceededError(absl::StrCat(
        "region ", config_.region, " applied through seq ", standby->apply().status().applied_seq,
        " of ", next - 1, " within the timeout: nothing changed (promote again to go on)"));
  }
  const ApplyStatus applied = standby->apply().status();
  for (const auto& [table, stop] : applied.stopped_tables) {
    reply.add_stopped_tables(
        absl::StrCat(table.ToString(), " (stopped at seq ", stop.seq, ": ", stop.reason, ")"));
    const uint64_t kept = next > stop.seq ? next - stop.seq : 0;
    reply.set_kept_records(std::max(reply.kept_records(), kept));
  }
  StopPipeline(clock_->Now(), /*apply_backlog=*/false);
  step("applied; the standby pipeline stopped");

  // 2. Sequences past what the lost primary may have handed out; the capture's slot. Both are
  // redone by a promote that starts again after a crash before the epoch is raised.
  auto undo = [&](const absl::Status& why) -> absl::Status {
    absl::Status restarted = StartPipeline(Role::kStandby);
    if (!restarted.ok()) {
      absl::MutexLock lock(&pipeline_mu_);
      pipeline_error_ = restarted.ToString();
    }
    SetOperationNote("");
    return absl::Status(why.code(), absl::StrCat("promote ", operation, ": ", why.message(),
                                                 ": nothing changed, still a standby"));
  };
  if (fence_ != nullptr) {
    if (absl::Status s = fence_->AdvanceSequences(config_.failover.sequence_gap); !s.ok()) {
      return undo(s);
    }
    step(absl::StrCat("sequences advanced by ", config_.failover.sequence_gap));
  }
  {
    absl::StatusOr<std::unique_ptr<Source>> source =
        factories_.source(config_, PipelineContext{.epoch = r.epoch + 1});
    absl::Status prepared = source.status();
    if (source.ok()) {
      LogCaptureTarget target(outbound_.get(), config_.region, [e = r.epoch + 1] { return e; });
      prepared = target.Load();
      if (prepared.ok()) prepared = (*source)->PrepareTakeover(target);
    }
    if (!prepared.ok()) return undo(Annotate(prepared, "preparing the capture"));
  }
  step("capture prepared");

  // 3. The epoch, durably; then primary.
  FERRY_RETURN_IF_ERROR(roles_->BeginPromote(operation, r.epoch + 1));
  FERRY_RETURN_IF_ERROR(roles_->CompletePromote(operation));
  reply.set_epoch(r.epoch + 1);
  spdlog::warn("region {}: promote {}: primary under epoch {}", config_.region, operation,
               r.epoch + 1);
  absl::Status started = StartPipeline(Role::kPrimary);  // lifts the fence
  if (!started.ok()) {
    absl::MutexLock lock(&pipeline_mu_);
    pipeline_error_ = started.ToString();
  }
  step(
      absl::StrCat("primary under epoch ", r.epoch + 1, started.ok() ? "" : " (capture retrying)"));
  SetOperationNote("");
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
