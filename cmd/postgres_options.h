// What ferryd gives the Postgres connector: the capture's options (PostgresSource) and apply's
// (PostgresSink), from the `postgres:` section and the rest of the config (docs/config.md).
// ferryd's factories build the connector from these; postgres_options_test checks that every
// key gets through.
#pragma once

#include "connectors/postgres/common/postgres_config.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "connectors/postgres/source/postgres_source.h"
#include "engine/config/config.h"
#include "engine/daemon/daemon.h"

namespace ferry {

pg::PostgresSourceOptions CaptureOptions(const pg::PostgresConfig& pg, const config::Config& c);

PostgresSinkOptions ApplyOptions(const pg::PostgresConfig& pg, const config::Config& c,
                                 const PipelineContext& context);

}  // namespace ferry
