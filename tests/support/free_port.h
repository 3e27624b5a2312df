// FreePort: a loopback TCP port that was free a moment ago (bound, then released), for a test
// that must name a listener's port before the listener exists (two regions that each name the
// other's). Chosen at random below the kernel's range for outgoing connections
// (ip_local_port_range), so that no connection takes it while its listener restarts (one the
// kernel picks when that range leaves no room below it). Reserved for the process's life in
// /tmp/ferry-test-ports.lock, so that tests running side by side never draw the same port;
// something other than a test may still take it meanwhile, and the test then fails loudly.
#pragma once

namespace ferry::testing {

// Never the same port twice in one process, nor one that another living test process was given.
// Returns 0 when no port could be had.
int FreePort();

}  // namespace ferry::testing
