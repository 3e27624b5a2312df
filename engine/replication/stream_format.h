// Constants of the replication stream (proto/replication.md). The cursor and state names the
// shipper and receiver keep in their durable logs are in engine/log/log_names.h. The prose spec
// and this header change together.
#pragma once

#include <cstdint>

#include "engine/log/log_names.h"

namespace ferry::replication {

// Hello.protocol_version. A receiver refuses a shipper with a different version.
inline constexpr uint32_t kProtocolVersion = 1;

}  // namespace ferry::replication
