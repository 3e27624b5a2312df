// Named kill points: steps at which a crash test can SIGKILL this process exactly, instead of
// at a moment picked by wall-clock time (which lands nowhere on a fast machine).
//
// A process started with FERRY_KILL_POINT=NAME kills itself with SIGKILL the first time it
// passes KillPoint("NAME"); FERRY_KILL_POINT=NAME@N the N-th time. Before dying it writes
// "ferry: kill point NAME@N reached" to stderr (one write(2)), so a test can tell this death from
// any other. The variable is read once, on the first KillPoint call; without it a call costs one
// relaxed atomic load. Points are always compiled in: the crash tests run release binaries.
//
// Points are named "component.step" (e.g. "apply.group_committed"); docs/operations.md lists
// them. A point must be placed where dying is a plausible crash: never while holding a lock that
// another process depends on (there is none such across processes in Ferry).
//
// Example:
//   // in the program, at the step:
//   KillPoint("receiver.appended");  // after the inbound append is durable, before the ack
//   // in the crash test: SpawnOptions::extra_env = {"FERRY_KILL_POINT=receiver.appended@3"}
#pragma once

#include <string_view>

namespace ferry {

// Kills the process with SIGKILL when the configured point is reached (see above); otherwise
// returns at once. Thread-safe.
void KillPoint(std::string_view name);

}  // namespace ferry
