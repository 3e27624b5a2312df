// `ferryctl verify` (docs/verify.md): streams the primary's Verify call, prints progress on
// stderr and the result on stdout (readable, or --json), and maps it to the exit code: 0 equal,
// 2 different, 1 error. Ctrl-C cancels the call (the verify stops on the primary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/admin.grpc.pb.h"

namespace ferry::ctl {

struct VerifyArgs {
  std::string admin;
  std::string token;
  double timeout_s = 3600;
  bool json = false;
  std::vector<std::string> tables;
  bool bucket = false;  // compare the buckets (VerifyRequest.bucket)
  uint32_t max_keys = 0;
  bool repair = false;
  uint64_t max_rows_per_second = 0;
};

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts later: call it
// before the first gRPC channel, so that no gRPC thread takes Ctrl-C with the default action
// (killing ferryctl before it cancels the verify); RunVerify's own thread then takes them.
void BlockInterrupts();

int RunVerify(v1::Admin::Stub& stub, const VerifyArgs& args);

}  // namespace ferry::ctl
