#include "engine/daemon/standby_pipeline.h"

#include <spdlog/spdlog.h>

#include "engine/base/status_macros.h"
#include "engine/replication/shipper.h"

namespace ferry {

ferry::v1::PeerApplyState PeerApplyStateOf(const ApplyStatus& status) {
  auto cut = [](const std::string& s) { return replication::PeerApplyReport::Cut(s); };
  ferry::v1::PeerApplyState state;
  for (const auto& [name, stop] : status.stopped_tables) {
    if (static_cast<size_t>(state.stopped_tables_size()) >=
        replication::PeerApplyReport::kMaxTables) {
      break;
    }
    auto* t = state.add_stopped_tables();
    t->set_table(cut(name.ToString()));
    t->set_reason(cut(stop.reason));
    t->set_seq(stop.seq);
  }
  state.set_stopped_tables_total(status.stopped_tables.size());
  state.set_conflicts(status.conflicts);
  state.set_last_error(cut(status.last_error));
  state.set_failed(status.failed);
  return state;
}

absl::StatusOr<std::unique_ptr<StandbyPipeline>> StandbyPipeline::Start(
    StandbyPipelineOptions options, DurableLog* inbound, std::unique_ptr<Sink> sink) {
  options.apply.clock = options.clock;
  std::unique_ptr<StandbyPipeline> p(new StandbyPipeline(inbound, options.clock));
  p->sink_ = std::move(sink);
  options.receiver.apply_state =
      [apply = &p->apply_for_peer_]() -> std::optional<ferry::v1::PeerApplyState> {
    const ApplyScheduler* a = apply->load();
    if (a == nullptr) return std::nullopt;
    return PeerApplyStateOf(a->status());
  };
  // A new inbound log may start where the target's progress is (item: lost standby data_dir).
  options.receiver.target_progress = [sink = p->sink_.get()] { return sink->CommittedProgress(); };
  FERRY_ASSIGN_OR_RETURN(p->receiver_, replication::Receiver::Create(options.receiver, inbound));
  if (options.router != nullptr) {
    p->router_ = options.router;
    p->router_->Attach(p->receiver_.get());
  } else {
    FERRY_ASSIGN_OR_RETURN(
        p->server_, replication::ReplicationServer::Start(options.server, p->receiver_.get()));
  }
  FERRY_ASSIGN_OR_RETURN(p->apply_, ApplyScheduler::Start(options.apply, inbound, p->sink_.get()));
  p->apply_for_peer_.store(p->apply_.get());
  p->cut_barrier_ = options.cut_barrier;
  if (p->cut_barrier_) p->cut_barrier_->Attach(p->apply_.get());
  if (options.start_paused) p->SetPaused(true);
  return p;
}

StandbyPipeline::~StandbyPipeline() {
  if (apply_ != nullptr) {
    Stop(clock_->Now());
  } else {
    // A Start() that failed half-way: shut down what runs, in order.
    StopReceiving();
  }
}

void StandbyPipeline::StopReceiving() {
  if (cut_barrier_) cut_barrier_->Shutdown();  // a verify's cut never holds the stop
  if (receiver_) receiver_->Shutdown();
  if (router_) router_->Detach();
  if (server_) server_->Shutdown();
}

void StandbyPipeline::SetPaused(bool paused) {
  {
    absl::MutexLock lock(&mu_);
    paused_ = paused;
  }
  paused ? apply_->Pause() : apply_->Resume();
}

bool StandbyPipeline::Stop(absl::Time deadline, bool apply_backlog) {
  bool paused;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return false;
    stopped_ = true;
    paused = paused_;
  }
  StopReceiving();
  const uint64_t next = inbound_->next_seq();
  bool applied = next <= 1 || apply_->status().applied_seq + 1 >= next;
  // A paused apply makes no progress: do not wait for it (the records stay in the inbound log).
  if (apply_backlog && !applied && !paused && clock_->Now() < deadline) {
    applied = apply_->WaitForApplied(next - 1, deadline - clock_->Now());
  }
  apply_->Stop();
  if (!applied) {
    const uint64_t done = apply_->status().applied_seq;
    spdlog::info(
        "standby pipeline stopped with {} received records not applied yet (inbound seqs {}-{}): "
        "they stay in the inbound log and are applied after the restart",
        next - 1 > done ? next - 1 - done : 0, done + 1, next - 1);
  }
  return applied;
}

}  // namespace ferry
