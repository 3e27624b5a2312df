#include "connectors/s3/body_pipe.h"

#include <algorithm>
#include <cstring>

namespace ferry::s3 {

BodyPipe::BodyPipe(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {
  absl::MutexLock lock(&mu_);
  ring_.resize(capacity_);
}

absl::Status BodyPipe::Write(std::string_view data) {
  absl::MutexLock lock(&mu_);
  while (!data.empty()) {
    mu_.Await(absl::Condition(
        +[](BodyPipe* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
          return !p->error_.ok() || p->closed_ || p->held_ < p->capacity_;
        },
        this));
    if (!error_.ok()) return error_;
    if (closed_) return absl::FailedPreconditionError("write to a closed body pipe");
    const size_t tail = (head_ + held_) % capacity_;
    const size_t n = std::min({data.size(), capacity_ - held_, capacity_ - tail});
    std::memcpy(ring_.data() + tail, data.data(), n);
    held_ += n;
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

void BodyPipe::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

absl::StatusOr<size_t> BodyPipe::Read(char* out, size_t capacity) {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](BodyPipe* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
        return !p->error_.ok() || p->held_ > 0 || p->closed_;
      },
      this));
  if (!error_.ok()) return error_;
  const size_t n = std::min({capacity, held_, capacity_ - head_});
  std::memcpy(out, ring_.data() + head_, n);
  head_ = (head_ + n) % capacity_;
  held_ -= n;
  return n;
}

void BodyPipe::Fail(absl::Status error) {
  absl::MutexLock lock(&mu_);
  if (error_.ok() && !error.ok()) error_ = std::move(error);
}

}  // namespace ferry::s3
