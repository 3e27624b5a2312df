// The verifier's factories for ferryd (engine/daemon/daemon.h DaemonFactories::verify_peer and
// ::verify): the Postgres side of a verify (consistency/postgres), on the region's database.
#pragma once

#include <string>

#include "engine/daemon/daemon.h"

namespace ferry {

void AddVerifyFactories(const std::string& dsn, DaemonFactories* factories);

}  // namespace ferry
