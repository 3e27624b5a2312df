#include "tests/support/child_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/support/read_file.h"
#include "tests/support/temp_dir.h"

namespace ferry::testing {
namespace {

TEST(ChildProcessTest, ExitCodeAndOutputAreCaptured) {
  TempDir dir;
  const std::string out = dir.File("out.log");
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, out);
  ASSERT_TRUE(child.ok()) << child.status();
  const int status = (*child)->Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ((*child)->Wait(), status);  // idempotent
  EXPECT_FALSE((*child)->running());
  EXPECT_EQ(ReadFile(out), "out\nerr\n");
}

TEST(ChildProcessTest, OutputFileIsAppendedTo) {
  TempDir dir;
  const std::string out = dir.File("out.log");
  for (const char* word : {"first", "second"}) {
    auto child = ChildProcess::Spawn({"/bin/echo", word}, out);
    ASSERT_TRUE(child.ok()) << child.status();
    EXPECT_EQ((*child)->Wait(), 0);
  }
  EXPECT_EQ(ReadFile(out), "first\nsecond\n");
}

TEST(ChildProcessTest, SigkillIsReflectedInStatus) {
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "exec sleep 1000"});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE((*child)->running());
  (*child)->Kill(SIGKILL);
  const int status = (*child)->Wait();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_FALSE((*child)->running());
  (*child)->Kill(SIGKILL);  // no-op once reaped
}

TEST(ChildProcessTest, WaitForReturnsNothingWhileRunningAndStatusAfterExit) {
  auto child = ChildProcess::Spawn({"sleep", "1000"});  // found through PATH
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_FALSE((*child)->WaitFor(absl::Milliseconds(50)).has_value());
  (*child)->Kill(SIGTERM);
  const std::optional<int> status = (*child)->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
}

TEST(ChildProcessTest, ExtraEnvironmentAndWorkingDirectoryReachTheChild) {
  TempDir dir;
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c", "echo \"$FERRY_TEST_VALUE $HOME\"; pwd"};
  options.output_path = dir.File("out.log");
  options.extra_env = {"FERRY_TEST_VALUE=42", "HOME=/nowhere"};
  options.working_dir = dir.path();
  auto child = ChildProcess::Spawn(options);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Wait(), 0);
  EXPECT_EQ(ReadFile(options.output_path), "42 /nowhere\n" + dir.path() + "\n");
}

TEST(ChildProcessTest, MissingProgramIsNotFound) {
  auto child = ChildProcess::Spawn({"/nonexistent/ferry-program"});
  EXPECT_EQ(child.status().code(), absl::StatusCode::kNotFound) << child.status();
}

TEST(ChildProcessTest, DestructorKillsAndReapsARunningChild) {
  pid_t pid;
  {
    auto child = ChildProcess::Spawn({"/bin/sleep", "1000"});
    ASSERT_TRUE(child.ok()) << child.status();
    pid = (*child)->pid();
  }
  // Reaped: the pid no longer names a process (not even a zombie) of ours.
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

// RunToEnd returns this run's output only (the file keeps earlier runs') and the exit code; a
// signal is 128 + its number; a program still running at the timeout is killed and reported.
TEST(ChildProcessTest, RunToEndReturnsThisRunsOutputAndHowItEnded) {
  TempDir dir;
  const std::string out = dir.File("run.out");
  auto first = RunToEnd({.argv = {"/bin/sh", "-c", "echo one; exit 0"}, .output_path = out});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->exit_code, 0);
  EXPECT_EQ(first->output, "one\n");
  auto second = RunToEnd({.argv = {"/bin/sh", "-c", "echo two >&2; exit 7"}, .output_path = out});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->exit_code, 7);
  EXPECT_EQ(second->output, "two\n");
  EXPECT_EQ(ReadFile(out), "one\ntwo\n");
  auto killed = RunToEnd({.argv = {"/bin/sh", "-c", "kill -TERM $$"}, .output_path = out});
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->exit_code, 128 + SIGTERM);
}

// A program still running at the timeout: kDeadlineExceeded, and the call returns then (a
// RunToEnd that waited for the program would hang here for 1,000 s).
TEST(ChildProcessTest, RunToEndStopsAtItsTimeout) {
  TempDir dir;
  auto run = RunToEnd({.argv = {"/bin/sleep", "1000"}, .output_path = dir.File("run.out")},
                      absl::Milliseconds(300));
  EXPECT_EQ(run.status().code(), absl::StatusCode::kDeadlineExceeded) << run.status();
}

// Tail (read_file.h), for the error messages that quote a program's output: short text whole,
// long text its last bytes after "...".
TEST(ChildProcessTest, TailKeepsTheEndAndSaysWhenItCut) {
  EXPECT_EQ(Tail("", 4), "");
  EXPECT_EQ(Tail("abcd", 4), "abcd");
  EXPECT_EQ(Tail("abcdef", 4), "...cdef");
  EXPECT_EQ(Tail(std::string(3000, 'x') + "end").size(), 3u + 2000u);
}

TEST(ChildProcessTest, RunToEndNeedsAnOutputFileAndAProgram) {
  TempDir dir;
  EXPECT_EQ(RunToEnd({.argv = {"/bin/true"}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunToEnd({.argv = {"/nonexistent/ferry-program"}, .output_path = dir.File("o")})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST(ChildProcessTest, BuiltBinaryFindsThisTestExecutable) {
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  EXPECT_EQ(std::filesystem::canonical(BuiltBinary("child_process_test")).string(), self);
  EXPECT_FALSE(std::filesystem::exists(BuiltBinary("no-such-ferry-binary")));
}

}  // namespace
}  // namespace ferry::testing
