#include "cmd/verify_factories.h"

#include <utility>

#include "consistency/postgres/region_verify.h"

namespace ferry {

void AddVerifyFactories(const std::string& dsn, DaemonFactories* factories) {
  factories->verify_peer =
      [dsn](const config::Config&) -> absl::StatusOr<std::unique_ptr<consistency::StandbyPeer>> {
    auto session = consistency::VerifySession::Open(dsn, std::nullopt);
    if (!session.ok()) return session.status();
    return std::unique_ptr<consistency::StandbyPeer>(
        new consistency::LocalStandbyPeer(std::move(*session), dsn));
  };
  factories->verify = [dsn](const config::Config&, consistency::RegionVerifyOptions options,
                            consistency::GrpcStandbyPeer& standby) {
    options.primary_dsn = dsn;
    return consistency::RunRegionVerify(options, standby);
  };
}

}  // namespace ferry
