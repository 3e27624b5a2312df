// The engine's own keys and the rules between them: the key table of Config (key_table.h) and
// the section readers that run it. Internal to engine/config; config.cc calls these in order:
// the top-level values, then every section, then the warnings.
#pragma once

#include <span>

#include "absl/status/status.h"
#include "engine/config/config.h"
#include "engine/config/key_table.h"
#include "engine/config/section.h"

namespace ferry::config {

// Every key of Config, in the order of docs/config.md.
std::span<const Key<Config>> EngineKeys();
// How the dump shows whole sections (TLS off).
std::span<const SectionDump<Config>> EngineSectionDumps();

// Reads the keys of the top level itself (region, data_dir, role, log_level) from `top`.
[[nodiscard]] absl::Status ReadEngineTopLevel(const Section& top, Config* config);
// Reads every other section of the table under `top`, in table order, each followed by its
// rule (distinct listen addresses, peer region, TLS all or nothing, stream sizes).
[[nodiscard]] absl::Status ReadEngineSections(const Section& top, Config* config);
// The warnings that need the whole config (no replication token, no TLS, no admin token off
// loopback), added through `top`.
void WarnAboutEngine(const Section& top, const Config& config);

}  // namespace ferry::config
