// The `postgres:` section of ferryd's config: which database the Postgres connector reads and
// writes, and what it replicates. The connector owns these keys, their checks, their defaults
// and their docs (docs/config.md, "postgres"); the engine's loader knows none of them.
//
// Design. The engine's config loader keeps connector sections opaque: a program that links a
// connector declares the connector's section when it loads the config, and the loader hands
// the connector its own map, bounded by the same hostile-input budgets, through the same
// engine/config/section.h getters as the engine's sections (engine/config/connector_section.h
// says why: one pass, one strict schema, the engine's messages with key, line and column).
// ferryd is the only program that links every connector, so only ferryd declares this section;
// `ferryd --config` and `--check-config` fail at start on any problem in it, as on any other.
//
// Example (ferryd):
//   ferry::pg::PostgresConfigSection postgres;
//   FERRY_ASSIGN_OR_RETURN(config::Config config,
//                          config::LoadConfigFile(path, {.connectors = {&postgres}}));
//   const ferry::pg::PostgresConfig& pg = postgres.config();
//   source_options.dsn = pg.ConnectionString();  // with the password, never logged
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/config/connector_section.h"
#include "engine/config/secret.h"
#include "engine/config/section.h"

namespace ferry::pg {

// What the source does about a table of its publication without a usable replica identity (no
// primary key and REPLICA IDENTITY DEFAULT, or NOTHING, or an identity index that is gone):
// Postgres refuses the application's own UPDATE and DELETE on such a table once a publication
// publishes them ("cannot update table ... because it does not have a replica identity").
enum class KeylessTablePolicy {
  // Sets REPLICA IDENTITY FULL on a keyless table with the default identity (logged); a table
  // whose identity was set to NOTHING or to a dropped index is left as the operator set it and
  // reported like under kRefuse.
  kReplicaIdentityFull,
  // Changes nothing: names the table in status and in the log until someone fixes it.
  kRefuse,
};
std::string_view KeylessTablePolicyName(KeylessTablePolicy policy);

struct PostgresConfig {
  // libpq connection string, keyword form ("host=... dbname=...") or URI ("postgresql://...").
  // Required. Must not contain a password: use password_file / password_env.
  std::string dsn;
  // The password for `dsn`, from postgres.password_file or postgres.password_env (at most one).
  // Unset: libpq's own means apply (~/.pgpass, PGPASSFILE, trust/peer auth).
  config::Secret password;
  // Publication to stream from; created FOR ALL TABLES (or FOR TABLE `tables`) if missing.
  // Lower-case unquoted Postgres identifier, at most 63 bytes.
  std::string publication = "ferry";
  // Logical replication slot; created if missing. [a-z0-9_]{1,63}. Default DefaultSlotName of
  // the region.
  std::string slot;
  // Tables of the publication when it is created, as "schema.table" (lower-case unquoted
  // identifiers), no duplicates. Empty: FOR ALL TABLES.
  std::vector<std::string> tables;
  // Copy the existing rows (initial snapshot) when the slot is created.
  bool snapshot = true;
  // postgres.keyless_tables: replica_identity_full (default) or refuse.
  KeylessTablePolicy keyless_tables = KeylessTablePolicy::kReplicaIdentityFull;
  // postgres.commit_delay_us: how long the capture may wait for more transactions to share one
  // durable append when the previous one was moments ago (0: never waits).
  int commit_delay_us = 8000;
  // postgres.commit_siblings: it waits only when the recent rate says at least this many
  // transactions arrive within the delay (0: whatever the rate).
  int commit_siblings = 4;

  // `dsn` with the password appended as a quoted keyword value (` password='...'`); a URI `dsn`
  // comes back in key=value form first (so that callers may append keys too). Holds the
  // secret: never log it.
  std::string ConnectionString() const;
  // The section as YAML-like text, the password masked. Safe to log.
  std::string DebugString() const;
};

// "ferry_<region>" with '-' turned into '_' (a slot name allows [a-z0-9_] only).
std::string DefaultSlotName(absl::string_view region);

// The `postgres:` section, for config::LoadOptions::connectors. Holds what it read.
class PostgresConfigSection final : public config::ConnectorSection {
 public:
  absl::string_view name() const override { return "postgres"; }
  std::vector<std::string> keys() const override;
  [[nodiscard]] absl::Status Read(const config::Section& section,
                                  const config::ConnectorContext& context) override;

  // What the last successful Read produced.
  const PostgresConfig& config() const { return config_; }
  // Whether the file has the section with at least one key. Without it the region has no
  // database (a bucket-only region, docs/objects.md): Read succeeds and config() is the
  // defaults; the program decides whether the config replicates anything at all.
  bool present() const { return present_; }

 private:
  PostgresConfig config_;
  bool present_ = false;
};

}  // namespace ferry::pg
