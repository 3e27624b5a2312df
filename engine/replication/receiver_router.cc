#include "engine/replication/receiver_router.h"

#include "engine/replication/receiver.h"

namespace ferry::replication {

grpc::Status ReceiverRouter::Replicate(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<ferry::v1::ReceiverFrame, ferry::v1::ShipperFrame>* stream) {
  Receiver* receiver;
  {
    absl::MutexLock lock(&mu_);
    receiver = receiver_;
    if (receiver != nullptr) ++calls_;
  }
  if (receiver == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, refusal_());
  }
  grpc::Status status = receiver->Replicate(context, stream);
  absl::MutexLock lock(&mu_);
  --calls_;
  return status;
}

void ReceiverRouter::Attach(Receiver* receiver) {
  absl::MutexLock lock(&mu_);
  receiver_ = receiver;
}

void ReceiverRouter::Detach() {
  absl::MutexLock lock(&mu_);
  receiver_ = nullptr;
  mu_.Await(absl::Condition(
      +[](int* calls) { return *calls == 0; }, &calls_));
}

}  // namespace ferry::replication
