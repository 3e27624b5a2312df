// The object path's factories for ferryd (engine/daemon/daemon.h, DaemonFactories): a
// BucketSource while this region is primary, a BucketEventSink while it is standby, both from
// the `objects:` section. ferryd is the only caller.
#pragma once

#include "connectors/s3/objects_config.h"
#include "engine/daemon/daemon.h"

namespace ferry::s3 {

void AddObjectFactories(const ObjectsConfig& objects, DaemonFactories* factories);

}  // namespace ferry::s3
