// Micro-benchmark of the apply reader's decoding: pgbench TPC-B log records (3 UPDATEs and 1
// INSERT with the four tables' descriptions; the stream benchmark's TpcbRecordMaker) parsed into
// groups of 1,000 transactions that are held until the group is full and then dropped, as the
// scheduler's reader does, with each description
//   - parsed again for every transaction (Plain: InboundReader::Decode without a catalog), or
//   - parsed once and lent by a RelationCatalog (Catalog: what the reader does).
// Rates are in items_per_second (transactions); the figures are CPU.
//
// Run: build/bench/inbound_decode_bench [--benchmark_filter=Catalog]
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/stream/tpcb_records.h"
#include "engine/apply/inbound_reader.h"
#include "engine/apply/relation_catalog.h"

namespace ferry {
namespace {

constexpr size_t kRecords = 4096;  // made before the clock starts, then cycled
constexpr size_t kGroup = 1000;

std::vector<LogRecord> MakeRecords() {
  bench::TpcbRecordMaker maker({.scale = 5});
  std::vector<LogRecord> records;
  for (size_t i = 0; i < kRecords; ++i) {
    records.push_back({.seq = i + 1, .kind = RecordKind::kTransaction, .payload = maker.Next()});
  }
  return records;
}

void Decode(benchmark::State& state, bool with_catalog) {
  const std::vector<LogRecord> records = MakeRecords();
  RelationCatalog catalog;
  std::vector<InboundRecord> group;
  group.reserve(kGroup);
  size_t next = 0;
  for (auto _ : state) {
    absl::StatusOr<InboundRecord> decoded =
        InboundReader::Decode(records[next], with_catalog ? &catalog : nullptr);
    if (!decoded.ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    group.push_back(*std::move(decoded));
    if (group.size() == kGroup) group.clear();
    next = (next + 1) % records.size();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Plain(benchmark::State& state) { Decode(state, false); }
void BM_Catalog(benchmark::State& state) { Decode(state, true); }
BENCHMARK(BM_Plain);
BENCHMARK(BM_Catalog);

}  // namespace
}  // namespace ferry

BENCHMARK_MAIN();
