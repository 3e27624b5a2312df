// LeafIndex: what one scan of a table in key order leaves in memory, and IndexedTableSide, the
// TableSide built on it.
//
// The scan cuts the rows into leaves at content-defined boundaries (IsLeafBoundary of the key
// hash, never twice within equal keys), so both regions cut at the same keys. Leaf 0 starts at
// the first row whatever its key; leaf i > 0 starts at its boundary key. The index keeps, per
// leaf, the start key's hash and the digest of the rows from that leaf to the end (suffix sums):
// memory grows with the number of leaves (2^-leaf_bits of the rows), not the rows.
//
// The digest of any range [a, b) is suffix(a) - suffix(b). suffix(k) of a boundary key is in the
// index; for any other key the side reads the rows from k up to the next boundary again (one
// leaf on average), at the same cut. That is how a side answers ranges cut at the other
// region's keys, keys it may not hold itself.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "consistency/table_side.h"

namespace ferry::consistency {

class LeafIndex {
 public:
  explicit LeafIndex(int leaf_bits) : leaf_bits_(leaf_bits) {}

  // Adds the next row in key order.
  void Add(const ScannedRow& row);
  // Ends the scan; Add may not be called afterwards.
  void Finish();

  int leaf_bits() const { return leaf_bits_; }
  size_t leaves() const { return starts_.size(); }
  // The start key of leaf i (i >= 1); leaf 0 starts at the first row.
  const Values& start_key(size_t i) const { return starts_[i]; }
  // Digest of leaves [i, j).
  Digest LeavesDigest(size_t i, size_t j) const { return suffix_[i] - suffix_[j]; }
  Digest total() const { return suffix_[0]; }
  // The leaf that starts at a key with this hash, if any (i >= 1).
  std::optional<size_t> FindBoundary(const Hash128& key_hash) const;
  // Digest of the rows from leaf i to the end (i == leaves(): empty).
  Digest SuffixFrom(size_t i) const { return suffix_[i]; }
  // Whether `row` (the next row after `previous_key_hash`) starts a leaf.
  bool StartsLeaf(const ScannedRow& row, const std::optional<Hash128>& previous_key_hash) const {
    return IsLeafBoundary(row.key_hash, leaf_bits_) &&
           (!previous_key_hash.has_value() || !(*previous_key_hash == row.key_hash));
  }

 private:
  const int leaf_bits_;
  std::vector<Values> starts_{Values{}};  // starts_[0] unused
  std::vector<Digest> leaf_digests_{Digest{}};
  std::vector<Digest> suffix_;  // leaves() + 1 entries after Finish
  absl::flat_hash_map<Hash128, size_t> boundaries_;
  std::optional<Hash128> last_key_hash_;
};

// A TableSide over a LeafIndex and a way to read a key range again at the same cut.
class IndexedTableSide : public TableSide {
 public:
  // Calls `row` for each row of `range` in key order until it returns false.
  using RowCallback = std::function<bool(const ScannedRow&)>;

  // Builds the index: one Scan of the whole table. Call once before the other methods.
  [[nodiscard]] absl::Status BuildIndex(int leaf_bits);
  const LeafIndex& index() const { return *index_; }
  // Rows read since construction, including the index scan.
  uint64_t rows_read() const { return rows_read_; }

  [[nodiscard]] absl::StatusOr<std::vector<Digest>> RangeDigests(
      const std::vector<KeyRange>& ranges) override;
  [[nodiscard]] absl::StatusOr<std::vector<ScannedRow>> RangeRows(const KeyRange& range,
                                                                  uint64_t limit) override;
  [[nodiscard]] absl::StatusOr<std::vector<std::optional<Digest>>> CutDigests(
      const KeyRange& range, const std::vector<Hash128>& cuts) override;

 protected:
  // Reads the rows of `range` in key order at the cut. Errors end the verify. A row's key
  // values need only be filled when `all_keys` or when the row starts a leaf at `leaf_bits`
  // (IsLeafBoundary): the index scan builds no key it does not keep.
  [[nodiscard]] virtual absl::Status Scan(const KeyRange& range, bool all_keys, int leaf_bits,
                                          const RowCallback& row) = 0;

 private:
  // The digest of the rows with key >= `key` (nullopt: every row).
  [[nodiscard]] absl::StatusOr<Digest> Suffix(const std::optional<Values>& key);
  [[nodiscard]] absl::Status CountedScan(const KeyRange& range, bool all_keys, int leaf_bits,
                                         const RowCallback& row);

  std::optional<LeafIndex> index_;
  uint64_t rows_read_ = 0;
};

}  // namespace ferry::consistency
