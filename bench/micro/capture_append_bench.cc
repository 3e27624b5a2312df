// Micro-benchmark of the capture's last stage: turning closed pgbench TPC-B transaction
// fragments (3 UPDATEs and 1 INSERT, with the four tables' descriptions; the stream
// benchmark's TpcbRecordMaker) into durable log records through LogCaptureTarget, with the
// descriptions
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

#include "bench/stream/tpcb_records.h"
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

// TPC-B transactions as the Postgres source captures them (bench/stream/tpcb_records.h), split
// into their changes and the four descriptions every one of them carries.
struct Tpcb {
  std::vector<v1::Transaction> changes;  // relations cleared
  std::vector<v1::Relation> tables;
};

Tpcb MakeTpcb(size_t transactions) {
  bench::TpcbRecordMaker maker({.scale = 5});
  Tpcb out;
  for (size_t i = 0; i < transactions; ++i) {
    v1::Transaction t;
    if (!t.ParseFromString(maker.Next())) abort();
    if (out.tables.empty()) out.tables.assign(t.relations().begin(), t.relations().end());
    t.clear_relations();
    out.changes.push_back(std::move(t));
  }
  return out;
}

constexpr size_t kTransactions = 4096;  // made before the clock starts, then cycled

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
  const Tpcb tpcb = MakeTpcb(kTransactions);
  Target target;
  uint64_t n = 0;
  for (auto _ : state) {
    std::vector<v1::Transaction> fragments;
    fragments.reserve(per_append);
    for (size_t i = 0; i < per_append; ++i) {
      v1::Transaction t = tpcb.changes[n++ % kTransactions];
      size_t bytes = 0;  // the assembler's fragment size, as it was counted
      for (const v1::Relation& r : tpcb.tables) {
        *t.add_relations() = r;
        bytes += r.ByteSizeLong();
      }
      for (const v1::Change& c : t.changes()) bytes += c.ByteSizeLong();
      benchmark::DoNotOptimize(bytes);
      fragments.push_back(std::move(t));
    }
    if (!target.get().Append(std::move(fragments), n).ok()) abort();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_append));
}

void BM_AppendShared(benchmark::State& state) {
  const size_t per_append = static_cast<size_t>(state.range(0));
  const Tpcb tpcb = MakeTpcb(kTransactions);
  std::vector<SharedRelationPtr> tables;
  for (const v1::Relation& r : tpcb.tables) tables.push_back(std::make_shared<SharedRelation>(r));
  Target target;
  uint64_t n = 0;
  for (auto _ : state) {
    std::vector<SharedRelationsFragment> fragments;
    fragments.reserve(per_append);
    for (size_t i = 0; i < per_append; ++i) {
      SharedRelationsFragment f{tpcb.changes[n++ % kTransactions], {}};
      size_t bytes = 0;
      for (const SharedRelationPtr& r : tables) {
        f.relations.push_back(r);
        bytes += r->encoded_field().size();
      }
      for (const v1::Change& c : f.txn.changes()) bytes += c.ByteSizeLong();
      benchmark::DoNotOptimize(bytes);
      fragments.push_back(std::move(f));
    }
    if (!target.get().AppendShared(std::move(fragments), n).ok()) abort();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * per_append));
}

BENCHMARK(BM_AppendCopied)->Arg(1)->Arg(13)->Arg(200);
BENCHMARK(BM_AppendShared)->Arg(1)->Arg(13)->Arg(200);

}  // namespace
}  // namespace ferry

BENCHMARK_MAIN();
