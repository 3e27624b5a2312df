#include "engine/daemon/daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/apply/apply_scheduler.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"
#include "engine/capture/log_capture_target.h"
#include "engine/log/durable_log.h"
#include "engine/metrics/metrics.h"
#include "engine/region/region_state.h"
#include "engine/replication/receiver.h"
#include "engine/replication/server.h"
#include "engine/replication/shipper.h"

namespace ferry {
namespace {

constexpr char kPausedState[] = "admin/paused";
constexpr char kVersion[] = "0.1.0";

std::string Lsn(uint64_t lsn) {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

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
  v1::Transaction t;
  return t.ParseFromString(record.payload) ? t.commit_time_us() : 0;
}

}  // namespace

// Everything the daemon owns, in construction order (destroyed in reverse).
struct Daemon::Parts {
  std::unique_ptr<RegionState> region;
  std::unique_ptr<DurableLog> outbound;
  std::unique_ptr<DurableLog> inbound;
  // primary
  std::unique_ptr<LogCaptureTarget> capture;
  std::unique_ptr<Source> source;
  std::unique_ptr<replication::Shipper> shipper;
  // standby
  std::unique_ptr<replication::Receiver> receiver;
  std::unique_ptr<replication::ReplicationServer> replication_server;
  std::unique_ptr<Sink> sink;
  std::unique_ptr<ApplyScheduler> apply;
  // both
  std::unique_ptr<AdminService> admin_service;
  std::unique_ptr<grpc::Server> admin_server;
  int admin_port = 0;
  std::unique_ptr<Metrics> metrics;

  absl::Mutex mu;
  bool paused ABSL_GUARDED_BY(mu) = false;
  std::string capture_error ABSL_GUARDED_BY(mu);
  uint64_t stream_errors_seen ABSL_GUARDED_BY(mu) = 0;
  uint64_t apply_errors_seen ABSL_GUARDED_BY(mu) = 0;
  // (acked or applied seq, when observed): the retention clock of each log.
  std::deque<std::pair<uint64_t, absl::Time>> outbound_marks ABSL_GUARDED_BY(mu);
  std::deque<std::pair<uint64_t, absl::Time>> inbound_marks ABSL_GUARDED_BY(mu);
};

Daemon::Daemon(const config::Config& config)
    : config_(config), started_(absl::Now()), parts_(std::make_unique<Parts>()) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const config::Config& config,
                                                      DaemonFactories factories) {
  std::unique_ptr<Daemon> daemon(new Daemon(config));
  absl::Status s = daemon->StartParts(std::move(factories));
  if (!s.ok()) {
    daemon->Shutdown(absl::ZeroDuration());
    return s;
  }
  return daemon;
}

absl::Status Daemon::StartParts(DaemonFactories factories) {
  Parts& p = *parts_;
  const Role initial = config_.role;
  FERRY_ASSIGN_OR_RETURN(p.region, RegionState::Open(config_.data_dir, config_.region, initial));
  const Role role = p.region->role();
  if (role != initial) {
    spdlog::warn("region {}: persisted role {} overrides the configured role {}", config_.region,
                 RoleName(role), RoleName(initial));
  }
  FERRY_ASSIGN_OR_RETURN(p.outbound, DurableLog::Open({.path = config_.data_dir + "/outbound"}));
  FERRY_ASSIGN_OR_RETURN(p.inbound, DurableLog::Open({.path = config_.data_dir + "/inbound"}));
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> paused, p.outbound->GetState(kPausedState));
  {
    absl::MutexLock lock(&p.mu);
    p.paused = paused.value_or("") == "1";
  }
  RegionState* region = p.region.get();
  auto epoch = [region] { return region->epoch(); };

  replication::TlsOptions tls;
  FERRY_ASSIGN_OR_RETURN(tls.ca_pem, ReadPem(config_.security.tls.ca_file));
  FERRY_ASSIGN_OR_RETURN(tls.cert_pem, ReadPem(config_.security.tls.cert_file));
  FERRY_ASSIGN_OR_RETURN(tls.key_pem, ReadPem(config_.security.tls.key_file));

  if (role == Role::kPrimary) {
    p.capture = std::make_unique<LogCaptureTarget>(p.outbound.get(), config_.region, epoch);
    FERRY_RETURN_IF_ERROR(p.capture->Load());
    FERRY_ASSIGN_OR_RETURN(p.source, factories.source(config_));
    replication::ShipperOptions so;
    so.region = config_.region;
    so.epoch = epoch;
    so.peer_address = config_.peer.replication.ToString();
    so.token = config_.security.token.value;
    so.tls = tls;
    so.compression_level = config_.stream.compression_level;
    so.window_bytes = config_.stream.window_bytes;
    so.max_batch_bytes = config_.stream.max_batch_bytes;
    so.max_message_bytes = config_.stream.max_message_bytes;
    so.backoff.min = absl::Milliseconds(config_.stream.reconnect_min_ms);
    so.backoff.max = absl::Milliseconds(config_.stream.reconnect_max_ms);
    so.start_paused = paused.value_or("") == "1";
    so.on_batch_sent = [this](uint64_t records) {
      if (Metrics* m = metrics_.load()) m->ObserveBatchRecords(static_cast<double>(records));
    };
    FERRY_ASSIGN_OR_RETURN(p.shipper, replication::Shipper::Start(so, p.outbound.get()));
    capture_thread_ = std::thread([this] { CaptureLoop(); });
  } else {
    replication::ReceiverOptions ro;
    ro.region = config_.region;
    ro.expected_peer_region = config_.peer.region;
    ro.token = config_.security.token.value;
    ro.epoch = epoch;
    ro.adopt_epoch = [region](uint64_t e) { return region->AdoptEpoch(e); };
    ro.max_uncompressed_batch_bytes = config_.stream.max_message_bytes * 4;
    FERRY_ASSIGN_OR_RETURN(p.receiver, replication::Receiver::Create(ro, p.inbound.get()));
    replication::ReplicationServerOptions rso;
    rso.listen_address = config_.listen.replication.ToString();
    rso.tls = tls;
    rso.max_message_bytes = config_.stream.max_message_bytes;
    FERRY_ASSIGN_OR_RETURN(p.replication_server,
                           replication::ReplicationServer::Start(rso, p.receiver.get()));
    FERRY_ASSIGN_OR_RETURN(p.sink, factories.sink(config_));
    ApplyOptions ao;
    ao.workers = config_.apply.workers;
    ao.max_group_transactions = static_cast<size_t>(config_.apply.group_max_transactions);
    ao.max_group_bytes = config_.apply.group_max_bytes;
    ao.max_group_delay = absl::Milliseconds(config_.apply.group_max_delay_ms);
    ao.on_group_committed = [this](absl::Duration latency, size_t transactions) {
      if (Metrics* m = metrics_.load()) {
        m->ObserveApplyLatency(absl::ToDoubleSeconds(latency));
        m->ObserveBatchRecords(static_cast<double>(transactions));
      }
    };
    FERRY_ASSIGN_OR_RETURN(p.apply, ApplyScheduler::Start(ao, p.inbound.get(), p.sink.get()));
    if (paused.value_or("") == "1") p.apply->Pause();
  }

  // Admin service, with reflection so that grpcurl and friends can discover it.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  p.admin_service = std::make_unique<AdminService>(this, config_.security.admin_token.value);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen.admin.ToString(), grpc::InsecureServerCredentials(),
                           &p.admin_port);
  builder.RegisterService(p.admin_service.get());
  p.admin_server = builder.BuildAndStart();
  if (p.admin_server == nullptr || p.admin_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on listen.admin ", config_.listen.admin.ToString()));
  }

  FERRY_ASSIGN_OR_RETURN(p.metrics,
                         Metrics::Start(
                             config_.listen.metrics.ToString(), [this] { return Status(); },
                             [this] {
                               EngineCounters c;
                               Parts& q = *parts_;
                               const LogStats out = q.outbound->stats(), in = q.inbound->stats();
                               c.outbound_appended_records = out.appended_records;
                               c.outbound_appended_bytes = out.appended_bytes;
                               c.outbound_disk_bytes = out.approximate_disk_bytes;
                               c.inbound_appended_records = in.appended_records;
                               c.inbound_appended_bytes = in.appended_bytes;
                               c.inbound_disk_bytes = in.approximate_disk_bytes;
                               if (q.capture) c.captured_transactions = q.capture->transactions();
                               if (q.shipper) {
                                 const auto s = q.shipper->status();
                                 c.stream_wire_bytes = s.wire_bytes;
                                 c.stream_raw_bytes = s.uncompressed_bytes;
                                 c.stream_batches = s.batches;
                               }
                               if (q.apply)
                                 c.applied_transactions = q.apply->status().transactions_applied;
                               return c;
                             }));
  metrics_.store(p.metrics.get());
  maintenance_thread_ = std::thread([this] { MaintenanceLoop(); });
  spdlog::info("region {} started as {} (epoch {}): admin {}, metrics {}, replication {}",
               config_.region, RoleName(role), p.region->epoch(), admin_port(), metrics_port(),
               role == Role::kPrimary ? "-> " + config_.peer.replication.ToString()
                                      : std::to_string(replication_port()));
  return absl::OkStatus();
}

void Daemon::CaptureLoop() {
  SetCurrentThreadName("capture");
  Parts& p = *parts_;
  absl::Duration backoff = absl::Milliseconds(200);
  while (!capture_stop_.stopped()) {
    absl::Status s = p.source->Run(*p.capture, capture_stop_);
    if (capture_stop_.stopped()) break;
    {
      absl::MutexLock lock(&p.mu);
      p.capture_error = s.ok() ? "" : std::string(s.message());
    }
    if (!s.ok()) {
      if (Metrics* m = metrics_.load()) m->CountError("source");
      if (s.code() == absl::StatusCode::kFailedPrecondition ||
          s.code() == absl::StatusCode::kDataLoss) {
        // An operator must act (slot dropped, corrupt input): stop capturing, keep serving
        // status so that the error is visible, never skip ahead silently.
        spdlog::error("capture stopped: {} (see connectors/postgres/source/README.md)",
                      s.ToString());
        return;
      }
      spdlog::warn("capture failed, retrying in {}: {}", absl::FormatDuration(backoff),
                   s.ToString());
    }
    if (capture_stop_.WaitFor(backoff)) break;
    backoff = std::min(backoff * 2, absl::Seconds(10));
  }
}

void Daemon::MaintenanceLoop() {
  SetCurrentThreadName("maintenance");
  while (!maintenance_stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    CountErrors();
    Trim();
  }
}

// Errors by kind for ferry_errors_total: stream disconnects and refusals, apply rollbacks
// (each retry of a failed group). Source errors are counted where they happen.
void Daemon::CountErrors() {
  Parts& p = *parts_;
  uint64_t stream = 0, apply = 0;
  if (p.shipper) stream += p.shipper->status().disconnects;
  if (p.receiver) stream += p.receiver->status().streams_refused;
  if (p.apply) apply = p.apply->status().resets;
  absl::MutexLock lock(&p.mu);
  for (uint64_t i = p.stream_errors_seen; i < stream; ++i) p.metrics->CountError("stream");
  for (uint64_t i = p.apply_errors_seen; i < apply; ++i) p.metrics->CountError("apply");
  p.stream_errors_seen = std::max(p.stream_errors_seen, stream);
  p.apply_errors_seen = std::max(p.apply_errors_seen, apply);
}

// Keeps acknowledged (outbound) or applied (inbound) records for log.retention_seconds, or
// until the log holds more than log.retention_bytes; never trims anything still needed.
void Daemon::Trim() {
  Parts& p = *parts_;
  const absl::Time now = absl::Now();
  const absl::Duration keep_for = absl::Seconds(config_.log.retention_seconds);
  auto trim_one = [&](DurableLog* log, std::deque<std::pair<uint64_t, absl::Time>>& marks,
                      uint64_t safe_below) {
    if (marks.empty() || marks.back().first != safe_below) marks.emplace_back(safe_below, now);
    uint64_t below = 0;
    while (!marks.empty() && now - marks.front().second >= keep_for) {
      below = marks.front().first;
      marks.pop_front();
    }
    if (log->stats().approximate_disk_bytes > config_.log.retention_bytes) below = safe_below;
    if (below > log->first_seq()) {
      if (absl::Status s = log->TrimBelow(below); !s.ok()) {
        spdlog::warn("trimming {} failed: {}", log->options().path, s.ToString());
      }
    }
  };
  absl::MutexLock lock(&p.mu);
  if (p.shipper) {
    trim_one(p.outbound.get(), p.outbound_marks, p.shipper->status().acked_next_seq);
  }
  if (p.apply) {
    uint64_t safe = p.apply->status().applied_seq + 1;
    auto retain = p.inbound->GetCursor("apply_retain_from");
    if (retain.ok() && retain->has_value() && **retain > 0) safe = std::min(safe, **retain);
    trim_one(p.inbound.get(), p.inbound_marks, safe);
  }
}

v1::StatusReply Daemon::Status() {
  Parts& p = *parts_;
  v1::StatusReply r;
  r.set_region(config_.region);
  r.set_role(std::string(RoleName(p.region->role())));
  r.set_epoch(p.region->epoch());
  r.set_version(kVersion);
  r.set_uptime_seconds(absl::ToInt64Seconds(absl::Now() - started_));
  {
    absl::MutexLock lock(&p.mu);
    r.set_paused(p.paused);
    if (!p.capture_error.empty()) r.set_last_error(p.capture_error);
  }
  auto* pos = r.mutable_positions();
  const LogStats out = p.outbound->stats(), in = p.inbound->stats();
  pos->set_outbound_next_seq(out.next_seq);
  pos->set_outbound_first_seq(out.first_seq);
  pos->set_inbound_next_seq(in.next_seq);
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  // Seconds since the source committed the oldest record after `seq` in `log` (0 when none).
  auto lag_seconds = [now_us](const DurableLog& log, uint64_t next_pending) {
    auto records = log.Read(next_pending, 1, 1);
    if (!records.ok() || records->empty()) return 0.0;
    const int64_t t = RecordTimeUs(records->front());
    return t > 0 ? std::max(0.0, (now_us - t) / 1e6) : 0.0;
  };

  if (p.capture) {
    pos->set_captured_source_position(p.capture->CapturedPosition());
    pos->set_captured_source_lsn(Lsn(p.capture->CapturedPosition()));
  }
  if (p.source) {
    const SourceHealth h = p.source->Health();
    auto* src = r.mutable_source();
    src->set_connected(h.connected);
    src->set_last_error(h.last_error);
    src->set_snapshot_in_progress(h.snapshot_in_progress);
    src->set_slot_retained_wal_bytes(h.retained_bytes);
    src->set_slot(config_.postgres.slot);
  } else {
    r.mutable_source()->set_slot_retained_wal_bytes(-1);
  }
  auto* peer = r.mutable_peer();
  peer->set_peer_region(config_.peer.region);
  if (p.shipper) {
    const replication::ShipperStatus s = p.shipper->status();
    pos->set_shipped_seq(s.shipped_next_seq > 0 ? s.shipped_next_seq - 1 : 0);
    pos->set_acked_seq(s.acked_next_seq > 0 ? s.acked_next_seq - 1 : 0);
    pos->set_peer_applied_seq(s.peer_applied_seq);
    peer->set_address(config_.peer.replication.ToString());
    peer->set_connected(s.connected);
    peer->set_last_error(s.last_error);
    if (!s.peer_region.empty()) peer->set_peer_region(s.peer_region);
    r.mutable_rpo()->set_records(s.unacked_records);
    r.mutable_rpo()->set_bytes(s.unacked_bytes);
    r.mutable_rpo()->set_seconds(
        s.unacked_records == 0
            ? 0
            : lag_seconds(*p.outbound, std::max<uint64_t>(s.acked_next_seq, out.first_seq)));
    const uint64_t applied_next = std::max<uint64_t>(s.peer_applied_seq + 1, out.first_seq);
    const uint64_t pending = out.next_seq > applied_next ? out.next_seq - applied_next : 0;
    r.mutable_apply_lag()->set_records(pending);
    if (out.appended_records > 0) {
      r.mutable_apply_lag()->set_bytes(pending * (out.appended_bytes / out.appended_records));
    }
    r.mutable_apply_lag()->set_seconds(pending == 0 ? 0 : lag_seconds(*p.outbound, applied_next));
  }
  if (p.receiver) {
    const replication::ReceiverStatus s = p.receiver->status();
    peer->set_address(s.peer_address);
    peer->set_connected(s.connected);
    peer->set_last_error(s.last_error);
    if (!s.peer_region.empty()) peer->set_peer_region(s.peer_region);
  }
  if (p.apply) {
    const ApplyStatus a = p.apply->status();
    pos->set_applied_seq(a.applied_seq);
    r.mutable_apply_lag()->set_records(a.lag_records);
    // Bytes are estimated at the inbound log's average record size since start.
    if (in.appended_records > 0) {
      r.mutable_apply_lag()->set_bytes(a.lag_records * (in.appended_bytes / in.appended_records));
    }
    r.mutable_apply_lag()->set_seconds(
        a.lag_records == 0 ? 0 : lag_seconds(*p.inbound, a.applied_seq + 1));
    r.set_conflicts(a.conflicts);
    if (!a.last_error.empty()) r.set_last_error(a.last_error);
    for (const auto& [name, stop] : a.stopped_tables) {
      auto* t = r.add_tables();
      t->set_table(name.ToString());
      t->set_state("stopped");
      t->set_reason(stop.reason);
      t->set_stopped_at_seq(stop.seq);
    }
  }
  return r;
}

bool Daemon::Pause() { return SetPaused(true); }
bool Daemon::Resume() { return SetPaused(false); }

// Holds shipping and applying back (or lets them go) and persists the choice, so that a
// restarted ferryd stays paused. Returns whether the pipeline was paused before.
bool Daemon::SetPaused(bool paused) {
  Parts& p = *parts_;
  bool was;
  {
    absl::MutexLock lock(&p.mu);
    was = p.paused;
    p.paused = paused;
  }
  AppendRequest req;
  req.state.emplace_back(kPausedState, paused ? "1" : "0");
  if (absl::Status s = p.outbound->Append(std::move(req)).status(); !s.ok()) {
    spdlog::warn("cannot persist the {} state: {}", paused ? "paused" : "resumed", s.ToString());
  }
  if (p.shipper) p.shipper->SetPaused(paused);
  if (p.apply) paused ? p.apply->Pause() : p.apply->Resume();
  return was;
}

int Daemon::admin_port() const { return parts_->admin_port; }
int Daemon::metrics_port() const { return parts_->metrics ? parts_->metrics->port() : 0; }
int Daemon::replication_port() const {
  return parts_->replication_server ? parts_->replication_server->port() : 0;
}

void Daemon::Shutdown(absl::Duration drain) {
  {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  Parts& p = *parts_;
  const absl::Time deadline = absl::Now() + drain;
  // Primary: stop capturing, then give the shipper until the deadline to get it acknowledged.
  capture_stop_.Stop();
  if (capture_thread_.joinable()) capture_thread_.join();
  if (p.shipper) {
    const uint64_t target = p.outbound->next_seq();
    bool paused;
    {
      absl::MutexLock lock(&p.mu);
      paused = p.paused;
    }
    if (!paused && !p.shipper->WaitForAck(target, deadline)) {
      spdlog::warn("shutdown: peer has not acknowledged up to {} (RPO {} records)", target,
                   p.shipper->status().unacked_records);
    }
    p.shipper->Stop();
  }
  // Standby: refuse new batches, then let apply finish what is durable here.
  if (p.receiver) p.receiver->Shutdown();
  if (p.replication_server) p.replication_server->Shutdown();
  if (p.apply) {
    const uint64_t next = p.inbound->next_seq();
    if (next > 1 && absl::Now() < deadline)
      (void)p.apply->WaitForApplied(next - 1, deadline - absl::Now());
    p.apply->Stop();
  }
  maintenance_stop_.Notify();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  if (p.admin_server) p.admin_server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  metrics_.store(nullptr);
  p.metrics.reset();
  if (p.outbound) p.outbound->Close();
  if (p.inbound) p.inbound->Close();
  spdlog::info("region {} stopped", config_.region);
}

Daemon::~Daemon() { Shutdown(absl::ZeroDuration()); }

}  // namespace ferry
