#include "consistency/leaf_index.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {

void LeafIndex::Add(const ScannedRow& row) {
  if (StartsLeaf(row, last_key_hash_)) {
    boundaries_.emplace(row.key_hash, starts_.size());
    starts_.push_back(row.key);
    leaf_digests_.emplace_back();
  }
  leaf_digests_.back().Add(row.row_hash);
  last_key_hash_ = row.key_hash;
}

void LeafIndex::Finish() {
  suffix_.assign(leaf_digests_.size() + 1, Digest{});
  for (size_t i = leaf_digests_.size(); i-- > 0;) suffix_[i] = suffix_[i + 1] + leaf_digests_[i];
  leaf_digests_.clear();
  leaf_digests_.shrink_to_fit();
}

std::optional<size_t> LeafIndex::FindBoundary(const Hash128& key_hash) const {
  auto it = boundaries_.find(key_hash);
  if (it == boundaries_.end()) return std::nullopt;
  return it->second;
}

absl::Status IndexedTableSide::CountedScan(const KeyRange& range, bool all_keys, int leaf_bits,
                                           const RowCallback& row) {
  return Scan(range, all_keys, leaf_bits, [&](const ScannedRow& r) {
    ++rows_read_;
    return row(r);
  });
}

absl::Status IndexedTableSide::BuildIndex(int leaf_bits) {
  if (leaf_bits < 0 || leaf_bits > 30) {
    return absl::InvalidArgumentError(absl::StrCat("leaf_bits ", leaf_bits, " outside [0, 30]"));
  }
  LeafIndex index(leaf_bits);
  FERRY_RETURN_IF_ERROR(CountedScan(KeyRange{}, false, leaf_bits, [&](const ScannedRow& r) {
    index.Add(r);
    return true;
  }));
  index.Finish();
  index_.emplace(std::move(index));
  return absl::OkStatus();
}

absl::StatusOr<Digest> IndexedTableSide::Suffix(const std::optional<Values>& key) {
  if (!key.has_value()) return index_->total();
  const Hash128 key_hash = HashValues(*key);
  if (auto leaf = index_->FindBoundary(key_hash); leaf.has_value()) {
    return index_->SuffixFrom(*leaf);
  }
  // Not a start key here: read from `key` to the next start key (about one leaf).
  Digest partial;
  std::optional<size_t> next_leaf;
  FERRY_RETURN_IF_ERROR(
      CountedScan(KeyRange{.begin = key}, false, index_->leaf_bits(), [&](const ScannedRow& r) {
        if (IsLeafBoundary(r.key_hash, index_->leaf_bits())) {
          next_leaf = index_->FindBoundary(r.key_hash);
          if (next_leaf.has_value()) return false;
        }
        partial.Add(r.row_hash);
        return true;
      }));
  return partial + (next_leaf.has_value() ? index_->SuffixFrom(*next_leaf) : Digest{});
}

absl::StatusOr<std::vector<Digest>> IndexedTableSide::RangeDigests(
    const std::vector<KeyRange>& ranges) {
  if (!index_.has_value()) return absl::FailedPreconditionError("the table was not scanned");
  std::vector<Digest> out;
  out.reserve(ranges.size());
  for (const KeyRange& range : ranges) {
    FERRY_ASSIGN_OR_RETURN(Digest from_begin, Suffix(range.begin));
    Digest from_end;
    if (range.end.has_value()) {
      FERRY_ASSIGN_OR_RETURN(from_end, Suffix(range.end));
    }
    // A range whose end precedes its begin is refused rather than given a negative count.
    if (from_end.count > from_begin.count) {
      return absl::InvalidArgumentError("a key range ends before it begins");
    }
    out.push_back(from_begin - from_end);
  }
  return out;
}

absl::StatusOr<std::vector<ScannedRow>> IndexedTableSide::RangeRows(const KeyRange& range,
                                                                    uint64_t limit) {
  std::vector<ScannedRow> rows;
  bool over = false;
  FERRY_RETURN_IF_ERROR(CountedScan(range, true, 0, [&](const ScannedRow& r) {
    if (rows.size() >= limit) {
      over = true;
      return false;
    }
    rows.push_back(r);
    return true;
  }));
  if (over) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a differing key range holds more than ", limit, " rows"));
  }
  return rows;
}

absl::StatusOr<std::vector<std::optional<Digest>>> IndexedTableSide::CutDigests(
    const KeyRange& range, const std::vector<Hash128>& cuts) {
  absl::flat_hash_map<Hash128, size_t> where;  // cut -> its run (1-based)
  for (size_t i = 0; i < cuts.size(); ++i) where.emplace(cuts[i], i + 1);
  std::vector<std::optional<Digest>> out(cuts.size() + 1);
  out[0] = Digest{};
  size_t run = 0;
  FERRY_RETURN_IF_ERROR(CountedScan(range, false, 30, [&](const ScannedRow& r) {
    // A later cut starts a run; runs whose cut row is missing here stay nullopt.
    if (auto it = where.find(r.key_hash); it != where.end() && it->second > run) {
      run = it->second;
      out[run] = Digest{};
    }
    out[run]->Add(r.row_hash);
    return true;
  }));
  return out;
}

}  // namespace ferry::consistency
