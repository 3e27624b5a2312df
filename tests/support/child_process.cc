#include "tests/support/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/support/read_file.h"

extern char** environ;

namespace ferry::testing {
namespace {

// The environment of the child: the parent's, with extra_env entries added or replacing the
// entry of the same name.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra_env) {
  std::vector<std::string> env;
  auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const std::string& extra : extra_env) {
      if (name_of(extra) == name_of(entry)) replaced = true;
    }
    if (!replaced) env.emplace_back(entry);
  }
  for (const std::string& extra : extra_env) env.push_back(extra);
  return env;
}

// argv[0] itself when it holds a '/', else its first executable match in PATH (or argv[0]
// unchanged, so that exec fails with ENOENT).
std::string ResolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return program;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Writes all of `buf` to fd from the child; async-signal-safe.
void WriteAllFromChild(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv, const std::string& output_path,
    const std::vector<std::string>& extra_env) {
  SpawnOptions options;
  options.argv = argv;
  options.output_path = output_path;
  options.extra_env = extra_env;
  return Spawn(options);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("ChildProcess::Spawn: empty argv");
  }
  // Everything the child needs is prepared before fork: after fork only async-signal-safe
  // calls are allowed (the parent may have other threads holding malloc's locks).
  const std::string program = ResolveProgram(options.argv[0]);
  std::vector<std::string> args = options.argv;
  std::vector<std::string> env = ChildEnvironment(options.extra_env);
  std::vector<char*> c_args = CStrings(args);
  std::vector<char*> c_env = CStrings(env);

  int out_fd = -1;
  if (!options.output_path.empty()) {
    out_fd = open(options.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) {
      return absl::InternalError(
          absl::StrCat("open ", options.output_path, ": ", std::strerror(errno)));
    }
  }
  // The child reports a failed chdir/exec through this pipe; a successful exec closes it.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    int err = errno;
    if (out_fd >= 0) close(out_fd);
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(err)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(report[0]);
    close(report[1]);
    if (out_fd >= 0) close(out_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    // Child. A signal mask or ignored signals inherited from the test runner must not leak
    // into the program.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (options.kill_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    if (out_fd >= 0) {
      if (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0) {
        int err = errno;
        WriteAllFromChild(report[1], &err, sizeof(err));
        _exit(127);
      }
    }
    if (!options.working_dir.empty() && chdir(options.working_dir.c_str()) != 0) {
      int err = errno;
      WriteAllFromChild(report[1], &err, sizeof(err));
      _exit(127);
    }
    execve(program.c_str(), c_args.data(), c_env.data());
    int err = errno;
    WriteAllFromChild(report[1], &err, sizeof(err));
    _exit(127);
  }
  // Parent.
  close(report[1]);
  if (out_fd >= 0) close(out_fd);
  int child_errno = 0;
  ssize_t got;
  do {
    got = read(report[0], &child_errno, sizeof(child_errno));
  } while (got < 0 && errno == EINTR);
  close(report[0]);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess(pid));
  if (got > 0) {
    child->Wait();  // reap; the child has exited with 127
    std::string what = absl::StrCat("spawn ", program, ": ", std::strerror(child_errno));
    if (child_errno == ENOENT || child_errno == EACCES || child_errno == ENOEXEC) {
      return absl::NotFoundError(what);
    }
    return absl::InternalError(what);
  }
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_.has_value()) {
    kill(pid_, SIGKILL);
    Wait();
  }
}

void ChildProcess::Kill(int signal) {
  if (pid_ > 0 && !status_.has_value()) kill(pid_, signal);
}

int ChildProcess::Wait() {
  if (status_.has_value()) return *status_;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? status : -1;
  return *status_;
}

std::optional<int> ChildProcess::WaitFor(absl::Duration timeout) {
  if (status_.has_value()) return status_;
  const absl::Time deadline = absl::Now() + timeout;
  // A pidfd becomes readable when the child exits, so no polling is needed; fall back to
  // short WNOHANG steps when the kernel has no pidfd_open.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  while (true) {
    if (!running()) break;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    if (pidfd >= 0) {
      pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
      const int64_t ms =
          std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))));
      poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    } else {
      absl::SleepFor(std::min(left, absl::Milliseconds(5)));
    }
  }
  if (pidfd >= 0) close(pidfd);
  return status_;
}

bool ChildProcess::running() {
  if (status_.has_value()) return false;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return true;
  status_ = r == pid_ ? status : -1;
  return false;
}

absl::StatusOr<RunResult> RunToEnd(const SpawnOptions& options, absl::Duration timeout) {
  if (options.output_path.empty()) {
    return absl::InvalidArgumentError("RunToEnd: an output_path is required");
  }
  const size_t offset = ReadFile(options.output_path).size();
  auto child = ChildProcess::Spawn(options);
  if (!child.ok()) return child.status();
  const std::optional<int> status = (*child)->WaitFor(timeout);
  if (!status.has_value()) {
    (*child)->Kill(SIGKILL);
    (*child)->Wait();
    return absl::DeadlineExceededError(absl::StrCat(options.argv.empty() ? "" : options.argv[0],
                                                    " ran longer than ",
                                                    absl::FormatDuration(timeout)));
  }
  RunResult result;
  if (WIFEXITED(*status)) {
    result.exit_code = WEXITSTATUS(*status);
  } else if (WIFSIGNALED(*status)) {
    result.exit_code = 128 + WTERMSIG(*status);
  }
  result.output = ReadFileFrom(options.output_path, offset);
  return result;
}

std::string BuiltBinary(const std::string& name) {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::filesystem::path dir = ec ? std::filesystem::current_path(ec) : exe.parent_path();
  const std::filesystem::path candidates[] = {dir / ".." / "bin" / name, dir / name,
                                              dir / ".." / "tests" / name};
  for (const auto& candidate : candidates) {
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate.lexically_normal().string();
    }
  }
  return candidates[0].lexically_normal().string();
}

}  // namespace ferry::testing
