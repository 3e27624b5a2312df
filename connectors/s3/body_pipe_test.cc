// BodyPipe: bytes come out in order and whole through a pipe much smaller than the body (its
// ring wraps many times, chunks of every size on both ends); Close ends the body after the
// bytes held and refuses later writes, even on a full pipe; a failure from either end reaches
// the other, waiting, end with that error. (Whether the other end is already waiting when the
// failure comes is up to the scheduler; either way it must end, not hang.)
#include "connectors/s3/body_pipe.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"

namespace ferry::s3 {
namespace {

TEST(BodyPipeTest, BytesComeOutInOrderAndWholeThroughASmallPipe) {
  std::string body(3 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : body) c = static_cast<char>(rng());
  BodyPipe pipe(1000);
  std::thread writer([&] {
    std::mt19937 sizes(11);
    for (size_t at = 0; at < body.size();) {
      const size_t n = std::min<size_t>(sizes() % 5000 + 1, body.size() - at);
      absl::Status written = pipe.Write(std::string_view(body).substr(at, n));
      EXPECT_TRUE(written.ok()) << written;
      if (!written.ok()) break;  // Close below ends the reader's loop
      at += n;
    }
    pipe.Close();
  });
  std::string out;
  std::mt19937 sizes(13);
  char buffer[4096];
  while (true) {
    absl::StatusOr<size_t> n = pipe.Read(buffer, sizes() % sizeof(buffer) + 1);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    out.append(buffer, *n);
  }
  writer.join();
  EXPECT_EQ(out.size(), body.size());
  EXPECT_TRUE(out == body);
}

TEST(BodyPipeTest, CloseEndsTheBodyAfterTheBytesHeldAndRefusesMoreWrites) {
  BodyPipe full(2);
  ASSERT_TRUE(full.Write("ab").ok());
  full.Close();
  EXPECT_EQ(full.Write("c").code(), absl::StatusCode::kFailedPrecondition);  // full: no wait

  BodyPipe pipe(16);
  ASSERT_TRUE(pipe.Write("abc").ok());
  pipe.Close();
  EXPECT_EQ(pipe.Write("d").code(), absl::StatusCode::kFailedPrecondition);
  char buffer[8];
  EXPECT_EQ(pipe.Read(buffer, sizeof(buffer)).value_or(99), 3u);
  EXPECT_EQ(std::string(buffer, 3), "abc");
  EXPECT_EQ(pipe.Read(buffer, sizeof(buffer)).value_or(99), 0u);
}

TEST(BodyPipeTest, TheReadersFailureWakesAWriterBlockedOnAFullPipe) {
  BodyPipe pipe(4);
  absl::Status written;
  std::thread writer([&] { written = pipe.Write("more than four bytes"); });
  char buffer[2];
  ASSERT_EQ(pipe.Read(buffer, sizeof(buffer)).value_or(0), 2u);  // the writer has begun
  pipe.Fail(absl::AbortedError("the PUT was refused"));
  writer.join();
  EXPECT_EQ(written.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(written.message(), "the PUT was refused");
}

TEST(BodyPipeTest, TheWritersFailureWinsOverBytesHeldAndWakesAWaitingReader) {
  BodyPipe pipe(16);
  char buffer[8];
  absl::StatusOr<size_t> read;
  absl::Notification first_read;
  ASSERT_TRUE(pipe.Write("a").ok());
  std::thread reader([&] {
    read = pipe.Read(buffer, sizeof(buffer));  // the "a"
    first_read.Notify();
    read = pipe.Read(buffer, sizeof(buffer));  // waits on the empty pipe
  });
  first_read.WaitForNotification();
  pipe.Fail(absl::UnavailableError("GET broke"));
  reader.join();
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);

  BodyPipe held(16);
  ASSERT_TRUE(held.Write("abc").ok());
  held.Fail(absl::UnavailableError("GET broke"));
  held.Fail(absl::CancelledError("later"));  // the first error stays
  EXPECT_EQ(held.Read(buffer, sizeof(buffer)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(held.Write("x").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ferry::s3
