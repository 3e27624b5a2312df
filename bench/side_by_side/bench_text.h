// The text the side-by-side benchmark reads and the arithmetic it does on it: figures in
// pgbench's log, notify_listener's log of when rows became visible, and the percentile of a
// sorted sample, and what a Postgres process is by its title. No process, cluster or clock:
// side_by_side_text_test checks each on text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ferry::bench::sbs {

// The number right after `label` in a pgbench log (digits and '.'), "" when the label is
// absent or no digit follows it. E.g. PgbenchFigure(log, "tps = ") -> "1995.61".
std::string PgbenchFigure(const std::string& log, const std::string& label);

// The p-quantile (p in [0, 1], clamped) of an ascending sample, interpolating linearly between
// the closest ranks (as the old script's Python did); nullopt for an empty sample.
std::optional<double> Percentile(const std::vector<double>& sorted, double p);

// What a Postgres process does, by the title it shows in /proc/PID/cmdline (its arguments'
// bytes, NULs read as spaces): the CPU rows split a cluster's time by it.
enum class PgRole {
  kClientBackend,      // "postgres: USER DB HOST(PORT) ..." (pgbench's, Ferry's apply sessions)
  kWalsender,          // "postgres: walsender ..."
  kReplicationWorker,  // a subscription's apply or tablesync worker (native replication)
  kRest,  // the postmaster (with the children it reaped), background and parallel workers
};
inline constexpr size_t kPgRoles = 4;
PgRole PgRoleOfTitle(absl::string_view title);

// When rows became visible on the target: notify_listener's output ("CHANNEL PAYLOAD
// UNIX_MICROS" a line), read as it grows. Channels are "bench_" + table.
class NotifyLog {
 public:
  explicit NotifyLog(std::string path) : path_(std::move(path)) {}
  // The latest arrival (Unix seconds) on the table's channel, of `payload` when it is not
  // empty; nullopt when none arrived.
  std::optional<double> LastSeen(const std::string& table, const std::string& payload = "");
  // The first arrival of each payload on the table's channel.
  std::map<std::string, double> FirstSeenByPayload(const std::string& table);
  // True once notify_listener listens.
  bool Ready();

 private:
  struct Note {
    std::string channel, payload;
    int64_t micros;
  };
  void ReadNew();  // appends the complete lines written since the last call
  std::string path_;
  size_t offset_ = 0;
  bool ready_ = false;
  std::vector<Note> notes_;
};

}  // namespace ferry::bench::sbs
