#include "engine/daemon/status_report.h"

#include <algorithm>
#include <limits>

namespace ferry {

v1::StatusReply AssembleStatus(const StatusSnapshot& s) {
  v1::StatusReply r;
  r.set_region(s.region);
  r.set_role(std::string(RoleName(s.state.role)));
  r.set_epoch(s.state.epoch);
  r.set_state(std::string(RegionPhaseName(s.state.phase)));
  r.set_operation(s.state.operation);
  r.set_paused(s.state.paused);
  r.set_version(s.version);
  r.set_uptime_seconds(absl::ToInt64Seconds(s.now - s.started));
  auto* pos = r.mutable_positions();
  pos->set_outbound_next_seq(s.outbound.next_seq);
  pos->set_outbound_first_seq(s.outbound.first_seq);
  pos->set_inbound_next_seq(s.inbound.next_seq);
  pos->set_inbound_first_seq(s.inbound.first_seq);
  auto age_seconds = [&](bool outbound, uint64_t seq) {
    return RecordAgeSeconds(s, outbound, seq);
  };
  if (!s.pipeline_error.empty()) r.set_last_error(s.pipeline_error);
  auto* peer = r.mutable_peer();
  peer->set_peer_region(s.peer_region);
  r.mutable_source()->set_slot_retained_wal_bytes(-1);
  r.mutable_source()->set_unreplicated_objects(-1);

  if (s.primary.has_value()) {
    const PrimarySnapshot& p = *s.primary;
    if (!p.capture_error.empty()) r.set_last_error(p.capture_error);
    pos->set_captured_source_position(p.captured_position);
    pos->set_captured_source_lsn(p.captured_position_text);
    auto* src = r.mutable_source();
    src->set_connected(p.source.connected);
    src->set_last_error(p.source.last_error);
    src->set_snapshot_in_progress(p.source.snapshot_in_progress);
    src->set_slot_retained_wal_bytes(p.source.retained_bytes);
    src->set_slot(p.source.upstream_name);
    src->set_unreplicated_objects(p.source.unreplicated_objects);
    for (const std::string& t : p.source.blocked_tables) src->add_blocked_tables(t);
    for (const std::string& w : p.source.warnings) src->add_warnings(w);
    auto* un = r.mutable_uncaptured();
    un->set_known(p.uncaptured.known);
    if (p.uncaptured.known) {
      un->set_bytes(p.uncaptured.bytes);
      un->set_seconds(absl::ToDoubleSeconds(p.uncaptured.behind));
      un->set_source_position(p.uncaptured.upstream_position);
      un->set_measured_seconds_ago(
          std::max(0.0, absl::ToDoubleSeconds(s.now - p.uncaptured.measured_at)));
    }

    const replication::ShipperStatus& sh = p.shipper;
    pos->set_shipped_seq(sh.shipped_next_seq > 0 ? sh.shipped_next_seq - 1 : 0);
    pos->set_acked_seq(sh.acked_next_seq > 0 ? sh.acked_next_seq - 1 : 0);
    pos->set_peer_applied_seq(sh.peer_applied_seq);
    peer->set_address(s.peer_address);
    peer->set_connected(sh.connected);
    peer->set_last_error(sh.last_error);
    if (!sh.peer_region.empty()) peer->set_peer_region(sh.peer_region);
    r.mutable_rpo()->set_records(sh.unacked_records);
    r.mutable_rpo()->set_bytes(sh.unacked_bytes);
    r.mutable_rpo()->set_seconds(
        sh.unacked_records == 0
            ? 0
            : age_seconds(true, std::max<uint64_t>(sh.acked_next_seq, s.outbound.first_seq)));
    // The standby's trouble, as its receiver last reported it.
    const replication::PeerApplyReport& pa = sh.peer_apply;
    peer->set_apply_state_known(pa.known);
    uint64_t lag_from = std::max<uint64_t>(sh.peer_applied_seq + 1, s.outbound.first_seq);
    for (const auto& t : pa.stopped_tables) {
      auto* table = peer->add_stopped_tables();
      table->set_table(t.table);
      table->set_state("stopped");
      table->set_reason(t.reason);
      table->set_stopped_at_seq(t.seq);
      // A stopped table's changes are not applied: the lag counts from the earliest of them
      // (a peer's seq is clamped to this log's bounds).
      lag_from = std::min(lag_from, std::max(t.seq, s.outbound.first_seq));
    }
    peer->set_stopped_tables_total(pa.stopped_tables_total);
    peer->set_conflicts(pa.conflicts);
    peer->set_apply_error(pa.last_error);
    peer->set_apply_failed(pa.failed);
    peer->set_applied_beyond_log_end(sh.peer_applied_seq > 0 &&
                                     sh.peer_applied_seq >= s.outbound.next_seq);
    const uint64_t pending = s.outbound.next_seq > lag_from ? s.outbound.next_seq - lag_from : 0;
    r.mutable_apply_lag()->set_records(pending);
    r.mutable_apply_lag()->set_stopped_tables(static_cast<uint32_t>(
        std::min<uint64_t>(pa.stopped_tables_total, std::numeric_limits<uint32_t>::max())));
    if (pending > 0 && s.bytes_from) r.mutable_apply_lag()->set_bytes(s.bytes_from(true, lag_from));
    r.mutable_apply_lag()->set_seconds(pending == 0 ? 0 : age_seconds(true, lag_from));
  }
  if (s.standby.has_value()) {
    const replication::ReceiverStatus& rc = s.standby->receiver;
    *r.mutable_primary_unshipped() = LossBoundOf(rc, s.inbound.next_seq, s.now);
    peer->set_address(rc.peer_address);
    peer->set_connected(rc.connected);
    peer->set_last_error(rc.last_error);
    if (!rc.peer_region.empty()) peer->set_peer_region(rc.peer_region);
    const ApplyStatus& a = s.standby->apply;
    pos->set_applied_seq(a.applied_seq);
    // A stopped table's changes are not applied: the lag counts from the earliest of them.
    uint64_t lag_from = a.applied_seq + 1;
    for (const auto& [name, stop] : a.stopped_tables) {
      lag_from = std::min(lag_from, std::max(stop.seq, s.inbound.first_seq));
    }
    const uint64_t lag_records = a.lag_records + (a.applied_seq + 1 - lag_from);
    r.mutable_apply_lag()->set_records(lag_records);
    r.mutable_apply_lag()->set_stopped_tables(static_cast<uint32_t>(a.stopped_tables.size()));
    if (lag_records > 0 && s.bytes_from) {
      r.mutable_apply_lag()->set_bytes(s.bytes_from(false, lag_from));
    }
    r.mutable_apply_lag()->set_seconds(lag_records == 0 ? 0 : age_seconds(false, lag_from));
    r.set_conflicts(a.conflicts);
    if (!a.last_error.empty()) r.set_last_error(a.last_error);
    auto* identity = r.mutable_log_identity();
    identity->set_inbound_log_id(a.log_id);
    identity->set_target_log_id(a.identity_mismatch ? a.target_log_id : a.log_id);
    identity->set_target_applied_seq(a.identity_mismatch ? a.target_applied_seq : a.applied_seq);
    identity->set_mismatch(a.identity_mismatch);
  }
  // A log that refuses appends (a full disk) is the cause of whatever else stalls: say so when
  // nothing more specific is shown.
  if (r.last_error().empty() && !s.inbound.write_error.empty()) {
    r.set_last_error("inbound log refuses appends until it recovers: " + s.inbound.write_error);
  }
  if (r.last_error().empty() && !s.outbound.write_error.empty()) {
    r.set_last_error("outbound log refuses appends until it recovers: " + s.outbound.write_error);
  }
  if (s.state.phase == RegionPhase::kFenced || s.fence == "raised") r.set_fenced(true);
  r.set_fence(s.fence);
  if (s.state.phase == RegionPhase::kFenced && s.divergence.known()) {
    *r.mutable_divergence() = s.divergence;
    if (s.divergence.records_beyond() > 0) r.set_state("diverged");
  }
  r.set_fence_error(s.fence_error);
  if (r.last_error().empty() && !s.fence_error.empty()) {
    r.set_last_error("the database fence could not be set: " + s.fence_error);
  }
  AssembleTables(s, r);
  return r;
}

double RecordAgeSeconds(const StatusSnapshot& s, bool outbound, uint64_t seq) {
  const int64_t t = s.record_time_us ? s.record_time_us(outbound, seq) : 0;
  if (t <= 0) return 0.0;
  return std::max(0.0, static_cast<double>(absl::ToUnixMicros(s.now) - t) / 1e6);
}

v1::LossBound LossBoundOf(const replication::ReceiverStatus& received, uint64_t inbound_next_seq,
                          absl::Time now) {
  v1::LossBound loss;
  loss.set_known(received.peer_progress_at != absl::InfinitePast());
  if (!loss.known()) return loss;
  if (received.peer_outbound_next_seq > inbound_next_seq) {
    loss.set_records(received.peer_outbound_next_seq - inbound_next_seq);
    loss.set_bytes(received.peer_unacked_bytes);
    if (received.peer_oldest_unacked_us > 0) {
      loss.set_seconds(std::max(
          0.0, absl::ToDoubleSeconds(received.peer_progress_at -
                                     absl::FromUnixMicros(received.peer_oldest_unacked_us))));
    }
  }
  loss.set_last_contact_seconds_ago(
      std::max(0.0, absl::ToDoubleSeconds(now - received.last_frame_at)));
  return loss;
}

}  // namespace ferry
