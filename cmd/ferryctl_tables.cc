#include "cmd/ferryctl_tables.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "engine/base/json_text.h"

namespace ferry::ctl {
namespace {

using ::ferry::JsonString;

std::string Rfc3339(int64_t unix_us) {
  if (unix_us <= 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMicros(unix_us),
                          absl::UTCTimeZone());
}

uint64_t Changes(const v1::StatusReply& s, const v1::TableState& t) {
  return s.role() == "primary" ? t.changes_captured() : t.changes_applied();
}

std::string Number(double value) { return absl::StrFormat("%.3f", value); }

}  // namespace

std::string TablesJson(const v1::StatusReply& s) {
  std::string tables;
  for (const v1::TableState& t : s.tables()) {
    absl::StrAppend(
        &tables, tables.empty() ? "" : ", ", "{\"table\": ", JsonString(t.table()),
        ", \"state\": ", JsonString(t.state()), ", \"changes_applied\": ", t.changes_applied(),
        ", \"changes_captured\": ", t.changes_captured(),
        ", \"last_commit_time\": ", JsonString(Rfc3339(t.last_commit_time_us())),
        ", \"lag_seconds\": ", Number(t.lag_seconds()), ", \"rows_copied\": ", t.rows_copied(),
        ", \"rows_estimated\": ", t.rows_estimated(),
        ", \"eta_seconds\": ", Number(t.eta_seconds()), ", \"reason\": ", JsonString(t.reason()),
        ", \"stopped_at_seq\": ", t.stopped_at_seq(),
        ", \"retained_log_bytes\": ", t.retained_log_bytes(), "}");
  }
  std::string peer;
  for (const v1::TableState& t : s.peer().stopped_tables()) {
    absl::StrAppend(&peer, peer.empty() ? "" : ", ", "{\"table\": ", JsonString(t.table()),
                    ", \"reason\": ", JsonString(t.reason()),
                    ", \"stopped_at_seq\": ", t.stopped_at_seq(), "}");
  }
  return absl::StrCat("{\"region\": ", JsonString(s.region()), ", \"role\": ", JsonString(s.role()),
                      ", \"tables\": [", tables, "], \"peer_stopped_tables\": [", peer, "]}\n");
}

std::string TablesText(const v1::StatusReply& s, bool peer_stops) {
  if (s.tables_size() == 0 && (!peer_stops || s.peer().stopped_tables_size() == 0)) return "";
  std::string out = absl::StrFormat("%-36s %-16s %12s %-22s %-10s %-24s %10s  %s\n", "TABLE",
                                    "STATE", s.role() == "primary" ? "CAPTURED" : "APPLIED",
                                    "ROWS COPIED", "ETA", "LAST SOURCE COMMIT", "LAG", "REASON");
  for (const v1::TableState& t : s.tables()) {
    std::string copied =
        t.rows_copied() > 0 || t.state() == "snapshotting" ? absl::StrCat(t.rows_copied()) : "-";
    if (t.state() == "snapshotting" && t.rows_estimated() >= 0) {
      absl::StrAppend(&copied, " of ~", t.rows_estimated());
    }
    const std::string eta = t.state() == "snapshotting" && t.eta_seconds() >= 0
                                ? absl::StrFormat("%.0fs", t.eta_seconds())
                                : "-";
    const std::string commit = Rfc3339(t.last_commit_time_us());
    absl::StrAppendFormat(&out, "%-36s %-16s %12d %-22s %-10s %-24s %9.1fs  %s\n", t.table(),
                          t.state(), Changes(s, t), copied, eta, commit.empty() ? "-" : commit,
                          t.lag_seconds(), t.reason());
    if (!t.resnapshot_reason().empty()) {
      absl::StrAppendFormat(&out, "%-36s needs a re-snapshot: %s\n", "", t.resnapshot_reason());
    }
  }
  for (const v1::TableState& t : s.peer().stopped_tables()) {
    if (!peer_stops) break;
    absl::StrAppendFormat(&out, "%-36s %-16s at seq %d: %s\n", t.table(), "STOPPED on peer",
                          t.stopped_at_seq(), t.reason());
  }
  return out;
}

std::string DrSummaryText(const v1::StatusReply& s) {
  std::string out;
  const v1::DrEvent& c = s.last_change();
  if (c.kind().empty()) {
    out += "last change none (no switchover or promote recorded here)\n";
  } else {
    absl::StrAppendFormat(&out, "last change %s %s at %s, took %.3fs: %s primary under epoch %d",
                          c.kind(), c.operation(), Rfc3339(c.finished_at_us()),
                          c.duration_seconds(), c.new_primary(), c.epoch());
    if (c.kind() == "promote") {
      if (c.loss().known()) {
        absl::StrAppendFormat(&out, "; loss bound %d record(s), %d bytes, %.3fs",
                              c.loss().records(), c.loss().bytes(), c.loss().seconds());
      } else {
        out += "; loss bound unknown";
      }
    }
    out += "\n";
  }
  const v1::VerifyOutcome& v = s.last_verify();
  if (v.result().empty()) {
    out += "last verify none\n";
  } else {
    absl::StrAppendFormat(&out, "last verify %s %s at %s: %d difference(s) found, %d remaining%s\n",
                          v.result(), v.operation(), Rfc3339(v.finished_at_us()), v.differences(),
                          v.remaining(), v.error().empty() ? "" : ": " + v.error());
  }
  if (s.quarantine_pending() < 0) {
    out += "quarantine  UNKNOWN (the database could not be asked)\n";
  } else {
    absl::StrAppendFormat(&out, "quarantine  %d change(s) awaiting a decision%s\n",
                          s.quarantine_pending(),
                          s.quarantine_pending() > 0 ? " (ferryctl quarantine list)" : "");
  }
  return out;
}

}  // namespace ferry::ctl
