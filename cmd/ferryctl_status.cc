#include "cmd/ferryctl_status.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cmd/ferryctl_tables.h"

namespace ferry::ctl {
namespace {

std::string Seconds(double s) {
  if (s < 0) return "-";
  return absl::StrFormat("%.3fs", s);
}

}  // namespace

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

void PrintStatus(const v1::StatusReply& r) {
  const auto& p = r.positions();
  std::printf("region      %s (%s, epoch %llu)%s\n", r.region().c_str(), r.role().c_str(),
              static_cast<unsigned long long>(r.epoch()), r.paused() ? "  PAUSED" : "");
  std::printf("state       %s%s%s\n", r.state().c_str(), r.fenced() ? "  fenced" : "",
              r.operation().empty() ? "" : ("  operation " + r.operation()).c_str());
  if (r.divergence().known()) {
    const auto& d = r.divergence();
    std::printf(
        "divergence  %s applied this region's log through seq %llu; %llu record(s), %llu bytes "
        "beyond it never reached it\n",
        d.new_primary().c_str(), static_cast<unsigned long long>(d.point_seq()),
        static_cast<unsigned long long>(d.records_beyond()),
        static_cast<unsigned long long>(d.bytes_beyond()));
  }
  if (r.role() == "standby" && r.primary_unshipped().known()) {
    const auto& l = r.primary_unshipped();
    std::printf(
        "loss bound  the primary reported %llu record(s), %llu bytes not received here "
        "(last contact %.1fs ago): what a promote now would lose\n",
        static_cast<unsigned long long>(l.records()), static_cast<unsigned long long>(l.bytes()),
        l.last_contact_seconds_ago());
  }
  std::printf("uptime      %llds   version %s\n", static_cast<long long>(r.uptime_seconds()),
              r.version().c_str());
  if (r.role() == "primary") {
    std::printf(
        "source      %s  captured %s  slot %s  retained WAL %lld bytes%s%s\n",
        r.source().connected() ? "connected" : "DISCONNECTED", p.captured_source_lsn().c_str(),
        r.source().slot().c_str(), static_cast<long long>(r.source().slot_retained_wal_bytes()),
        r.source().snapshot_in_progress() ? "  (snapshot in progress)" : "",
        r.source().last_error().empty() ? "" : (" error: " + r.source().last_error()).c_str());
    std::printf("outbound    seq %llu..%llu  shipped %llu  acked %llu  peer applied %llu\n",
                static_cast<unsigned long long>(p.outbound_first_seq()),
                static_cast<unsigned long long>(p.outbound_next_seq()),
                static_cast<unsigned long long>(p.shipped_seq()),
                static_cast<unsigned long long>(p.acked_seq()),
                static_cast<unsigned long long>(p.peer_applied_seq()));
    std::printf("RPO         %llu records, %llu bytes, %s\n",
                static_cast<unsigned long long>(r.rpo().records()),
                static_cast<unsigned long long>(r.rpo().bytes()),
                Seconds(r.rpo().seconds()).c_str());
    // Beside the RPO: what the source committed and capture has not taken yet.
    if (r.uncaptured().known()) {
      std::printf("uncaptured  %llu bytes, behind %s  (source at %s, measured %s ago)\n",
                  static_cast<unsigned long long>(r.uncaptured().bytes()),
                  Seconds(r.uncaptured().seconds()).c_str(),
                  r.uncaptured().source_position().c_str(),
                  Seconds(r.uncaptured().measured_seconds_ago()).c_str());
    } else {
      std::printf("uncaptured  UNKNOWN (the source's position was not measured yet)\n");
    }
    if (r.source().unreplicated_objects() > 0) {
      std::printf("NOT REPLICATED  %lld large object(s) in the source database\n",
                  static_cast<long long>(r.source().unreplicated_objects()));
    }
    for (const auto& w : r.source().warnings()) std::printf("WARNING     %s\n", w.c_str());
  } else {
    std::printf("inbound     seq %llu..%llu  applied %llu\n",
                static_cast<unsigned long long>(p.inbound_first_seq()),
                static_cast<unsigned long long>(p.inbound_next_seq()),
                static_cast<unsigned long long>(p.applied_seq()));
  }
  std::printf("apply lag   %llu records, %llu bytes, %s%s\n",
              static_cast<unsigned long long>(r.apply_lag().records()),
              static_cast<unsigned long long>(r.apply_lag().bytes()),
              Seconds(r.apply_lag().seconds()).c_str(),
              r.apply_lag().stopped_tables() > 0
                  ? absl::StrFormat("  (counting %u STOPPED table(s) from their first change)",
                                    r.apply_lag().stopped_tables())
                        .c_str()
                  : "");
  // While connected, the last error is history: show it only while the peer is away.
  const bool show_peer_error = !r.peer().connected() && !r.peer().last_error().empty();
  std::printf("peer        %s  %s%s\n", r.peer().address().c_str(),
              r.peer().connected() ? "connected" : "DISCONNECTED",
              show_peer_error ? (" error: " + r.peer().last_error()).c_str() : "");
  if (r.role() == "primary") {
    // The standby's trouble, as its receiver reported it.
    const auto& peer = r.peer();
    if (!peer.apply_state_known()) {
      std::printf("peer apply  not reported yet\n");
    } else {
      std::printf("peer apply  %llu table(s) stopped, %llu conflicts%s%s\n",
                  static_cast<unsigned long long>(peer.stopped_tables_total()),
                  static_cast<unsigned long long>(peer.conflicts()),
                  peer.apply_failed() ? "  FAILED" : "",
                  peer.apply_error().empty() ? "" : ("  error: " + peer.apply_error()).c_str());
    }
    if (peer.applied_beyond_log_end()) {
      std::printf(
          "PEER APPLIED BEYOND THIS LOG'S END: the standby applied sequence %llu, this log ends "
          "at %llu: its database holds changes this region's log does not\n",
          static_cast<unsigned long long>(p.peer_applied_seq()),
          static_cast<unsigned long long>(p.outbound_next_seq()));
    }
    for (const auto& t : peer.stopped_tables()) {
      std::printf("peer table  %s STOPPED at seq %llu: %s\n", t.table().c_str(),
                  static_cast<unsigned long long>(t.stopped_at_seq()), t.reason().c_str());
    }
  } else {
    std::printf("conflicts   %llu\n", static_cast<unsigned long long>(r.conflicts()));
    if (!r.log_identity().inbound_log_id().empty()) {
      const auto& id = r.log_identity();
      if (id.mismatch()) {
        std::printf(
            "log         IDENTITY MISMATCH: inbound log %s, target progress %llu counts log %s: "
            "nothing is applied (docs/operations.md, Re-seeding a region)\n",
            id.inbound_log_id().c_str(), static_cast<unsigned long long>(id.target_applied_seq()),
            id.target_log_id().empty() ? "unrecorded" : id.target_log_id().c_str());
      } else {
        std::printf("log         %s\n", id.inbound_log_id().c_str());
      }
    }
  }
  if (!r.last_error().empty()) std::printf("last error  %s\n", r.last_error().c_str());
  if (r.has_objects()) {
    const auto& o = r.objects();
    if (o.mode() == "capture") {
      std::printf("objects     capturing bucket %s (%s)\n", o.bucket().c_str(),
                  o.connected() ? "connected" : "NOT CONNECTED");
    } else {
      std::printf(
          "objects     applying to bucket %s: %llu objects (%s) pending, %llu events applied, "
          "%llu log records pending\n",
          o.target_bucket().c_str(), static_cast<unsigned long long>(o.objects_pending()),
          HumanBytes(o.bytes_pending()).c_str(),
          static_cast<unsigned long long>(o.events_applied()),
          static_cast<unsigned long long>(o.records_pending()));
    }
    if (!o.last_error().empty()) std::printf("objects err %s\n", o.last_error().c_str());
    for (const auto& w : o.warnings()) std::printf("WARNING     objects: %s\n", w.c_str());
  }
  std::fputs(DrSummaryText(r).c_str(), stdout);
  const std::string tables = TablesText(r, /*peer_stops=*/false);
  if (!tables.empty()) std::printf("\n%s", tables.c_str());
}

}  // namespace ferry::ctl
