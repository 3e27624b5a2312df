// log_crash_writer: the victim of crash_test. Appends to a durable log from several threads,
// forever, and reports each acknowledged append on stdout, until it is killed.
//
// Usage: log_crash_writer PATH ROUND WRITERS SEED
//
// Protocol (one line per write(2), each shorter than PIPE_BUF, so lines never interleave):
//   "ready NEXT_SEQ\n"                         once the log is open
//   "ack ROUND WRITER COUNTER FIRST_SEQ N\n"   after Append(...) returned OK for N records
// Record payloads are "ROUND:WRITER:COUNTER:INDEX:N:" followed by a filler derived from those
// numbers (see CrashPayload in crash_test.cc); each append also sets the cursor
// "crash/ROUND/WRITER" to COUNTER in the same atomic write. A writer's counters start at 0 and
// grow by one per append. Exits 2 on any error (the test treats that as a failure).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/log/durable_log.h"
#include "engine/log/tests/crash_payload.h"

namespace {

std::mutex stdout_mu;

void WriteLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(stdout_mu);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) _exit(3);  // the test is gone
    done += static_cast<size_t>(n);
  }
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "log_crash_writer: %s\n", what.c_str());
  std::fflush(stderr);
  _exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int round = 0, writers = 0;
  uint64_t seed = 0;
  if (argc != 5 || !absl::SimpleAtoi(argv[2], &round) || !absl::SimpleAtoi(argv[3], &writers) ||
      !absl::SimpleAtoi(argv[4], &seed) || writers <= 0) {
    Fail("usage: log_crash_writer PATH ROUND WRITERS SEED");
  }
  auto log = ferry::DurableLog::Open({.path = argv[1]});
  if (!log.ok()) Fail(log.status().ToString());
  WriteLine(absl::StrCat("ready ", (*log)->next_seq(), "\n"));

  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed * 31 + static_cast<uint64_t>(w));
      for (uint64_t counter = 0;; ++counter) {
        const int n = 1 + static_cast<int>(rng() % 4);
        ferry::AppendRequest req;
        for (int i = 0; i < n; ++i) {
          req.records.push_back(
              {ferry::RecordKind::kTransaction,
               ferry::log_testing::CrashPayload(round, w, counter, i, n, rng() % 600)});
        }
        req.cursors.push_back({absl::StrCat("crash/", round, "/", w), counter});
        auto seq = (*log)->Append(std::move(req));
        if (!seq.ok()) Fail(seq.status().ToString());
        WriteLine(absl::StrCat("ack ", round, " ", w, " ", counter, " ", *seq, " ", n, "\n"));
      }
    });
  }
  for (auto& t : threads) t.join();  // never: the test kills us
  return 0;
}
