#include "engine/base/backoff.h"

#include <algorithm>

namespace ferry {

Backoff::Backoff(const BackoffOptions& options, uint64_t seed) : options_(options), rng_(seed) {}

absl::Duration Backoff::Next() {
  const absl::Duration min = std::max(options_.min, absl::ZeroDuration());
  const absl::Duration max = std::max(options_.max, min);
  absl::Duration d = min;
  for (int i = 0; i < attempt_ && d < max; ++i) d *= 2;
  d = std::min(d, max);
  if (attempt_ < 64) ++attempt_;
  const double jitter = std::clamp(options_.jitter, 0.0, 1.0);
  // Uniform in [0, 1) from the top 53 bits, identical on every platform (unlike
  // std::uniform_real_distribution, whose algorithm the standard leaves open).
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  return d - d * (jitter * u);
}

}  // namespace ferry
