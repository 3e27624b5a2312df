// The operator's view (issue #20): the quarantine count, the record of the last change of
// direction, and the status page on listen.metrics (/status, /status.json).
#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/base/thread_name.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/status_page.h"
#include "engine/http/http_server.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_names.h"

namespace ferry {

void Daemon::QuarantineCountLoop() {
  SetCurrentThreadName("quarantine");
  do {
    // Never waits for another quarantine call (a rejoin may hold the store for long): counts at
    // the next round instead.
    if (!quarantine_mu_.TryLock()) continue;
    absl::StatusOr<uint64_t> count = quarantine_->Pending();
    quarantine_mu_.Unlock();
    if (!count.ok() && quarantine_pending_.load() >= 0) {
      spdlog::warn("region {}: cannot count ferry.quarantine: {}", config_.region,
                   count.status().ToString());
    }
    quarantine_pending_.store(count.ok() ? static_cast<int64_t>(*count) : -1);
  } while (!maintenance_stop_.WaitForNotificationWithTimeout(absl::Seconds(2)));
}

void Daemon::LoadAppliedTableNames() {
  absl::StatusOr<std::optional<std::string>> names = inbound_->GetState(kAppliedTablesState);
  if (!names.ok()) {
    spdlog::warn("region {}: cannot read the applied tables' names: {}", config_.region,
                 names.status().ToString());
    return;
  }
  TableCountDelta known;
  for (absl::string_view name : absl::StrSplit(names->value_or(""), '\n', absl::SkipEmpty())) {
    known[std::string(name)];  // listed with zero counts
  }
  applied_tables_.Add(known);
  applied_tables_saved_ = known.size();
}

void Daemon::SaveAppliedTableNames() {
  const std::map<std::string, TableCount> tables = applied_tables_.Snapshot();
  if (tables.size() == applied_tables_saved_) return;  // names are only ever added
  std::string names;
  for (const auto& [name, count] : tables) absl::StrAppend(&names, name, "\n");
  AppendRequest request;
  request.state.emplace_back(kAppliedTablesState, std::move(names));
  if (absl::Status s = inbound_->Append(std::move(request)).status(); !s.ok()) {
    spdlog::warn("region {}: cannot keep the applied tables' names (tried again): {}",
                 config_.region, s.ToString());
    return;
  }
  applied_tables_saved_ = tables.size();
}

void Daemon::RecordChange(const std::string& kind, const std::string& operation, absl::Time started,
                          uint64_t epoch, const std::string& new_primary,
                          const v1::LossBound* loss) {
  const absl::Time now = absl::Now();
  v1::DrEvent event;
  event.set_kind(kind);
  event.set_operation(operation);
  event.set_finished_at_us(absl::ToUnixMicros(now));
  event.set_duration_seconds(absl::ToDoubleSeconds(now - started));
  event.set_epoch(epoch);
  event.set_new_primary(new_primary);
  if (loss != nullptr) *event.mutable_loss() = *loss;
  dr_history_->RecordChange(event);
}

HttpResponse Daemon::StatusPage() {
  const v1::StatusReply self = Status();
  // The peer answers its role and epoch on the replication listener; a peer that does not
  // answer within a second is shown as unreachable.
  absl::StatusOr<v1::RegionInfo> peer = peer_->Probe("", absl::Now() + absl::Seconds(1));
  return {200, RenderStatusPage(self, peer, absl::Now()), "text/html; charset=utf-8"};
}

HttpResponse Daemon::StatusJson() {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(Status(), &json, options).ok()) {
    return {500, "cannot render the status as JSON\n"};
  }
  return {200, json + "\n", "application/json"};
}

}  // namespace ferry
