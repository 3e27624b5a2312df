#include "engine/capture/log_capture_target.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"

namespace ferry {

LogCaptureTarget::LogCaptureTarget(DurableLog* log, std::string region,
                                   std::function<uint64_t()> epoch, Clock* clock)
    : log_(log), region_(std::move(region)), epoch_(std::move(epoch)), clock_(clock) {}

absl::Status LogCaptureTarget::Load() {
  FERRY_ASSIGN_OR_RETURN(std::optional<uint64_t> captured, log_->GetCursor(kCapturedCursor));
  captured_.store(captured.value_or(0));
  return absl::OkStatus();
}

absl::Status LogCaptureTarget::Append(std::vector<v1::Transaction> fragments,
                                      uint64_t captured_position) {
  std::vector<SharedRelationsFragment> shared;
  shared.reserve(fragments.size());
  for (v1::Transaction& f : fragments) shared.push_back({std::move(f), {}});
  return AppendShared(std::move(shared), captured_position);
}

absl::Status LogCaptureTarget::AppendShared(std::vector<SharedRelationsFragment> fragments,
                                            uint64_t captured_position) {
  AppendRequest request;
  request.records.reserve(fragments.size());
  const int64_t now_us = absl::ToUnixMicros(clock_->Now());
  const uint64_t epoch = epoch_();
  uint64_t completed = 0;
  TableCountDelta counted;
  for (SharedRelationsFragment& fragment : fragments) {
    v1::Transaction& head = fragment.txn;
    if (counts_ != nullptr) {
      CountTransaction(
          head, [&](uint32_t relation_id) { return fragment.Find(relation_id); }, counted);
    }
    if (head.last_fragment()) ++completed;
    NewRecord record;
    record.kind = head.snapshot() ? RecordKind::kSnapshotRows : RecordKind::kTransaction;
    // Protobuf writes a Transaction's fields in the order of their numbers: the fields up to
    // `relations` (from `head`, with any relations it holds itself), the shared encodings, then
    // the fields after `relations` (moved into `tail`). So the payload is byte for byte
    // protobuf's serialization of the fragment with its shared relations copied in.
    head.set_origin_region(region_);
    v1::Transaction tail;
    tail.mutable_changes()->Swap(head.mutable_changes());
    tail.set_epoch(epoch);
    tail.set_capture_time_us(now_us);
    tail.set_snapshot(head.snapshot());
    head.clear_epoch();
    head.clear_capture_time_us();
    head.clear_snapshot();
    size_t size = head.ByteSizeLong() + tail.ByteSizeLong();
    for (const auto& r : fragment.relations) size += r->encoded_field().size();
    if (size > size_t{INT32_MAX}) {
      return absl::InternalError("cannot serialize a captured transaction of 2 GiB or more");
    }
    record.payload.resize(size);
    auto* p = reinterpret_cast<uint8_t*>(record.payload.data());
    p = head.SerializeWithCachedSizesToArray(p);
    for (const auto& r : fragment.relations) {
      p = std::copy(r->encoded_field().begin(), r->encoded_field().end(), p);
    }
    p = tail.SerializeWithCachedSizesToArray(p);
    if (p != reinterpret_cast<uint8_t*>(record.payload.data()) + size) {
      return absl::InternalError("a captured transaction serialized to another size than counted");
    }
    request.records.push_back(std::move(record));
  }
  const bool advances = captured_position > captured_.load();
  if (advances) request.cursors.emplace_back(kCapturedCursor, captured_position);
  FERRY_RETURN_IF_ERROR(log_->Append(std::move(request)).status());
  if (advances) captured_.store(captured_position);
  transactions_.fetch_add(completed);
  if (counts_ != nullptr) counts_->Add(counted);
  return absl::OkStatus();
}

absl::Status LogCaptureTarget::AppendEvents(
    std::vector<v1::SourceEvent> events,
    std::vector<std::pair<std::string, std::string>> source_state) {
  AppendRequest request;
  request.records.reserve(events.size());
  const int64_t now_us = absl::ToUnixMicros(clock_->Now());
  const uint64_t epoch = epoch_();
  for (v1::SourceEvent& event : events) {
    event.set_origin_region(region_);
    event.set_epoch(epoch);
    event.set_capture_time_us(now_us);
    NewRecord record;
    record.kind = RecordKind::kSourceEvent;
    if (!event.SerializeToString(&record.payload)) {
      return absl::InternalError("cannot serialize a captured event");
    }
    request.records.push_back(std::move(record));
  }
  for (auto& [key, value] : source_state) {
    request.state.emplace_back(absl::StrCat(kSourceStatePrefix, key), std::move(value));
  }
  FERRY_RETURN_IF_ERROR(log_->Append(std::move(request)).status());
  events_.fetch_add(events.size());
  return absl::OkStatus();
}

absl::Status LogCaptureTarget::AdvanceTo(uint64_t position) {
  if (position <= captured_.load()) return absl::OkStatus();
  // A heartbeat record travels to the peer, so lag stays measurable on an idle database.
  v1::Heartbeat heartbeat;
  heartbeat.set_source_position(position);
  heartbeat.set_time_us(absl::ToUnixMicros(clock_->Now()));
  AppendRequest request;
  NewRecord record;
  record.kind = RecordKind::kHeartbeat;
  heartbeat.SerializeToString(&record.payload);
  request.records.push_back(std::move(record));
  request.cursors.emplace_back(kCapturedCursor, position);
  FERRY_RETURN_IF_ERROR(log_->Append(std::move(request)).status());
  captured_.store(position);
  return absl::OkStatus();
}

absl::Status LogCaptureTarget::PutSourceState(const std::string& key, const std::string& value) {
  AppendRequest request;
  request.state.emplace_back(absl::StrCat(kSourceStatePrefix, key), value);
  return log_->Append(std::move(request)).status();
}

absl::StatusOr<std::string> LogCaptureTarget::GetSourceState(const std::string& key) const {
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> value,
                         log_->GetState(absl::StrCat(kSourceStatePrefix, key)));
  return value.value_or("");
}

}  // namespace ferry
