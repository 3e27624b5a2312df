// apply_crash_helper: runs the ApplyScheduler over an inbound log into a Postgres target until
// a given seq is applied, then exits 0. The crash test kills it with SIGKILL at random moments.
//
// Usage: apply_crash_helper LOG_DIR DSN REGION WORKERS UNTIL_SEQ
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "engine/apply/apply_scheduler.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s LOG_DIR DSN REGION WORKERS UNTIL_SEQ\n", argv[0]);
    return 2;
  }
  int workers = 0;
  uint64_t until = 0;
  if (!absl::SimpleAtoi(argv[4], &workers) || !absl::SimpleAtoi(argv[5], &until)) return 2;
  auto log = ferry::DurableLog::Open({.path = argv[1]});
  if (!log.ok()) {
    std::fprintf(stderr, "log: %s\n", log.status().ToString().c_str());
    return 1;
  }
  auto sink = ferry::PostgresSink::Open({.dsn = argv[2], .source_region = argv[3]});
  if (!sink.ok()) return 1;
  auto apply = ferry::ApplyScheduler::Start({.workers = workers,
                                             .max_group_transactions = 25,
                                             .backoff_initial = absl::Milliseconds(20),
                                             .backoff_max = absl::Milliseconds(200)},
                                            log->get(), sink->get());
  if (!apply.ok()) return 1;
  while (!(*apply)->WaitForApplied(until, absl::Seconds(1))) {
    ferry::ApplyStatus s = (*apply)->status();
    if (s.failed) {
      std::fprintf(stderr, "apply failed: %s\n", s.last_error.c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "applied %llu\n", static_cast<unsigned long long>(until));
  return 0;
}
