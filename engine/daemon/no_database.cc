#include "engine/daemon/no_database.h"

#include "absl/strings/str_cat.h"

namespace ferry {
namespace {

class RefusingSession final : public SinkSession {
 public:
  absl::Status Begin(const GroupContext&) override { return absl::OkStatus(); }
  absl::Status Apply(uint64_t seq, const v1::Transaction&) override {
    return absl::FailedPreconditionError(absl::StrCat(
        "apply: inbound record ", seq,
        " is a database transaction, but this region has no database (its config has no "
        "postgres: section); give both regions a postgres: section, or neither"));
  }
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::Status Commit(uint64_t, int64_t) override { return absl::OkStatus(); }
  void Abort() override {}
  std::optional<TableFault> fault() const override { return std::nullopt; }
  uint64_t conflicts_committed() const override { return 0; }
};

}  // namespace

absl::Status NoDatabaseSource::Run(CaptureTarget&, const StopSignal& stop) {
  while (!stop.WaitFor(absl::Seconds(1))) {
  }
  return absl::OkStatus();
}

SourceHealth NoDatabaseSource::Health() const {
  SourceHealth h;
  h.connected = true;
  h.upstream_name = "no database";
  return h;
}

decltype(DaemonFactories::source) NoDatabaseSource::Factory() {
  return
      [](const config::Config&, const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Source>> {
        return std::make_unique<NoDatabaseSource>();
      };
}

absl::StatusOr<SinkState> NoDatabaseSink::LoadState(const UpstreamLog& upstream) {
  SinkState state;
  state.applied_seq = upstream.first_seq > 0 ? upstream.first_seq - 1 : 0;
  state.log_id = upstream.log_id;
  return state;
}

absl::StatusOr<std::unique_ptr<SinkSession>> NoDatabaseSink::OpenSession(int) {
  return std::make_unique<RefusingSession>();
}

absl::StatusOr<UniqueKeys> NoDatabaseSink::UniqueKeysOf(const v1::Relation&) {
  return UniqueKeys();
}

decltype(DaemonFactories::sink) NoDatabaseSink::Factory() {
  return
      [](const config::Config&, const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Sink>> {
        return std::make_unique<NoDatabaseSink>();
      };
}

}  // namespace ferry
