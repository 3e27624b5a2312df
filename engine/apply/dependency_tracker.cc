#include "engine/apply/dependency_tracker.h"

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"

namespace ferry {
namespace {

uint64_t Mix(uint64_t a, uint64_t b) {
  return absl::Hash<std::pair<uint64_t, uint64_t>>{}(std::make_pair(a, b));
}

// The group in `map` under `key` when it is still uncommitted, else 0.
uint64_t Live(const absl::flat_hash_map<uint64_t, uint64_t>& map, uint64_t key,
              uint64_t committed) {
  auto it = map.find(key);
  if (it == map.end() || it->second <= committed) return 0;
  return it->second;
}

}  // namespace

void Footprint::Merge(const Footprint& other) {
  rows.insert(rows.end(), other.rows.begin(), other.rows.end());
  tables.insert(tables.end(), other.tables.begin(), other.tables.end());
  barrier = barrier || other.barrier;
  alone = alone || other.alone;
}

uint64_t DependencyTracker::RowSlot(const Footprint::RowKey& key) {
  return Mix(key.table, key.row);
}

uint64_t DependencyTracker::Add(uint64_t group, const Footprint& footprint, uint64_t committed) {
  uint64_t dep = 0;
  auto consider = [&](uint64_t g) {
    if (g != 0 && g != group && g > committed) dep = std::max(dep, g);
  };
  consider(last_barrier_);
  if (footprint.barrier) {
    // Everything before this group must be committed first.
    if (group > 1) consider(group - 1);
    last_barrier_ = group;
  }
  for (const auto& key : footprint.rows) {
    const uint64_t slot = RowSlot(key);
    consider(Live(rows_, slot, committed));
    consider(Live(tables_whole_, key.table, committed));
  }
  for (uint64_t table : footprint.tables) {
    consider(Live(tables_any_, table, committed));
    consider(Live(tables_whole_, table, committed));
  }
  // Record after checking, so that keys of this very group never delay it.
  for (const auto& key : footprint.rows) {
    rows_[RowSlot(key)] = group;
    tables_any_[key.table] = group;
  }
  for (uint64_t table : footprint.tables) {
    tables_whole_[table] = group;
    tables_any_[table] = group;
  }
  last_group_ = std::max(last_group_, group);
  return dep;
}

void DependencyTracker::Forget(uint64_t committed) {
  absl::erase_if(rows_, [&](const auto& e) { return e.second <= committed; });
  absl::erase_if(tables_any_, [&](const auto& e) { return e.second <= committed; });
  absl::erase_if(tables_whole_, [&](const auto& e) { return e.second <= committed; });
}

void DependencyTracker::Clear() {
  rows_.clear();
  tables_any_.clear();
  tables_whole_.clear();
  last_barrier_ = 0;
}

uint64_t HashTable(std::string_view schema, std::string_view name) {
  return absl::Hash<std::pair<std::string_view, std::string_view>>{}(std::make_pair(schema, name));
}

void RowHasher::AddNull() { state_ = Mix(state_, 0x6e756c6cULL); }

void RowHasher::AddText(std::string_view text) {
  state_ = Mix(state_, absl::Hash<std::string_view>{}(text) ^ 0x74657874ULL);
}

}  // namespace ferry
