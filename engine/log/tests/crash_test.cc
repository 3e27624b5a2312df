// Crash safety: log_crash_writer appends from several threads and reports every acknowledged
// append on a pipe; this test SIGKILLs it once it has reported a seeded random number of
// acknowledged appends (a point tied to its progress, not to wall-clock time), sometimes before
// it has even opened the log, reopens the log in-process and
// checks it against what the writer reported (an oracle kept in this process, independent of the
// log): every acknowledged append is present exactly once at the sequence it was given, each
// writer's appends are in order with no hole, no append is partial, every record decodes, the
// cursor written with each append matches, and the sequence is contiguous. The next round
// continues appending to the same log.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "engine/log/durable_log.h"
#include "engine/log/tests/crash_payload.h"
#include "engine/log/tests/log_test_support.h"

#ifndef FERRY_LOG_CRASH_WRITER
#error "FERRY_LOG_CRASH_WRITER must name the log_crash_writer binary"
#endif

namespace ferry {
namespace {

using log_testing::CrashRecord;
using log_testing::ParseCrashPayload;
using log_testing::ReadAll;
using log_testing::ScratchDir;

constexpr int kRounds = 30;
constexpr int kWriters = 3;

// The writer process and the lines it printed. Reading happens on a thread, so that a full pipe
// never blocks the writer.
class Writer {
 public:
  Writer(const std::string& path, int round, uint64_t seed) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    const std::string round_arg = absl::StrCat(round), writers_arg = absl::StrCat(kWriters),
                      seed_arg = absl::StrCat(seed);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
      execl(FERRY_LOG_CRASH_WRITER, FERRY_LOG_CRASH_WRITER, path.c_str(), round_arg.c_str(),
            writers_arg.c_str(), seed_arg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    if (pid_ < 0) {
      close(fds[0]);
      return;
    }
    reader_ = std::thread([this, fd = fds[0]] { ReadLines(fd); });
  }
  ~Writer() {
    Kill();
    if (reader_.joinable()) reader_.join();
  }

  bool started() const { return pid_ > 0; }

  // Waits until the writer reported "ready" (or exited, or the deadline passed).
  bool WaitReady(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto ready_or_eof = [this] { return ready_ || eof_; };
    mu_.AwaitWithDeadline(absl::Condition(&ready_or_eof), deadline);
    return ready_;
  }

  // Waits until the writer reported `acks` acknowledged appends (or exited, or the deadline
  // passed). Returns whether it did.
  bool WaitAcks(size_t acks, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto enough_or_eof = [this, acks] { return acks_ >= acks || eof_; };
    mu_.AwaitWithDeadline(absl::Condition(&enough_or_eof), deadline);
    return acks_ >= acks;
  }

  // SIGKILLs and reaps the writer, then collects everything it printed. Returns the wait status.
  int Kill() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGKILL);
    while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (reader_.joinable()) reader_.join();  // EOF: the only write end died with the child
    return status_;
  }

  // REQUIRES: Kill() returned.
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  void ReadLines(int fd) {
    std::string buffer;
    char chunk[4096];
    for (;;) {
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      size_t newline;
      while ((newline = buffer.find('\n')) != std::string::npos) {
        std::string line = buffer.substr(0, newline);
        buffer.erase(0, newline + 1);
        absl::MutexLock lock(&mu_);
        if (line.rfind("ready", 0) == 0) ready_ = true;
        if (line.rfind("ack", 0) == 0) ++acks_;
        lines_.push_back(std::move(line));
      }
    }
    close(fd);
    absl::MutexLock lock(&mu_);
    eof_ = true;  // a torn last line (killed mid-write cannot happen: one write(2) a line)
  }

  pid_t pid_ = -1;
  int status_ = 0;
  std::thread reader_;
  absl::Mutex mu_;
  std::vector<std::string> lines_;  // written by the reader thread, read after it joined
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  size_t acks_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Ack {
  uint64_t first_seq;
  int count;
};
using AppendKey = std::tuple<int, int, uint64_t>;  // round, writer, counter

TEST(CrashTest, SigkillAtRandomPointsOfProgressLosesNoAcknowledgedAppend) {
  const uint64_t seed =
      log_testing::TestSeed("SigkillAtRandomPointsOfProgressLosesNoAcknowledgedAppend");
  std::mt19937_64 rng(seed);
  ScratchDir dir;
  const std::string path = dir.path() + "/log";
  std::map<AppendKey, Ack> acked;  // the oracle: everything any writer was told is durable
  size_t killed_before_ready = 0, total_records = 0;

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    {
      Writer writer(path, round, rng());
      ASSERT_TRUE(writer.started()) << "fork failed";
      // Sometimes kill it at once, while it is still opening the log; otherwise after a seeded
      // random number of acknowledged appends (the other threads keep appending meanwhile).
      const bool early = rng() % 5 == 0;
      if (!early) {
        ASSERT_TRUE(writer.WaitReady(absl::Now() + absl::Seconds(30)))
            << "log_crash_writer never opened the log";
        const size_t acks = rng() % 400;
        ASSERT_TRUE(writer.WaitAcks(acks, absl::Now() + absl::Seconds(60)))
            << "log_crash_writer stopped before " << acks << " acknowledged appends";
      }
      const int status = writer.Kill();
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "log_crash_writer exited by itself with status " << status;
      bool saw_ready = false;
      for (const std::string& line : writer.lines()) {
        std::vector<std::string> f = absl::StrSplit(line, ' ');
        if (f[0] == "ready") {
          saw_ready = true;
          continue;
        }
        ASSERT_EQ(f.size(), 6u) << line;
        ASSERT_EQ(f[0], "ack") << line;
        int r, w, count;
        uint64_t counter, first;
        ASSERT_TRUE(absl::SimpleAtoi(f[1], &r) && absl::SimpleAtoi(f[2], &w) &&
                    absl::SimpleAtoi(f[3], &counter) && absl::SimpleAtoi(f[4], &first) &&
                    absl::SimpleAtoi(f[5], &count))
            << line;
        ASSERT_TRUE(acked.emplace(AppendKey{r, w, counter}, Ack{first, count}).second) << line;
      }
      if (!saw_ready) ++killed_before_ready;
    }

    // Reopen in this process and check the log against the oracle.
    auto log = DurableLog::Open({.path = path});
    if (!log.ok() && log.status().code() == absl::StatusCode::kNotFound) continue;  // never created
    ASSERT_TRUE(log.ok()) << log.status();
    auto records = ReadAll(**log);
    ASSERT_TRUE(records.ok()) << records.status();  // decodes, no gap, no checksum failure
    ASSERT_EQ((*log)->first_seq(), 1u);
    ASSERT_EQ((*log)->next_seq(), records->size() + 1);
    total_records = records->size();

    std::map<AppendKey, uint64_t> present;                 // append -> first seq
    std::map<std::pair<int, int>, uint64_t> next_counter;  // (round, writer) -> counter expected
    for (size_t i = 0; i < records->size();) {
      const LogRecord& head = (*records)[i];
      ASSERT_EQ(head.seq, i + 1);
      auto rec = ParseCrashPayload(head.payload);
      ASSERT_TRUE(rec.has_value()) << "record " << head.seq << " is not one a writer wrote";
      ASSERT_EQ(rec->index, 0) << "record " << head.seq << " starts in the middle of an append";
      for (int k = 0; k < rec->count; ++k, ++i) {
        ASSERT_LT(i, records->size()) << "the last append is partial";
        auto part = ParseCrashPayload((*records)[i].payload);
        ASSERT_TRUE(part.has_value() && part->round == rec->round && part->writer == rec->writer &&
                    part->counter == rec->counter && part->index == k && part->count == rec->count)
            << "append at " << head.seq << " is partial or interleaved at " << (*records)[i].seq;
      }
      const AppendKey key{rec->round, rec->writer, rec->counter};
      ASSERT_TRUE(present.emplace(key, head.seq).second) << "an append is in the log twice";
      uint64_t& expect = next_counter[{rec->round, rec->writer}];
      ASSERT_EQ(rec->counter, expect) << "writer " << rec->writer << " of round " << rec->round
                                      << " has a hole or is out of order at " << head.seq;
      ++expect;
    }
    for (const auto& [key, ack] : acked) {
      auto it = present.find(key);
      ASSERT_NE(it, present.end())
          << "acknowledged append (round " << std::get<0>(key) << ", writer " << std::get<1>(key)
          << ", counter " << std::get<2>(key) << ") at seq " << ack.first_seq << " was lost";
      ASSERT_EQ(it->second, ack.first_seq) << "acknowledged append moved";
    }
    for (const auto& [round_writer, next] : next_counter) {
      auto cursor =
          (*log)->GetCursor(absl::StrCat("crash/", round_writer.first, "/", round_writer.second));
      ASSERT_TRUE(cursor.ok()) << cursor.status();
      ASSERT_EQ(*cursor, std::optional<uint64_t>(next - 1)) << "cursor not atomic with records";
    }
  }
  std::cout << "crash test: " << kRounds << " kills (" << killed_before_ready
            << " before the log was open), " << acked.size() << " acknowledged appends, "
            << total_records << " records in the log\n";
  EXPECT_GT(acked.size(), 0u);
}

}  // namespace
}  // namespace ferry
