#include "engine/log/record_size_index.h"

#include <algorithm>

namespace ferry {

void RecordSizeIndex::Reset(uint64_t next_seq) {
  checkpoints_.clear();
  next_seq_ = next_seq;
  total_ = 0;
  checkpoints_.emplace_back(next_seq, 0);
}

void RecordSizeIndex::Add(uint64_t seq, uint64_t bytes) {
  (void)seq;  // == next_seq_
  total_ += bytes;
  ++next_seq_;
  const auto& [last_seq, last_bytes] = checkpoints_.back();
  if (next_seq_ - last_seq >= kStrideRecords || total_ - last_bytes >= kStrideBytes) {
    checkpoints_.emplace_back(next_seq_, total_);
  }
}

void RecordSizeIndex::SkipTo(uint64_t seq) {
  if (seq <= next_seq_) return;
  next_seq_ = seq;
  checkpoints_.emplace_back(seq, total_);
}

void RecordSizeIndex::TrimTo(uint64_t seq, uint64_t bytes_before_seq) {
  while (!checkpoints_.empty() && checkpoints_.front().first <= seq) checkpoints_.pop_front();
  checkpoints_.emplace_front(seq, bytes_before_seq);
}

std::pair<uint64_t, uint64_t> RecordSizeIndex::Floor(uint64_t seq) const {
  // The first checkpoint above seq; the one before it is the floor (the front is <= seq).
  auto it = std::upper_bound(
      checkpoints_.begin(), checkpoints_.end(), seq,
      [](uint64_t s, const std::pair<uint64_t, uint64_t>& c) { return s < c.first; });
  return *std::prev(it);
}

}  // namespace ferry
