// ferryctl's operator view of a StatusReply (issue #20): the table list (`ferryctl tables`, and
// the end of `ferryctl status`) and the DR summary (status' last change, last verify and
// quarantine lines). Formatting only: the caller fetched the status.
#pragma once

#include <string>

#include "proto/admin.pb.h"

namespace ferry::ctl {

// `ferryctl tables --json`: {"region", "role", "tables": [...], "peer_stopped_tables": [...]},
// counts as JSON numbers, times as RFC 3339 strings ("" none). One line.
std::string TablesJson(const v1::StatusReply& status);
// The readable table list: one line a table (state, changes, copy progress, last commit, lag,
// reason); with `peer_stops`, a primary adds the tables its standby stopped (status prints
// those itself). "" when there is nothing to list.
std::string TablesText(const v1::StatusReply& status, bool peer_stops);
// The readable DR lines: the last switchover or promote, the last verify, the quarantine.
std::string DrSummaryText(const v1::StatusReply& status);

}  // namespace ferry::ctl
