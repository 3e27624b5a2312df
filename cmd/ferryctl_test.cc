// ferryctl's command line: a usage error exits 1 with the reason on stderr (2 is reserved for
// `verify`: the regions differ), --help exits 0, and an unreachable ferryd exits 1.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/support/child_process.h"
#include "tests/support/free_port.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::BuiltBinary;
using ::ferry::testing::ChildProcess;

struct CtlRun {
  int exit_code = -1;
  std::string output;
};

CtlRun Ctl(const std::vector<std::string>& args) {
  ::ferry::testing::TempDir dir("ferry-ctl-test");
  std::vector<std::string> argv = {BuiltBinary("ferryctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::Spawn(argv, dir.File("out"), {"FERRY_ADMIN=", "FERRY_ADMIN_TOKEN="});
  EXPECT_TRUE(child.ok()) << child.status();
  if (!child.ok()) return {};
  const int status = (*child)->Wait();
  std::stringstream out;
  out << std::ifstream(dir.File("out")).rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out.str()};
}

TEST(FerryctlTest, UsageErrorsExitOneWithTheReason) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "no command given"},
      {{"--admin", "127.0.0.1:1", "fly"}, "unknown command 'fly'"},
      {{"--admin", "127.0.0.1:1", "--bogus", "status"}, "unknown option --bogus"},
      {{"status"}, "--admin HOST:PORT is required"},
      {{"--admin", "127.0.0.1:1", "--timeout", "-3", "status"}, "--timeout needs"},
      {{"--admin", "127.0.0.1:1", "--token-file", "/nonexistent/token", "status"},
       "cannot read token file"},
      {{"--admin", "127.0.0.1:1", "pause", "resume"}, "one command at a time"},
      {{"--admin", "127.0.0.1:1", "reseed"}, "reseed takes one LOG_ID"},
      {{"--admin", "127.0.0.1:1", "reseed", "a", "b"}, "reseed takes one LOG_ID"},
      {{"--admin", "127.0.0.1:1", "resnapshot"}, "resnapshot takes one TABLE"},
      {{"--admin", "127.0.0.1:1", "resnapshot", "public.a", "public.b"},
       "resnapshot takes one TABLE"},
      {{"--admin", "127.0.0.1:1", "verify", "--table", "nodot"}, "--table needs SCHEMA.TABLE"},
      {{"--admin", "127.0.0.1:1", "verify", "--table"}, "--table needs SCHEMA.TABLE"},
      {{"--admin", "127.0.0.1:1", "verify", "--max-keys", "0"}, "--max-keys needs"},
      {{"--admin", "127.0.0.1:1", "verify", "--rate", "x"}, "--rate needs"},
      {{"--admin", "127.0.0.1:1", "status", "--repair"}, "are options of verify"},
      {{"--admin", "127.0.0.1:1", "verify", "public.t"}, "one command at a time"},
      {{"--admin", "127.0.0.1:1", "tables", "public.t"}, "one command at a time"},
      {{"--admin", "127.0.0.1:1", "tables", "--repair"}, "are options of verify"},
      {{"--admin", "127.0.0.1:1", "tables", "--force"}, "--force is for promote only"},
      {{"--admin", "127.0.0.1:1", "rejoin", "west"}, "one command at a time"},
      {{"--admin", "127.0.0.1:1", "quarantine"}, "quarantine needs list, show ID"},
      {{"--admin", "127.0.0.1:1", "quarantine", "drop", "1"}, "unknown quarantine verb 'drop'"},
      {{"--admin", "127.0.0.1:1", "quarantine", "show"}, "quarantine show takes one ID"},
      {{"--admin", "127.0.0.1:1", "quarantine", "list", "4"}, "quarantine list takes no operand"},
      {{"--admin", "127.0.0.1:1", "quarantine", "reapply", "1x"}, "'1x' is not an entry id"},
      {{"--admin", "127.0.0.1:1", "quarantine", "discard", "0"}, "'0' is not an entry id"},
      {{"--admin", "127.0.0.1:1", "quarantine", "reapply", "99999999999999999999"},
       "is not an entry id"},
      {{"--admin", "127.0.0.1:1", "quarantine", "list", "--limit", "0"}, "--limit needs"},
      {{"--admin", "127.0.0.1:1", "quarantine", "list", "--note", "x"},
       "--note is for reapply and discard"},
      {{"--admin", "127.0.0.1:1", "quarantine", "show", "3", "--status", "pending"},
       "--status and --limit are for list"},
      {{"--admin", "127.0.0.1:1", "status", "--note", "x"}, "are options of quarantine"},
  };
  for (const auto& [args, reason] : cases) {
    const CtlRun run = Ctl(args);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_NE(run.output.find(reason), std::string::npos) << run.output;
  }
}

TEST(FerryctlTest, VerifyOfAnUnreachableFerrydExitsOne) {
  const int port = ::ferry::testing::FreePort();
  ASSERT_NE(port, 0);
  const CtlRun run =
      Ctl({"--admin", "127.0.0.1:" + std::to_string(port), "--timeout", "2", "verify"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("verify failed"), std::string::npos) << run.output;
}

TEST(FerryctlTest, HelpExitsZero) {
  const CtlRun run = Ctl({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_NE(run.output.find("usage: ferryctl"), std::string::npos);
}

TEST(FerryctlTest, UnreachableFerrydExitsOne) {
  const int port = ::ferry::testing::FreePort();
  ASSERT_NE(port, 0);
  const CtlRun run =
      Ctl({"--admin", "127.0.0.1:" + std::to_string(port), "--timeout", "2", "--json", "pause"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("ferryd admin at 127.0.0.1:"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace ferry
