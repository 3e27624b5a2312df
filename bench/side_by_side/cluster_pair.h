// ClusterPair: the two Postgres 15 clusters of one benchmark row, east (source) and west
// (target), each a fresh copy of a template made once per run, with the same settings on both
// sides; the target's visibility probe (triggers and notify_listener); native logical
// replication between them.
//
// Example:
//   auto pair = ClusterPair::Start(settings, work_dir, "lag-native", base, base);
//   RETURN_IF_ERROR((*pair)->WatchTarget());
//   RETURN_IF_ERROR((*pair)->Subscribe(/*copy_data=*/false, (*pair)->east().port()));
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/side_by_side/bench_text.h"
#include "bench/side_by_side/side_by_side.h"
#include "tests/support/child_process.h"
#include "tests/support/pg_cluster.h"

namespace ferry::bench::sbs {

using ferry::testing::PgCluster;

// A template: a stopped cluster with pgbench's tables at `scale` (0: the schema only), the
// probe and big tables, vacuumed and checkpointed; copied for every pair. Made in `work_dir`.
[[nodiscard]] absl::StatusOr<std::unique_ptr<PgCluster>> MakeTemplate(const Settings& settings,
                                                                      const std::string& work_dir,
                                                                      int scale);

class ClusterPair {
 public:
  // Copies the templates into WORK_DIR/NAME and starts them (east from `east_template`).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ClusterPair>> Start(
      const Settings& settings, const std::string& work_dir, const std::string& name,
      const PgCluster& east_template, const PgCluster& west_template);
  // Stops notify_listener and both clusters; with --keep their directories stay.
  ~ClusterPair();

  PgCluster& east() { return *east_; }
  PgCluster& west() { return *west_; }
  PgCluster& cluster(Side s) { return s == Side::kEast ? *east_ : *west_; }
  const std::string& dir() const { return dir_; }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }

  // Triggers on the target that NOTIFY when rows of probe (each row) and of the three
  // pgbench tables with keys (each insert statement) become visible, ENABLE ALWAYS so that
  // they fire for replicated rows; then starts notify_listener and waits until it listens.
  [[nodiscard]] absl::Status WatchTarget();
  NotifyLog& seen() { return *seen_; }

  // Native logical replication: a publication of all tables on east, a subscription on west
  // connecting to `source_port` (east's port, or a proxy in front of it).
  [[nodiscard]] absl::Status Subscribe(bool copy_data, int source_port);
  bool NativeStreaming();  // the slot is active and no table is still copying
  bool NativeSlotIdle();   // the subscription's slot is inactive (after DISABLE)

  // One probe row inserted on the source now (the marker after a workload); its id.
  [[nodiscard]] absl::StatusOr<std::string> InsertMarker();
  // SELECT count(*) of a table on one side; -1 when the query fails.
  int64_t Count(Side s, const std::string& table);
  bool TargetRowsEqual(const std::string& table, int64_t expected) {
    return Count(Side::kWest, table) == expected;
  }

 private:
  ClusterPair() = default;
  const Settings* settings_ = nullptr;
  std::string dir_;
  std::unique_ptr<PgCluster> east_, west_;
  std::unique_ptr<ferry::testing::ChildProcess> listener_;
  std::unique_ptr<NotifyLog> seen_;
};

}  // namespace ferry::bench::sbs
