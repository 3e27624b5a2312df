// DependencyTracker: decides which earlier, still uncommitted group a transaction must wait
// for before it may be applied on another worker.
//
// Groups are numbered 1, 2, 3... in log order and commit in that order, so "wait for group d"
// means "wait until every group <= d committed". A transaction's Footprint lists what it
// touches:
//   rows    (table, key value) hashes: the replica identity key, old and new, and the values
//           of the target's unique constraints;
//   tables  whole tables, for changes whose rows cannot be keyed (REPLICA IDENTITY FULL without
//           a key, a unique column whose old value the source did not send);
//   barrier TRUNCATE, schema changes and large streamed transactions: depends on everything
//           before it, and everything after it depends on it.
// A row key conflicts with the same row key and with its whole table; a whole table conflicts
// with every key of that table. Hash collisions only add waits, never remove them.
//
// Thread safety: not thread-safe; owned by the scheduler thread.
//
// Example:
//   DependencyTracker tracker;
//   Footprint fp; fp.AddRow(TableHash("public.t"), RowHash(...));
//   uint64_t wait_for = tracker.Add(/*group=*/7, fp, /*committed=*/5);  // 6 if group 6 wrote it
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace ferry {

struct Footprint {
  struct RowKey {
    uint64_t table = 0;
    uint64_t row = 0;
  };
  std::vector<RowKey> rows;
  std::vector<uint64_t> tables;
  bool barrier = false;
  // The transaction goes in a group of its own (a schema change: its neighbours must not share
  // its target transaction, e.g. an enum value added and used).
  bool alone = false;

  void AddRow(uint64_t table, uint64_t row) { rows.push_back({table, row}); }
  void AddTable(uint64_t table) { tables.push_back(table); }
  void Merge(const Footprint& other);
};

class DependencyTracker {
 public:
  // Records that group `group` (> every group added before) touches `footprint` and returns the
  // highest earlier group it conflicts with that is above `committed` (the highest committed
  // group), or 0 when it may run right away. Conflicts with `group` itself are free (a group is
  // one target transaction, applied in order).
  uint64_t Add(uint64_t group, const Footprint& footprint, uint64_t committed);

  // Drops entries of groups <= committed (they no longer delay anyone). Call now and then to
  // bound memory; Add() ignores such entries anyway.
  void Forget(uint64_t committed);

  // Forgets everything (after the scheduler rolled back every uncommitted group).
  void Clear();

  size_t size() const { return rows_.size() + tables_any_.size() + tables_whole_.size(); }

 private:
  static uint64_t RowSlot(const Footprint::RowKey& key);

  absl::flat_hash_map<uint64_t, uint64_t> rows_;          // row slot -> last group
  absl::flat_hash_map<uint64_t, uint64_t> tables_any_;    // table -> last group touching it
  absl::flat_hash_map<uint64_t, uint64_t> tables_whole_;  // table -> last whole-table group
  uint64_t last_barrier_ = 0;
  uint64_t last_group_ = 0;
};

// Hash helpers for footprints.
uint64_t HashTable(std::string_view schema, std::string_view name);
// Accumulates the values of one key; order matters. Null and text values differ.
class RowHasher {
 public:
  explicit RowHasher(uint64_t seed) : state_(seed) {}
  void AddNull();
  void AddText(std::string_view text);
  uint64_t Finish() const { return state_; }

 private:
  uint64_t state_;
};

}  // namespace ferry
