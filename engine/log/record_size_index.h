// RecordSizeIndex: how many payload bytes a log holds from a sequence to its end, exactly,
// without keeping every record's size in memory. It keeps a checkpoint (sequence, payload bytes
// of every record before it since the index's origin) at the log's first record and then at
// least every kStrideRecords records and before kStrideBytes bytes have passed; the bytes
// between a checkpoint and a sequence are the sizes of at most kStrideRecords records whose
// payloads add up to less than kStrideBytes, read back by the owner (DurableLog::PayloadBytesFrom).
// Memory: 16 bytes per checkpoint (a 10-million-record log of small records: 2.5 MB).
//
// Not thread-safe: the owner (DurableLog) calls it under its mutex.
//
// Example:
//   RecordSizeIndex index(/*first_seq=*/1);
//   index.Add(1, 100); index.Add(2, 50);                  // records 1 and 2
//   auto [checkpoint, before] = index.Floor(2);          // (1, 0): read record 1's size (100)
//   uint64_t bytes_from_2 = index.total() - before - 100;  // 50
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace ferry {

class RecordSizeIndex {
 public:
  static constexpr uint64_t kStrideRecords = 64;
  static constexpr uint64_t kStrideBytes = uint64_t{1} << 20;

  // An empty log whose next record is `next_seq`.
  explicit RecordSizeIndex(uint64_t next_seq = 1) { Reset(next_seq); }
  void Reset(uint64_t next_seq);

  // The record `seq` (REQUIRES: seq == next_seq()) with `bytes` of payload was appended.
  void Add(uint64_t seq, uint64_t bytes);
  // Records [next_seq(), seq) are missing (a damaged log being opened): they count 0 bytes.
  void SkipTo(uint64_t seq);
  // The records below `seq` were trimmed; `bytes_before_seq` is the cumulative count at `seq`
  // (total() minus the bytes of [seq, next_seq())). REQUIRES: first_seq() <= seq <= next_seq().
  void TrimTo(uint64_t seq, uint64_t bytes_before_seq);

  // The last checkpoint at or below `seq` and the cumulative bytes before it.
  // REQUIRES: first_seq() <= seq <= next_seq().
  std::pair<uint64_t, uint64_t> Floor(uint64_t seq) const;
  // Cumulative bytes of every record before next_seq().
  uint64_t total() const { return total_; }
  uint64_t next_seq() const { return next_seq_; }
  uint64_t first_seq() const { return checkpoints_.front().first; }
  size_t checkpoints() const { return checkpoints_.size(); }

 private:
  std::deque<std::pair<uint64_t, uint64_t>> checkpoints_;  // (seq, bytes before seq), ascending
  uint64_t next_seq_ = 1;
  uint64_t total_ = 0;
};

}  // namespace ferry
