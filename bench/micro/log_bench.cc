// Micro-benchmarks of the durable log: durable (synced) append throughput of 200-byte records by
// batch size and number of writer threads, and sequential read throughput. Rates are in
// items_per_second (records). Each benchmark writes a fresh log under $FERRY_BENCH_DIR (default
// /tmp) and removes it afterwards.
//
// Run: build-release/bench/log_bench [--benchmark_filter=Append]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/log/durable_log.h"

namespace ferry {
namespace {

constexpr size_t kRecordBytes = 200;

std::string NewDir() {
  const char* base = getenv("FERRY_BENCH_DIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/ferry-log-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

AppendRequest Batch(size_t records) {
  AppendRequest req;
  req.records.reserve(records);
  for (size_t i = 0; i < records; ++i) {
    req.records.push_back({RecordKind::kTransaction, std::string(kRecordBytes, 'x')});
  }
  return req;
}

// Shared by the threads of one benchmark run; set up and torn down by thread 0 (the benchmark
// loop's start and end are barriers for all threads).
std::unique_ptr<DurableLog> g_log;
std::string g_dir;

void OpenShared(bool sync) {
  g_dir = NewDir();
  auto log = DurableLog::Open({.path = g_dir + "/log", .sync = sync});
  if (!log.ok()) abort();
  g_log = std::move(*log);
}

void CloseShared(benchmark::State& state) {
  const LogStats stats = g_log->stats();
  state.counters["records_per_commit"] =
      stats.group_commits == 0 ? 0.0
                               : static_cast<double>(stats.appended_records) / stats.group_commits;
  g_log.reset();
  std::filesystem::remove_all(g_dir);
}

// Args: records per Append. Threads: concurrent writers.
void BM_Append(benchmark::State& state, bool sync) {
  const size_t batch = static_cast<size_t>(state.range(0));
  if (state.thread_index() == 0) OpenShared(sync);
  const AppendRequest prototype = Batch(batch);
  for (auto _ : state) {
    AppendRequest req = prototype;
    auto seq = g_log->Append(std::move(req));
    if (!seq.ok()) {
      state.SkipWithError("append failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * kRecordBytes));
  if (state.thread_index() == 0) CloseShared(state);
}

void BM_AppendDurable(benchmark::State& state) { BM_Append(state, /*sync=*/true); }
void BM_AppendUnsynced(benchmark::State& state) { BM_Append(state, /*sync=*/false); }

BENCHMARK(BM_AppendDurable)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(64)
    ->Arg(256)
    ->Arg(1024)
    ->Threads(1)
    ->Threads(2)
    ->Threads(4)
    ->UseRealTime();
// The cost of the sync itself, for comparison (not a durable configuration).
BENCHMARK(BM_AppendUnsynced)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(64)
    ->Arg(4096)
    ->Threads(1)
    ->UseRealTime();

// Sequential reads in chunks of range(0) records over a log of 200,000 records. range(1): 0 reads
// right after appending (the last records still in memtables, the rest in SST files in the page
// cache), 1 after a reopen (records in SST files).
void BM_ReadSequential(benchmark::State& state) {
  constexpr uint64_t kLogRecords = 200'000;
  const size_t chunk = static_cast<size_t>(state.range(0));
  const std::string dir = NewDir();
  {
    auto log = DurableLog::Open({.path = dir + "/log"});
    if (!log.ok()) abort();
    for (uint64_t n = 0; n < kLogRecords; n += 1000) {
      if (!(*log)->Append(Batch(1000)).ok()) abort();
    }
    if (state.range(1) == 0) g_log = std::move(*log);
  }
  if (g_log == nullptr) {
    auto log = DurableLog::Open({.path = dir + "/log"});
    if (!log.ok()) abort();
    g_log = std::move(*log);
  }
  uint64_t from = 1, records = 0;
  for (auto _ : state) {
    auto read = g_log->Read(from, chunk, 64 << 20);
    if (!read.ok() || read->empty()) {
      state.SkipWithError("read failed");
      break;
    }
    records += read->size();
    from = read->back().seq + 1;
    if (from >= g_log->next_seq()) from = 1;
  }
  state.SetItemsProcessed(static_cast<int64_t>(records));
  state.SetBytesProcessed(static_cast<int64_t>(records * kRecordBytes));
  g_log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ReadSequential)
    ->ArgNames({"chunk", "from_sst"})
    ->Args({100, 0})
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->UseRealTime();

}  // namespace
}  // namespace ferry

BENCHMARK_MAIN();
