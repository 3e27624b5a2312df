// `ferryctl status` in its readable form (the --json form is the reply itself): the region,
// the database's capture or apply, the bucket beside it, the tables. And the byte counts the
// other verbs print.
#pragma once

#include <cstdint>
#include <string>

#include "proto/admin.pb.h"

namespace ferry::ctl {

// "812 B", "3.1 MiB", "5.0 GiB".
std::string HumanBytes(uint64_t bytes);

// Prints the status reply for people, on stdout.
void PrintStatus(const v1::StatusReply& r);

}  // namespace ferry::ctl
