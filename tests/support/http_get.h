// HttpGet / HttpPost: one HTTP GET or POST over loopback for tests (libcurl), returning the status
// and the body whatever the status is, so a test can assert a 503 as well as a 200.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::testing {

struct HttpResult {
  long status = 0;
  std::string body;
};

// kUnavailable when no HTTP answer came within 5 s (refused, reset, timed out).
[[nodiscard]] absl::StatusOr<HttpResult> HttpGet(const std::string& url);

// One POST of `body` with extra "Name: value" headers; the same errors as HttpGet.
[[nodiscard]] absl::StatusOr<HttpResult> HttpPost(const std::string& url, const std::string& body,
                                                  const std::vector<std::string>& headers = {});

}  // namespace ferry::testing
