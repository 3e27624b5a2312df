#include "engine/apply/group_builder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/apply/footprint.h"

namespace ferry {
namespace {

// The tracker forgets committed groups once it holds this many entries.
constexpr size_t kForgetAbove = 100000;

}  // namespace

GroupBuilder::GroupBuilder(const GroupLimits& limits, Sink* sink) : limits_(limits), sink_(sink) {}

void GroupBuilder::Reset() {
  open_ = nullptr;
  tracker_.Clear();
  known_shapes_.clear();
  unique_keys_.clear();
}

void GroupBuilder::CarefulThrough(uint64_t seq) { careful_until_ = std::max(careful_until_, seq); }

bool GroupBuilder::MayGrow() const {
  return open_ != nullptr && !open_->context.careful &&
         open_->txns.size() < limits_.max_transactions && open_->bytes < limits_.max_bytes &&
         limits_.clock->Now() - open_->opened < limits_.max_delay;
}

void GroupBuilder::Open(uint64_t first_seq) {
  open_ = std::make_shared<ApplyGroup>();
  open_->id = next_group_id_++;
  open_->first_seq = first_seq;
  open_->opened = limits_.clock->Now();
  if (first_seq <= careful_until_) {
    open_->context.careful = true;
    open_->wait_for = open_->id - 1;  // serial
  }
}

void GroupBuilder::AddHeartbeat(uint64_t seq) {
  if (open_ == nullptr) Open(seq);
  open_->last_seq = seq;
}

Footprint GroupBuilder::FootprintOf(const v1::Transaction& txn) {
  Footprint fp = ComputeFootprint(
      txn, [&](const v1::Relation& r) -> const UniqueKeys& { return UniqueKeysFor(r); });
  for (const v1::Relation& r : txn.relations()) {
    auto [it, inserted] = known_shapes_.try_emplace(r.relation_id(), r.schema_hash());
    if (inserted || it->second != r.schema_hash()) {
      fp.barrier = true;  // new or changed shape: the session may run DDL
      it->second = r.schema_hash();
    }
  }
  return fp;
}

bool GroupBuilder::MustClose(uint64_t seq) const {
  const bool careful_now = seq <= careful_until_;
  return open_ != nullptr &&
         (open_->txns.size() >= limits_.max_transactions || open_->bytes >= limits_.max_bytes ||
          open_->context.careful != careful_now);
}

bool GroupBuilder::MustClose(uint64_t seq, const Footprint& next) const {
  return MustClose(seq) ||
         (open_ != nullptr && !open_->txns.empty() && (next.alone || open_->alone));
}

void GroupBuilder::Add(InboundRecord record, const Footprint& footprint, uint64_t committed) {
  if (open_ == nullptr) Open(record.seq);
  open_->alone = open_->alone || footprint.alone;
  const uint64_t dep = tracker_.Add(open_->id, footprint, committed);
  open_->wait_for = std::max(open_->wait_for, dep);
  open_->bytes += record.bytes;
  open_->last_seq = record.seq;
  open_->commit_time_us = record.txn.commit_time_us();
  open_->txns.emplace_back(record.seq, std::move(record.txn));
  open_->lent.push_back(std::move(record.lent));
}

ApplyGroupPtr GroupBuilder::Close() {
  ApplyGroupPtr group = std::move(open_);
  open_ = nullptr;
  if (group == nullptr) return nullptr;
  group->context.first_seq = group->first_seq;
  if (!group->context.careful && !group->txns.empty())
    group->context.plan = sink_->Plan(group->txns);
  return group;
}

ApplyGroupPtr GroupBuilder::Stream(uint64_t seq, uint64_t committed) {
  Open(seq);
  ApplyGroupPtr group = std::move(open_);
  open_ = nullptr;
  group->context.first_seq = group->first_seq;
  group->stream = true;
  group->wait_for = group->id - 1;
  Footprint barrier;
  barrier.barrier = true;
  tracker_.Add(group->id, barrier, committed);
  return group;
}

void GroupBuilder::ForgetCommitted(uint64_t committed) {
  if (tracker_.size() > kForgetAbove) tracker_.Forget(committed);
}

const UniqueKeys& GroupBuilder::UniqueKeysFor(const v1::Relation& relation) {
  static const UniqueKeys kNone;
  const std::string key =
      absl::StrCat(relation.schema(), ".", relation.name(), "#", relation.schema_hash());
  auto it = unique_keys_.find(key);
  if (it != unique_keys_.end()) return it->second;
  absl::StatusOr<UniqueKeys> keys = sink_->UniqueKeysOf(relation);
  // Unknown keys (target away): treat the whole table as one key, which is always safe.
  if (!keys.ok()) return kNone;
  return unique_keys_.emplace(key, *std::move(keys)).first->second;
}

}  // namespace ferry
