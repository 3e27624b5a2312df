// BodyPipe: hands an object's body from the thread that reads it (the source's GET) to the
// thread that sends it (the target's PUT), holding at most `capacity` bytes, so a body of any
// size streams from one bucket to the other without ever being whole in memory.
//
// Either end can fail the pipe; the other end then gets that error instead of blocking (a GET
// that broke ends the PUT, a PUT that was refused ends the GET). The first error wins.
//
// Thread-safe: one writer thread and one reader thread.
//
// Example:
//   BodyPipe pipe(4 << 20);
//   std::thread get([&] {
//     auto got = source->GetObjectStreamed(..., [&](auto chunk) { return pipe.Write(chunk); });
//     got.ok() ? pipe.Close() : pipe.Fail(got.status());
//   });
//   auto put = target->PutObjectStreamed(..., [&](char* b, size_t n) { return pipe.Read(b, n); });
//   pipe.Fail(absl::CancelledError("the PUT ended"));  // frees a GET still writing
//   get.join();
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace ferry::s3 {

class BodyPipe {
 public:
  explicit BodyPipe(size_t capacity);
  BodyPipe(const BodyPipe&) = delete;
  BodyPipe& operator=(const BodyPipe&) = delete;

  // Copies all of `data` in, blocking while the pipe is full. The pipe's error once it failed;
  // kFailedPrecondition after Close.
  [[nodiscard]] absl::Status Write(std::string_view data);
  // The writer's end of the body: Read answers 0 once the bytes held are read.
  void Close();
  // Copies up to `capacity` bytes out, blocking while the pipe is empty and open. 0 only at
  // the end (after Close). The pipe's error once it failed, even with bytes still held.
  [[nodiscard]] absl::StatusOr<size_t> Read(char* out, size_t capacity);
  // Ends the pipe for both ends with `error` (not OK); a later Fail changes nothing.
  void Fail(absl::Status error);

 private:
  // Constant after construction.
  const size_t capacity_;

  absl::Mutex mu_;
  std::vector<char> ring_ ABSL_GUARDED_BY(mu_);  // capacity_ bytes
  size_t head_ ABSL_GUARDED_BY(mu_) = 0;         // index of the oldest byte held
  size_t held_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::s3
