// The scenarios of the side-by-side benchmark, one function each, and their registry: a table
// of name -> function that main() runs in order, those --only names (all without it).
//
// A scenario starts its own fresh pairs of clusters from the run's templates, measures native
// logical replication and Ferry one after the other, and records its figures under the names
// the RESULTS.md section reads (results_section.h). It returns an error when a step fails or a
// wait times out; the run then stops and keeps its work directory.
//
// Adding a scenario: write `absl::Status MyScenario(Context&)` in scenarios.cc (or a file of its
// own), add {"name", MyScenario, {templates}} to Scenarios(), and a row to the section.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/side_by_side/side_by_side.h"
#include "tests/support/pg_cluster.h"

namespace ferry::bench::sbs {

// The cluster templates of the run, made once before the scenarios that need them.
struct Templates {
  std::unique_ptr<ferry::testing::PgCluster> load;    // pgbench scale settings.load_scale
  std::unique_ptr<ferry::testing::PgCluster> schema;  // the same tables, no rows
  std::unique_ptr<ferry::testing::PgCluster> base;    // pgbench scale settings.base_scale
};

// What every scenario gets.
struct Context {
  const Settings& settings;
  const std::string& work_dir;
  Templates& templates;
  Figures& figures;
};

struct Scenario {
  const char* name;
  absl::Status (*run)(Context&);
  // Which templates it copies ("load", "schema", "base").
  std::vector<std::string> templates;
  // Part of a run without --only.
  bool by_default = true;
};

// In the order they run.
const std::vector<Scenario>& Scenarios();

}  // namespace ferry::bench::sbs
