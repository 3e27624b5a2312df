#include "consistency/comparison.h"

#include <algorithm>
#include <span>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"

namespace ferry::consistency {
namespace {

// Cuts of a differing range a CutDigests call carries at most (about 16 expected).
constexpr size_t kMaxCuts = 256;

// A run of the primary's leaves [first, last).
struct Node {
  size_t first;
  size_t last;
};

KeyRange RangeOf(const LeafIndex& index, const Node& node) {
  KeyRange range;
  if (node.first > 0) range.begin = index.start_key(node.first);
  if (node.last < index.leaves()) range.end = index.start_key(node.last);
  return range;
}

class Collector {
 public:
  Collector(const CompareOptions& options, TableDifferences* out) : options_(options), out_(out) {}

  // Keys are kept with their leaf, and Finish puts them in key order (the rounds find them
  // level by level).
  void Keep(std::vector<std::pair<size_t, Values>>* list, const Values& key,
            std::optional<Hash128> standby_row_hash, bool remove) {
    if (kept_ < options_.max_keys) {
      list->emplace_back(leaf_, key);
      out_->repair_targets.push_back({key, standby_row_hash, remove});
      ++kept_;
    } else {
      out_->truncated = true;
    }
  }

  void Finish() {
    for (auto [from, to] : {std::pair{&missing_, &out_->missing}, std::pair{&extra_, &out_->extra},
                            std::pair{&changed_, &out_->changed}}) {
      std::stable_sort(from->begin(), from->end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [leaf, key] : *from) to->push_back(std::move(key));
    }
  }

  void CompareRows(size_t leaf, std::span<const ScannedRow> primary,
                   const std::vector<ScannedRow>& standby) {
    leaf_ = leaf;
    if (out_->keyless) {
      // Multisets: count each row hash on both sides.
      struct Copies {
        uint64_t primary = 0;
        uint64_t standby = 0;
        const ScannedRow* row = nullptr;  // one of its copies (its key is the row's text)
      };
      absl::flat_hash_map<Hash128, Copies> copies;
      for (const auto& r : primary) {
        Copies& c = copies[r.row_hash];
        ++c.primary;
        c.row = &r;
      }
      for (const auto& r : standby) {
        Copies& c = copies[r.row_hash];
        ++c.standby;
        if (c.row == nullptr) c.row = &r;
      }
      for (const auto& [hash, c] : copies) {
        if (c.primary == c.standby) continue;
        if (c.primary > c.standby) out_->missing_count += c.primary - c.standby;
        if (c.primary < c.standby) out_->extra_count += c.standby - c.primary;
        if (kept_ < options_.max_keys) {
          RepairTarget t{.key = c.row->key,
                         .standby_row_hash = hash,
                         .remove = c.primary < c.standby,
                         .primary_copies = c.primary,
                         .standby_copies = c.standby};
          out_->repair_targets.push_back(std::move(t));
          ++kept_;
        } else {
          out_->truncated = true;
        }
      }
      return;
    }
    absl::flat_hash_map<Hash128, const ScannedRow*> on_standby;
    on_standby.reserve(standby.size());
    for (const auto& r : standby) on_standby.emplace(r.key_hash, &r);
    for (const auto& r : primary) {
      auto it = on_standby.find(r.key_hash);
      if (it == on_standby.end()) {
        ++out_->missing_count;
        Keep(&missing_, r.key, std::nullopt, false);
        continue;
      }
      if (!(it->second->row_hash == r.row_hash)) {
        ++out_->changed_count;
        Keep(&changed_, r.key, it->second->row_hash, false);
      }
      on_standby.erase(it);
    }
    // What is left is extra, reported in the standby's key order.
    for (const auto& r : standby) {
      if (on_standby.contains(r.key_hash)) {
        ++out_->extra_count;
        Keep(&extra_, r.key, r.row_hash, true);
      }
    }
  }

 private:
  const CompareOptions& options_;
  TableDifferences* out_;
  uint64_t kept_ = 0;
  size_t leaf_ = 0;
  std::vector<std::pair<size_t, Values>> missing_, extra_, changed_;
};

// Runs at or below this many rows on the primary are compared row by row; longer differing
// runs are cut again.
constexpr size_t kRowsCompared = 32;

// The cut level for `rows` rows: boundaries at 1/16th of them (0 when too few to cut).
int CutBits(size_t rows) {
  int bits = 0;
  while ((size_t{2} << bits) <= rows) ++bits;  // floor(log2(rows))
  return std::max(0, bits - 4);
}

// A differing range: the primary's rows of it (`mine`, with their keys) cut into runs at the rows
// whose key hashes are boundaries at `cut_bits` (about 16 runs); the standby answers each run's
// digest (TableSide::CutDigests), and each run that differs is cut again the same way, down to
// runs of kRowsCompared rows or fewer, which are compared row by row. The bytes on the wire per
// differing leaf are then a few rounds of digests and the rows of a run of a few dozen.
absl::Status CompareRun(size_t leaf, const KeyRange& range, std::span<const ScannedRow> mine,
                        int cut_bits, TableSide& standby, const CompareOptions& options,
                        Collector& collector, CompareStats* stats) {
  auto whole = [&]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(auto theirs, standby.RangeRows(range, options.max_leaf_rows));
    stats->rows_exchanged += mine.size() + theirs.size();
    collector.CompareRows(leaf, mine, theirs);
    return absl::OkStatus();
  };
  if (options.check_cancelled) FERRY_RETURN_IF_ERROR(options.check_cancelled());
  if (cut_bits <= 0 || mine.size() <= kRowsCompared) return whole();
  std::vector<size_t> starts = {0};  // where each of the primary's runs starts in `mine`
  std::vector<Hash128> cuts;
  for (size_t i = 1; i < mine.size(); ++i) {
    if (IsLeafBoundary(mine[i].key_hash, cut_bits) && !(mine[i].key_hash == mine[i - 1].key_hash)) {
      starts.push_back(i);
      cuts.push_back(mine[i].key_hash);
    }
  }
  if (cuts.size() < 2 || cuts.size() > kMaxCuts) return whole();
  absl::StatusOr<std::vector<std::optional<Digest>>> theirs = standby.CutDigests(range, cuts);
  if (absl::IsUnimplemented(theirs.status()) || absl::IsResourceExhausted(theirs.status())) {
    return whole();  // an older standby, or a lower bound on cuts
  }
  FERRY_RETURN_IF_ERROR(theirs.status());
  ++stats->rounds;
  if (theirs->size() != cuts.size() + 1 || !(*theirs)[0].has_value()) {
    return absl::DataLossError(absl::StrCat("the standby answered ", theirs->size(),
                                            " run digests for ", cuts.size(), " cuts"));
  }
  // A group: a run starting at a cut the standby holds, up to the next such cut (the runs of
  // cuts it lacks belong to the group before them, on both sides).
  for (size_t j = 0; j <= cuts.size();) {
    size_t k = j + 1;
    while (k <= cuts.size() && !(*theirs)[k].has_value()) ++k;
    const size_t from = starts[j];
    const size_t to = k <= cuts.size() ? starts[k] : mine.size();
    Digest ours;
    for (size_t i = from; i < to; ++i) ours.Add(mine[i].row_hash);
    if (!(ours == *(*theirs)[j])) {
      KeyRange part{.begin = j == 0 ? range.begin : std::optional<Values>(mine[from].key),
                    .end = k <= cuts.size() ? std::optional<Values>(mine[to].key) : range.end};
      const std::span<const ScannedRow> run = mine.subspan(from, to - from);
      // The next level's boundaries are finer than this one's (a boundary here is one there
      // too); a run with fewer than two of them is compared whole.
      FERRY_RETURN_IF_ERROR(CompareRun(leaf, part, run, std::min(cut_bits - 1, CutBits(run.size())),
                                       standby, options, collector, stats));
    }
    j = k;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CompareTable(IndexedTableSide& primary, TableSide& standby,
                          const CompareOptions& options, TableDifferences* out,
                          CompareStats* stats) {
  const LeafIndex& index = primary.index();
  const size_t fanout = static_cast<size_t>(std::max(2, options.fanout));
  auto check = [&]() -> absl::Status {
    return options.check_cancelled ? options.check_cancelled() : absl::OkStatus();
  };
  Collector collector(options, out);

  std::vector<Node> level{{0, index.leaves()}};
  while (!level.empty()) {
    // Ask the standby for this level's digests.
    std::vector<Node> differing;
    for (size_t start = 0; start < level.size(); start += options.ranges_per_call) {
      FERRY_RETURN_IF_ERROR(check());
      const size_t end = std::min(level.size(), start + options.ranges_per_call);
      std::vector<KeyRange> ranges;
      ranges.reserve(end - start);
      for (size_t i = start; i < end; ++i) ranges.push_back(RangeOf(index, level[i]));
      FERRY_ASSIGN_OR_RETURN(std::vector<Digest> digests, standby.RangeDigests(ranges));
      ++stats->rounds;
      stats->ranges_compared += ranges.size();
      if (digests.size() != ranges.size()) {
        return absl::DataLossError(absl::StrCat("the standby answered ", digests.size(),
                                                " digests for ", ranges.size(), " ranges"));
      }
      for (size_t i = start; i < end; ++i) {
        if (!(digests[i - start] == index.LeavesDigest(level[i].first, level[i].last))) {
          differing.push_back(level[i]);
        }
      }
    }
    std::vector<Node> next;
    for (const Node& node : differing) {
      const size_t width = node.last - node.first;
      if (width <= 1) {
        FERRY_RETURN_IF_ERROR(check());
        const KeyRange range = RangeOf(index, node);
        FERRY_ASSIGN_OR_RETURN(auto mine, primary.RangeRows(range, options.max_leaf_rows));
        ++stats->leaves_compared;
        FERRY_RETURN_IF_ERROR(CompareRun(node.first, range, mine, index.leaf_bits() - 4, standby,
                                         options, collector, stats));
        continue;
      }
      const size_t step = (width + fanout - 1) / fanout;
      for (size_t first = node.first; first < node.last; first += step) {
        next.push_back({first, std::min(node.last, first + step)});
      }
    }
    level = std::move(next);
  }
  collector.Finish();
  return absl::OkStatus();
}

}  // namespace ferry::consistency
