// Named kill points: steps at which a crash test can SIGKILL this process exactly, instead of
// at a moment picked by wall-clock time (which lands nowhere on a fast machine).
//
// A process started with FERRY_KILL_POINT=NAME kills itself with SIGKILL the first time it
// passes KillPoint("NAME"); FERRY_KILL_POINT=NAME@N the N-th time. Before dying it writes
// "ferry: kill point NAME@N reached" to stderr (one write(2)), so a test can tell this death from
// any other. The variable is read once, on the first KillPoint call (a function-local static);
// after that a call costs the static's initialization check and, unarmed, one comparison. Points
// are always compiled in: the crash tests run release binaries.
//
// Points are named "component.step" (e.g. "apply.group_committed"); docs/operations.md lists
// them. A point must be placed where dying is a plausible crash: never while holding a lock that
// another process depends on (there is none such across processes in Ferry).
//
// Pause points are the same for a test that must act at the step without the process dying (crash
// the database under it, then let it go on): a process started with FERRY_PAUSE_POINT=NAME writes
// "ferry: pause point NAME@N reached" (N counts its passes) to stderr every time it passes
// PausePoint("NAME"), then stops itself with SIGSTOP, every thread at once; the test resumes it
// with SIGCONT. A pause point must not sit inside an open database transaction: its locks would
// be held while the process is stopped. ferryd logs an error at start when either variable is
// set.
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

// Stops the process with SIGSTOP when FERRY_PAUSE_POINT names this point (see above), on every
// pass; otherwise returns at once. Thread-safe.
void PausePoint(std::string_view name);

}  // namespace ferry
