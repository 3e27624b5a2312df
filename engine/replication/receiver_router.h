// ReceiverRouter: the Replication service of a daemon's replication listener, which listens in
// both roles (the peer's control calls arrive there too, engine/daemon/region_control.h). While
// the region is a standby a Receiver is attached and every stream goes to it; otherwise a
// stream is refused with FAILED_PRECONDITION and the reason the daemon gives.
//
// Example:
//   ReceiverRouter router([] { return "region east is primary"; });
//   router.Attach(receiver.get());
//   ...
//   receiver->Shutdown();  // ends its stream
//   router.Detach();       // waits for calls still in it, then refuses
#pragma once

#include <functional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "proto/replication.grpc.pb.h"

namespace ferry::replication {

class Receiver;

// Thread-safe.
class ReceiverRouter final : public ferry::v1::Replication::Service {
 public:
  // `refusal` says why streams are refused while no receiver is attached.
  explicit ReceiverRouter(std::function<std::string()> refusal) : refusal_(std::move(refusal)) {}

  grpc::Status Replicate(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<ferry::v1::ReceiverFrame, ferry::v1::ShipperFrame>* stream) override;

  // `receiver` gets every stream from now on; it must stay alive until Detach() returns.
  void Attach(Receiver* receiver);
  // Refuses streams from now on and waits until no call is inside the attached receiver (shut
  // the receiver down first, so that its stream ends).
  void Detach();

 private:
  const std::function<std::string()> refusal_;
  absl::Mutex mu_;
  Receiver* receiver_ ABSL_GUARDED_BY(mu_) = nullptr;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ferry::replication
