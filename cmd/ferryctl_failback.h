// `ferryctl rejoin` and `ferryctl quarantine` (docs/operations.md, "Rejoin" and "Quarantine"):
// the failback of a former primary and the operator's decisions on what it kept. Each prints a
// readable result (or --json) on stdout and returns the exit code: 0 done, 1 any error (message
// on stderr).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/admin.grpc.pb.h"

namespace ferry::ctl {

struct QuarantineArgs {
  std::string verb;  // list, show, reapply, discard
  int64_t id = 0;
  std::string note;
  std::string status;
  uint32_t limit = 0;
};

// Parses the operands after "quarantine" into `args`; returns an error message ("" when fine).
std::string ParseQuarantine(const std::vector<std::string>& operands, QuarantineArgs* args);

int RunRejoin(v1::Admin::Stub& stub, const std::string& token, double timeout_s, bool json);
int RunQuarantine(v1::Admin::Stub& stub, const std::string& admin, const std::string& token,
                  double timeout_s, bool json, const QuarantineArgs& args);

}  // namespace ferry::ctl
