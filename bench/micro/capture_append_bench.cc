// Micro-benchmark of the capture's last stage: turning closed pgbench TPC-B transaction
// fragments (3 UPDATEs and 1 INSERT, with the four tables' descriptions) into durable log
// records through LogCaptureTarget, with the descriptions
//   - copied into every fragment and serialized with it (Append: what the Postgres capture did
//     before the descriptions were shared), or
//   - shared by every fragment and written from their encodings made once (AppendShared).
// Both write the same bytes. The argument is the transactions per append (a group commit);
// rates are in items_per_second (transactions). The log is not synced, so the figures are CPU.
// Each benchmark writes a fresh log under $FERRY_BENCH_DIR (default /tmp) and removes it.
//
// Run: build/bench/capture_append_bench [--benchmark_filter=Shared]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/shared_relation.h"
#include "engine/capture/log_capture_target.h"

namespace ferry {
namespace {

std::string NewDir() {
  const char* base = getenv("FERRY_BENCH_DIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/ferry-capture-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

v1::Relation Table(uint32_t id, const std::string& name,
                   const std::vector<std::pair<std::string, std::string>>& columns) {
  v1::Relation r;
  r.set_relation_id(id);
  r.set_schema("public");
  r.set_name(name);
  for (size_t i = 0; i < columns.size(); ++i) {
    v1::Column* c = r.add_columns();
    c->set_name(columns[i].first);
    c->set_type_oid(columns[i].second == "integer" ? 23 : 1042);
    c->set_type_name(columns[i].second);
    c->set_type_modifier(-1);
    c->set_part_of_key(i == 0);
    c->set_not_null(i == 0);
  }
  r.set_replica_identity(v1::REPLICA_IDENTITY_DEFAULT);
  r.set_schema_hash(0x9e3779b97f4a7c15ULL * id);
  r.add_primary_key(columns[0].first);
  return r;
}

std::vector<v1::Relation> TpcbTables() {
  return {Table(16400, "pgbench_accounts",
                {{"aid", "integer"},
                 {"bid", "integer"},
                 {"abalance", "integer"},
                 {"filler", "character(84)"}}),
          Table(16401, "pgbench_tellers",
                {{"tid", "integer"},
                 {"bid", "integer"},
                 {"tbalance", "integer"},
                 {"filler", "character(84)"}}),
          Table(16402, "pgbench_branches",
                {{"bid", "integer"}, {"bbalance", "integer"}, {"filler", "character(88)"}}),
          Table(16403, "pgbench_history",
                {{"tid", "integer"},
                 {"bid", "integer"},
                 {"aid", "integer"},
                 {"delta", "integer"},
                 {"mtime", "timestamp without time zone"},
                 {"filler", "character(22)"}})};
}

// A TPC-B transaction's changes, without relations.
v1::Transaction TpcbChanges(uint64_t n) {
  v1::Transaction t;
  t.set_source_position(0x1000000 + n * 600);
  t.set_end_position(0x1000000 + n * 600 + 560);
  t.set_commit_time_us(1765000000000000 + static_cast<int64_t>(n));
  t.set_source_xid(static_cast<uint32_t>(1000 + n));
  t.set_last_fragment(true);
  for (uint32_t id : {16400u, 16401u, 16402u}) {
    v1::Change* c = t.add_changes();
    c->set_op(v1::UPDATE);
    c->set_relation_id(id);
    v1::Tuple* row = c->mutable_new_tuple();
    row->add_values()->set_text(std::to_string(n % 500000));
    row->add_values()->set_text("3");
    row->add_values()->set_text("-2117");
    row->add_values()->set_null(true);
  }
  v1::Change* insert = t.add_changes();
  insert->set_op(v1::INSERT);
  insert->set_relation_id(16403);
  for (const char* v : {"27", "3", "318877", "-2117", "2026-12-06 15:00:00.123456"}) {
    insert->mutable_new_tuple()->add_values()->set_text(v);
  }
  insert->mutable_new_tuple()->add_values()->set_null(true);
  return t;
}

class Target {
 public:
  Target() : dir_(NewDir()) {
    auto log = DurableLog::Open({.path = dir_ + "/log", .sync = false});
    if (!log.ok()) abort();
    log_ = std::move(*log);
    target_ = std::make_unique<LogCaptureTarget>(log_.get(), "east", [] { return uint64_t{1}; });
    if (!target_->Load().ok()) abort();
  }
  ~Target() {
    target_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }
  LogCaptureTarget& get() { return *target_; }

 private:
  std::string dir_;
  std::unique_ptr<DurableLog> log_;
  std::unique_ptr<LogCaptureTarget> target_;
};

void BM_AppendCopied(benchmark::State& state) {
  const size_t per_append = static_cast<size_t>(state.range(0));
  const std::vector<v1::Relation> tables = TpcbTables();
  Target target;
  uint64_t n = 0;
  for (auto _ : state) {
    std::vector<v1::Transaction> fragments;
    fragments.reserve(per_append);
    for (size_t i = 0; i < per_append; ++i) {
      v1::Transaction t = TpcbChanges(++n);
      size_t bytes = 0;  // the assembler's fragment size, as it was counted
      for (const v1::Relation& r : tables) {
        *t.add_relations() = r;
        bytes += r.ByteSizeLong();
      }
      for (const v1::Change& c : t.changes()) bytes += c.ByteSizeLong();
      benchmark::DoNotOptimize(bytes);
      fragments.push_back(std::move(t));
    }
    if (!target.get().Append(std::move(fragments), 0x1000000 + n * 600 + 560).ok()) abort();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_append));
}

void BM_AppendShared(benchmark::State& state) {
  const size_t per_append = static_cast<size_t>(state.range(0));
  std::vector<std::shared_ptr<const SharedRelation>> tables;
  for (v1::Relation& r : TpcbTables()) {
    tables.push_back(std::make_shared<const SharedRelation>(std::move(r)));
  }
  Target target;
  uint64_t n = 0;
  for (auto _ : state) {
    std::vector<SharedRelationsFragment> fragments;
    fragments.reserve(per_append);
    for (size_t i = 0; i < per_append; ++i) {
      SharedRelationsFragment f{TpcbChanges(++n), {}};
      size_t bytes = 0;
      for (const auto& r : tables) {
        f.relations.push_back(r);
        bytes += r->encoded_field().size();
      }
      for (const v1::Change& c : f.txn.changes()) bytes += c.ByteSizeLong();
      benchmark::DoNotOptimize(bytes);
      fragments.push_back(std::move(f));
    }
    if (!target.get().AppendShared(std::move(fragments), 0x1000000 + n * 600 + 560).ok()) {
      abort();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_append));
}

BENCHMARK(BM_AppendCopied)->Arg(1)->Arg(13)->Arg(200);
BENCHMARK(BM_AppendShared)->Arg(1)->Arg(13)->Arg(200);

}  // namespace
}  // namespace ferry

BENCHMARK_MAIN();
