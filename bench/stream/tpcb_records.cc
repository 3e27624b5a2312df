#include "bench/stream/tpcb_records.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "proto/change.pb.h"

namespace ferry::bench {
namespace {

// Type oids and modifiers as Postgres reports them.
constexpr uint32_t kInt4 = 23;
constexpr uint32_t kBpchar = 1042;
constexpr uint32_t kTimestamp = 1114;

struct ColumnSpec {
  std::string_view name;
  uint32_t oid;
  std::string_view type_name;
  int32_t modifier;  // -1: none; char(n): n + 4
  bool key;
  bool not_null;
};

void AddRelation(ferry::v1::Transaction* txn, uint32_t id, std::string_view name,
                 std::initializer_list<ColumnSpec> columns, uint64_t schema_hash) {
  ferry::v1::Relation* r = txn->add_relations();
  r->set_relation_id(id);
  r->set_schema("public");
  r->set_name(std::string(name));
  r->set_replica_identity(ferry::v1::REPLICA_IDENTITY_DEFAULT);
  r->set_schema_hash(schema_hash);
  for (const ColumnSpec& c : columns) {
    ferry::v1::Column* col = r->add_columns();
    col->set_name(std::string(c.name));
    col->set_type_oid(c.oid);
    col->set_type_name(std::string(c.type_name));
    col->set_type_modifier(c.modifier);
    col->set_part_of_key(c.key);
    col->set_not_null(c.not_null);
    if (c.key) r->add_primary_key(std::string(c.name));
  }
}

void AddText(ferry::v1::Tuple* tuple, std::string_view text) {
  tuple->add_values()->set_text(std::string(text));
}
void AddInt(ferry::v1::Tuple* tuple, int64_t v) { AddText(tuple, absl::StrCat(v)); }
void AddNull(ferry::v1::Tuple* tuple) { tuple->add_values()->set_null(true); }

ferry::v1::Tuple* AddChange(ferry::v1::Transaction* txn, ferry::v1::Operation op, uint32_t rel) {
  ferry::v1::Change* c = txn->add_changes();
  c->set_op(op);
  c->set_relation_id(rel);
  return c->mutable_new_tuple();
}

constexpr uint32_t kAccounts = 16397, kTellers = 16394, kBranches = 16400, kHistory = 16391;

}  // namespace

TpcbRecordMaker::TpcbRecordMaker(const TpcbOptions& options)
    : options_(options), rng_(options.seed) {}

std::string TpcbRecordMaker::Next() {
  const int64_t accounts = int64_t{100000} * options_.scale;
  const int64_t tellers = int64_t{10} * options_.scale;
  const int64_t branches = options_.scale;
  auto uniform = [this](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  };
  const int64_t aid = uniform(1, accounts);
  const int64_t tid = uniform(1, tellers);
  const int64_t bid = uniform(1, branches);
  const int64_t delta = uniform(-5000, 5000);
  const int64_t abalance = uniform(-60000, 60000);
  const int64_t tbalance = uniform(-600000, 600000);
  const int64_t bbalance = uniform(-3000000, 3000000);

  commit_time_us_ += uniform(20, 90);  // a few thousand transactions a second
  const uint64_t commit_lsn = lsn_ + 0x1A0 + static_cast<uint64_t>(uniform(0, 0x40));
  lsn_ = commit_lsn + 0x30;

  ferry::v1::Transaction txn;
  txn.set_origin_region(options_.origin_region);
  txn.set_source_position(commit_lsn);
  txn.set_end_position(lsn_);
  txn.set_commit_time_us(commit_time_us_);
  txn.set_source_xid(++xid_);
  txn.set_fragment(0);
  txn.set_last_fragment(true);
  txn.set_epoch(options_.epoch);
  txn.set_capture_time_us(commit_time_us_ + uniform(300, 1500));

  // Relations in the order the transaction first touches them, as the source emits them.
  AddRelation(&txn, kAccounts, "pgbench_accounts",
              {{"aid", kInt4, "integer", -1, true, true},
               {"bid", kInt4, "integer", -1, false, false},
               {"abalance", kInt4, "integer", -1, false, false},
               {"filler", kBpchar, "character(84)", 88, false, false}},
              0x9c1f3a5e27d4b681);
  AddRelation(&txn, kTellers, "pgbench_tellers",
              {{"tid", kInt4, "integer", -1, true, true},
               {"bid", kInt4, "integer", -1, false, false},
               {"tbalance", kInt4, "integer", -1, false, false},
               {"filler", kBpchar, "character(84)", 88, false, false}},
              0x4be07d9a6c13f255);
  AddRelation(&txn, kBranches, "pgbench_branches",
              {{"bid", kInt4, "integer", -1, true, true},
               {"bbalance", kInt4, "integer", -1, false, false},
               {"filler", kBpchar, "character(88)", 92, false, false}},
              0x17a2c4e8f05b9d3c);
  AddRelation(&txn, kHistory, "pgbench_history",
              {{"tid", kInt4, "integer", -1, false, false},
               {"bid", kInt4, "integer", -1, false, false},
               {"aid", kInt4, "integer", -1, false, false},
               {"delta", kInt4, "integer", -1, false, false},
               {"mtime", kTimestamp, "timestamp without time zone", -1, false, false},
               {"filler", kBpchar, "character(22)", 26, false, false}},
              0xd3580b6e91a7c42f);

  // pgbench -i loads accounts with an empty filler (stored blank-padded to 84 characters);
  // tellers, branches and history are inserted without one (NULL). The key does not change,
  // so the UPDATEs carry no old tuple (replica identity DEFAULT).
  ferry::v1::Tuple* a = AddChange(&txn, ferry::v1::UPDATE, kAccounts);
  AddInt(a, aid);
  AddInt(a, (aid - 1) / 100000 + 1);
  AddInt(a, abalance + delta);
  AddText(a, std::string(84, ' '));
  ferry::v1::Tuple* t = AddChange(&txn, ferry::v1::UPDATE, kTellers);
  AddInt(t, tid);
  AddInt(t, (tid - 1) / 10 + 1);
  AddInt(t, tbalance + delta);
  AddNull(t);
  ferry::v1::Tuple* b = AddChange(&txn, ferry::v1::UPDATE, kBranches);
  AddInt(b, bid);
  AddInt(b, bbalance + delta);
  AddNull(b);
  ferry::v1::Tuple* h = AddChange(&txn, ferry::v1::INSERT, kHistory);
  AddInt(h, tid);
  AddInt(h, bid);
  AddInt(h, aid);
  AddInt(h, delta);
  AddText(h, absl::FormatTime("%Y-%m-%d %H:%M:%E6S", absl::FromUnixMicros(commit_time_us_ - 120),
                              absl::UTCTimeZone()));
  AddNull(h);
  return txn.SerializeAsString();
}

}  // namespace ferry::bench
