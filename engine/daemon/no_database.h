// A region without a database: a ferryd whose config has an `objects:` section and no
// `postgres:` section (DESIGN.md: "valid with or without a postgres: section") replicates only
// its bucket. The daemon's database pipelines still run, because they carry what the object path
// rides on (the outbound log's shipper, the receiver and the inbound log, heartbeats, epochs,
// the switchover's drain); these two stand in for the database's source and sink.
//
//   NoDatabaseSource  captures nothing: Run() waits for its stop. Never acknowledges anything
//                     upstream (there is no upstream), so invariant 1 holds trivially.
//   NoDatabaseSink    applies nothing. Its progress is "everything before the inbound log's first
//                     readable record", never stored: the log then holds only heartbeats and
//                     source events, which the database apply passes over, so resuming anywhere
//                     in it replays nothing. A database transaction in the inbound log (the peer
//                     has a postgres: section and this region has none) is refused with
//                     kFailedPrecondition naming the cause, and apply stops there, its error in
//                     status: nothing is skipped silently (invariant 7).
//
// Both are thread-safe (they hold no state that changes).
//
// Example (cmd/ferryd.cc):
//   if (!postgres_section.present()) {
//     factories.source = NoDatabaseSource::Factory();
//     factories.sink = NoDatabaseSink::Factory();
//   }
#pragma once

#include <memory>

#include "engine/daemon/daemon.h"

namespace ferry {

class NoDatabaseSource final : public Source {
 public:
  // Waits for `stop`; returns OK.
  [[nodiscard]] absl::Status Run(CaptureTarget& target, const StopSignal& stop) override;
  // connected (nothing to be disconnected from), upstream_name "no database".
  SourceHealth Health() const override;

  static decltype(DaemonFactories::source) Factory();
};

class NoDatabaseSink final : public Sink {
 public:
  // applied_seq = upstream.first_seq - 1, counted in upstream.log_id: the first readable record is
  // the next to look at.
  [[nodiscard]] absl::StatusOr<SinkState> LoadState(const UpstreamLog& upstream) override;
  // A session that refuses every transaction fragment (see the top of this file).
  [[nodiscard]] absl::StatusOr<std::unique_ptr<SinkSession>> OpenSession(int worker) override;
  [[nodiscard]] absl::StatusOr<UniqueKeys> UniqueKeysOf(const v1::Relation& relation) override;

  static decltype(DaemonFactories::sink) Factory();
};

}  // namespace ferry
