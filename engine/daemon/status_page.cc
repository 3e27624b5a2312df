#include "engine/daemon/status_page.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/base/markup_text.h"

namespace ferry {
namespace {

std::string Time(int64_t unix_us) {
  if (unix_us <= 0) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMicros(unix_us),
                          absl::UTCTimeZone());
}

std::string Seconds(double s) { return absl::StrFormat("%.1f s", s); }

// One table row; every cell escaped.
std::string Row(std::initializer_list<std::string> cells, const std::string& id = "") {
  std::string out = id.empty() ? "<tr>" : absl::StrCat("<tr id=\"", HtmlEscape(id), "\">");
  for (const std::string& c : cells) absl::StrAppend(&out, "<td>", HtmlEscape(c), "</td>");
  return out + "</tr>\n";
}

std::string Head(std::initializer_list<const char*> cells) {
  std::string out = "<tr>";
  for (const char* c : cells) absl::StrAppend(&out, "<th>", c, "</th>");
  return out + "</tr>\n";
}

std::string Regions(const v1::StatusReply& self, const absl::StatusOr<v1::RegionInfo>& peer) {
  std::string out = "<h2>Regions</h2>\n<table id=\"regions\">\n";
  out += Head({"region", "role", "epoch", "state", "fenced", "paused", "operation"});
  out += Row({self.region() + " (this one)", self.role(), absl::StrCat(self.epoch()), self.state(),
              self.fenced() ? "yes" : "no", self.paused() ? "yes" : "no", self.operation()},
             "region-self");
  if (peer.ok()) {
    out += Row({peer->region(), peer->role(), absl::StrCat(peer->epoch()), peer->state(),
                peer->fenced() ? "yes" : "no", peer->paused() ? "yes" : "no", peer->operation()},
               "region-peer");
  } else {
    out += Row({self.peer().peer_region().empty() ? "peer" : self.peer().peer_region(),
                "unreachable", "", std::string(peer.status().message()), "", "", ""},
               "region-peer");
  }
  return out + "</table>\n";
}

std::string Replication(const v1::StatusReply& s) {
  std::string out = "<h2>Replication</h2>\n<table id=\"replication\">\n";
  out += Head({"measure", "value"});
  out += Row({"peer connected", s.peer().connected() ? "yes" : "no"});
  if (s.role() == "primary") {
    out += Row({"RPO (not durable at the peer)",
                absl::StrCat(s.rpo().records(), " records, ", s.rpo().bytes(), " bytes, ",
                             Seconds(s.rpo().seconds()))},
               "rpo");
  } else {
    const v1::LossBound& loss = s.primary_unshipped();
    out += Row({"RPO (the primary's unshipped changes, as last reported)",
                loss.known() ? absl::StrCat(loss.records(), " records, ", loss.bytes(), " bytes, ",
                                            Seconds(loss.seconds()))
                             : "not reported"},
               "rpo");
  }
  out +=
      Row({"apply lag", absl::StrCat(s.apply_lag().records(), " records, ", s.apply_lag().bytes(),
                                     " bytes, ", Seconds(s.apply_lag().seconds()))},
          "lag");
  if (s.has_objects()) {
    const v1::ObjectsState& o = s.objects();
    out += Row(
        {"objects", o.mode() == "capture"
                        ? absl::StrCat("capturing bucket ", o.bucket())
                        : absl::StrCat("applying to bucket ", o.target_bucket(), ": ",
                                       o.objects_pending(), " objects, ", o.bytes_pending(),
                                       " bytes pending; ", o.events_applied(), " events applied")},
        "objects");
  }
  if (!s.last_error().empty()) out += Row({"last error", s.last_error()}, "last-error");
  return out + "</table>\n";
}

std::string Tables(const v1::StatusReply& s) {
  std::string out =
      absl::StrCat("<h2>Tables (", s.tables_size(), ")</h2>\n<table id=\"tables\">\n");
  out += Head(
      {"table", "state", "changes", "rows copied", "ETA", "last source commit", "lag", "reason"});
  for (const v1::TableState& t : s.tables()) {
    const uint64_t changes = s.role() == "primary" ? t.changes_captured() : t.changes_applied();
    std::string copied = absl::StrCat(t.rows_copied());
    if (t.rows_estimated() >= 0) absl::StrAppend(&copied, " of ~", t.rows_estimated());
    out += Row({t.table(), t.state(), absl::StrCat(changes), copied,
                t.eta_seconds() >= 0 ? Seconds(t.eta_seconds()) : "", Time(t.last_commit_time_us()),
                Seconds(t.lag_seconds()), t.reason()},
               "table-" + t.table());
  }
  return out + "</table>\n";
}

std::string Events(const v1::StatusReply& s) {
  std::string out = "<h2>DR events</h2>\n<table id=\"dr\">\n";
  out += Head({"event", "value"});
  const v1::DrEvent& c = s.last_change();
  if (c.kind().empty()) {
    out += Row({"last switchover or promote", "none"}, "last-change");
  } else {
    std::string text = absl::StrCat(c.kind(), " ", c.operation(), " at ", Time(c.finished_at_us()),
                                    ", took ", Seconds(c.duration_seconds()), ", ", c.new_primary(),
                                    " primary under epoch ", c.epoch());
    if (c.kind() == "promote") {
      absl::StrAppend(&text, c.loss().known()
                                 ? absl::StrCat(", loss bound ", c.loss().records(), " records / ",
                                                c.loss().bytes(), " bytes")
                                 : ", loss bound unknown");
    }
    out += Row({"last switchover or promote", text}, "last-change");
  }
  const v1::VerifyOutcome& v = s.last_verify();
  out += Row(
      {"last verify", v.result().empty()
                          ? "none"
                          : absl::StrCat(v.result(), " at ", Time(v.finished_at_us()), ", ",
                                         v.differences(), " differences found, ", v.remaining(),
                                         " remaining", v.error().empty() ? "" : ": " + v.error())},
      "last-verify");
  out +=
      Row({"quarantine pending", s.quarantine_pending() < 0 ? "unknown (database unreachable)"
                                                            : absl::StrCat(s.quarantine_pending())},
          "quarantine");
  return out + "</table>\n";
}

}  // namespace

std::string HtmlEscape(const std::string& text) { return MarkupEscape(text); }

std::string RenderStatusPage(const v1::StatusReply& self,
                             const absl::StatusOr<v1::RegionInfo>& peer, absl::Time now) {
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"5\">"
      "<title>Ferry: region ",
      HtmlEscape(self.region()),
      "</title><style>"
      "body{font-family:sans-serif;margin:1.5em;color:#222}"
      "table{border-collapse:collapse;margin-bottom:1em}"
      "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}"
      "th{background:#eee}.alert{background:#c00;color:#fff;padding:.5em;font-weight:bold}"
      "</style></head><body>\n<h1>Ferry: region ",
      HtmlEscape(self.region()), " (", HtmlEscape(self.role()), ")</h1>\n<p>as of ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", now, absl::UTCTimeZone()), ", ferryd ",
      HtmlEscape(self.version()), "; read-only, refreshed every 5 s; JSON at /status.json</p>\n");
  if (peer.ok() && self.role() == "primary" && peer->role() == "primary" && !self.fenced() &&
      !peer->fenced() && self.state() != "fenced" && peer->state() != "fenced") {
    absl::StrAppend(&out,
                    "<p class=\"alert\" id=\"two-primaries\">Both regions claim to be "
                    "primary (epochs ",
                    self.epoch(), " and ", peer->epoch(), ")</p>\n");
  }
  absl::StrAppend(&out, Regions(self, peer), Replication(self), Tables(self), Events(self),
                  "</body></html>\n");
  return out;
}

}  // namespace ferry
