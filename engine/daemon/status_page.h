// StatusPage: the read-only status page ferryd serves at /status on listen.metrics (issue #20):
// this region's status and its peer's answer to a probe, rendered as one self-contained HTML
// page (no script, no external resource; it refreshes itself every 5 s). A pure function: the
// daemon takes the status and probes the peer, the unit tests feed it replies of their choosing.
//
// Every value from the status is HTML-escaped (table names, error texts and region names come
// from outside: a database, a config, a peer).
//
// Example:
//   std::string html = RenderStatusPage(daemon.Status(), peer_info_or_error, absl::Now());
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/admin.pb.h"
#include "proto/replication.pb.h"

namespace ferry {

std::string RenderStatusPage(const v1::StatusReply& self,
                             const absl::StatusOr<v1::RegionInfo>& peer, absl::Time now);

// `text` with &, <, >, " and ' replaced by entities.
std::string HtmlEscape(const std::string& text);

}  // namespace ferry
