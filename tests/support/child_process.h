// ChildProcess: runs a program as a child (fork + exec) for crash tests and end-to-end tests,
// and kills it with the signal of the test's choosing. Output goes to a file the test names,
// so a failed test can show it.
//
// Example:
//   auto child = ChildProcess::Spawn({"build/bin/ferryd", "--config", path}, dir + "/ferryd.log");
//   ... (*child)->Kill(SIGKILL); int status = (*child)->Wait();
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::testing {

// Everything Spawn needs; the positional Spawn overload fills the first three fields.
struct SpawnOptions {
  // argv[0] is the program: a path, or a bare name looked up in PATH.
  std::vector<std::string> argv;
  // stdout and stderr are appended to this file (created 0644 when missing); empty: inherited.
  std::string output_path;
  // "NAME=value" entries added to (or replacing in) the parent's environment.
  std::vector<std::string> extra_env;
  // Working directory of the child; empty: the parent's.
  std::string working_dir;
  // When true the child gets SIGKILL if the spawning *thread* exits (PR_SET_PDEATHSIG), so a
  // crashed test leaves no stray daemon behind. Spawn from the test's main thread when set.
  bool kill_with_parent = false;
};

// Thread safety: one thread at a time may use a ChildProcess.
class ChildProcess {
 public:
  // Starts argv[0] (a path) with the arguments; stdout and stderr are appended to output_path
  // (or inherited when empty). extra_env holds "NAME=value" entries added to the environment.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::vector<std::string>& argv, const std::string& output_path = "",
      const std::vector<std::string>& extra_env = {});
  // Errors: kNotFound when the program does not exist or is not executable (reported by the
  // child's failed exec), kInternal when fork/pipe/open fail. Never leaves a zombie behind.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const SpawnOptions& options);
  // Kills with SIGKILL and reaps the child when it is still running.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Sends the signal (no-op once the child has been reaped).
  void Kill(int signal);
  // Waits for the child to exit; returns the raw wait status (decode with WIFEXITED,
  // WEXITSTATUS, WIFSIGNALED, WTERMSIG). Idempotent. Returns -1 if the child was reaped by
  // someone else (e.g. a SIGCHLD handler set to SIG_IGN).
  int Wait();
  // Waits at most `timeout`; nullopt when the child is still running then.
  std::optional<int> WaitFor(absl::Duration timeout);
  // False once the child has exited (and reaps it then).
  bool running();

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// How a program run to its end ended, and what it printed meanwhile.
struct RunResult {
  int exit_code = -1;  // its exit code, or 128 + the signal that ended it
  std::string output;  // what it appended to SpawnOptions::output_path during this run
};

// Runs the program to its end. Output goes to options.output_path (required: earlier runs' output
// there is kept and not returned). kDeadlineExceeded when it still runs after `timeout` (it is
// killed with SIGKILL then); Spawn's errors otherwise. A non-zero exit is a result, not an error.
//   auto r = RunToEnd({.argv = {"/bin/ls", dir}, .output_path = dir + "/ls.out"});
[[nodiscard]] absl::StatusOr<RunResult> RunToEnd(const SpawnOptions& options,
                                                 absl::Duration timeout = absl::InfiniteDuration());

// Path of a binary built by this project (build/bin/NAME or build/tests/NAME), found relative to
// the running test executable: the first existing executable of EXE_DIR/../bin/NAME,
// EXE_DIR/NAME, EXE_DIR/../tests/NAME. When none exists, returns EXE_DIR/../bin/NAME, so that
// Spawn fails with kNotFound naming the expected place.
std::string BuiltBinary(const std::string& name);

}  // namespace ferry::testing
