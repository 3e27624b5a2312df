// FreePort: a loopback TCP port that was free a moment ago (bound, then released), for a test
// that must name a listener's port before the listener exists (two regions that each name the
// other's). Chosen at random below the kernel's range for outgoing connections
// (ip_local_port_range), so that no connection takes it while its listener restarts (one the
// kernel picks when that range leaves no room below it). Another test may still take it
// meanwhile; tests retry or fail loudly then.
#pragma once

namespace ferry::testing {

// Never the same port twice in one process. Returns 0 when no port could be had.
int FreePort();

}  // namespace ferry::testing
