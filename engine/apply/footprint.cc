#include "engine/apply/footprint.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace ferry {
namespace {

// Hash of the values at `columns` of `tuple`, or nullopt when one is missing (unchanged TOAST,
// binary, or the tuple is too short).
std::optional<uint64_t> KeyHash(uint64_t seed, const v1::Tuple& tuple,
                                const std::vector<int>& columns) {
  RowHasher hasher(seed);
  for (int c : columns) {
    if (c >= tuple.values_size()) return std::nullopt;
    const v1::Value& v = tuple.values(c);
    switch (v.kind_case()) {
      case v1::Value::kNull:
        hasher.AddNull();
        break;
      case v1::Value::kText:
        hasher.AddText(v.text());
        break;
      default:
        return std::nullopt;
    }
  }
  return hasher.Finish();
}

struct KeySet {
  uint64_t seed;
  std::vector<int> columns;
  bool in_key_only_image;  // all its columns are part of the replica identity
};

}  // namespace

Footprint ComputeFootprint(const v1::Transaction& txn, const UniqueKeysLookup& unique_keys) {
  Footprint fp;
  absl::flat_hash_map<uint32_t, const v1::Relation*> relations;
  for (const auto& r : txn.relations()) relations[r.relation_id()] = &r;

  for (const v1::Change& change : txn.changes()) {
    if (change.op() == v1::TRUNCATE) {
      fp.barrier = true;
      continue;
    }
    if (change.op() == v1::MESSAGE) {
      // A message the source vouches for may change schemas (a replayed DDL command).
      if (change.message_authenticated()) fp.barrier = fp.alone = true;
      continue;
    }
    auto it = relations.find(change.relation_id());
    if (it == relations.end()) {
      fp.barrier = true;  // malformed; the session reports it
      continue;
    }
    const v1::Relation& rel = *it->second;
    const uint64_t table = HashTable(rel.schema(), rel.name());
    if (txn.snapshot() || change.op() == v1::COPY) {
      // Snapshot rows: the chunks of one table load one after another (parallel COPY streams
      // into one table only contend on 2 cores: 1M rows took 3.2 s in 4 streams, 2.4 s in
      // one), and millions of row keys stay out of the tracker. Other tables go on in parallel.
      fp.AddTable(table);
      continue;
    }

    std::vector<KeySet> sets;
    {
      KeySet identity{table ^ 0x1d, {}, true};
      for (int i = 0; i < rel.columns_size(); ++i) {
        if (rel.replica_identity() == v1::REPLICA_IDENTITY_FULL || rel.columns(i).part_of_key()) {
          identity.columns.push_back(i);
        }
      }
      if (identity.columns.empty()) {
        fp.AddTable(table);
        continue;
      }
      sets.push_back(std::move(identity));
    }
    uint64_t n = 0;
    for (const auto& names : unique_keys(rel)) {
      KeySet set{table ^ (0x100 + n++), {}, true};
      for (const auto& name : names) {
        for (int i = 0; i < rel.columns_size(); ++i) {
          if (rel.columns(i).name() == name) {
            set.columns.push_back(i);
            if (!rel.columns(i).part_of_key()) set.in_key_only_image = false;
          }
        }
      }
      if (set.columns.size() != names.size()) {
        fp.AddTable(table);  // a unique column the source does not have: cannot key it
        continue;
      }
      sets.push_back(std::move(set));
    }

    bool whole = false;
    auto add = [&](const v1::Tuple& tuple, bool key_only) {
      for (const KeySet& set : sets) {
        if (key_only && !set.in_key_only_image) {
          whole = true;
          continue;
        }
        auto h = KeyHash(set.seed, tuple, set.columns);
        if (!h) {
          whole = true;
          continue;
        }
        fp.AddRow(table, *h);
      }
    };
    switch (change.op()) {
      case v1::INSERT:
        add(change.new_tuple(), false);
        break;
      case v1::UPDATE:
        if (change.has_old_tuple()) {
          add(change.old_tuple(), change.old_is_key_only());
        } else {
          // The key did not change; but the old values of other unique keys are unknown.
          for (const KeySet& set : sets) {
            if (!set.in_key_only_image) whole = true;
          }
        }
        add(change.new_tuple(), false);
        break;
      case v1::DELETE:
        if (change.has_old_tuple()) {
          add(change.old_tuple(), change.old_is_key_only());
        } else {
          whole = true;
        }
        break;
      default:
        fp.barrier = true;  // unknown operation: the session reports it
        break;
    }
    if (whole) fp.AddTable(table);
  }
  return fp;
}

}  // namespace ferry
