#include "consistency/row_hash.h"

#include <xxhash.h>

namespace ferry::consistency {

void AppendValue(std::string* out, std::optional<absl::string_view> value) {
  if (!value.has_value()) {
    out->push_back('\0');
    return;
  }
  const auto size = static_cast<uint32_t>(value->size());
  char header[5] = {'\1', static_cast<char>(size & 0xff), static_cast<char>((size >> 8) & 0xff),
                    static_cast<char>((size >> 16) & 0xff), static_cast<char>(size >> 24)};
  out->append(header, sizeof header);
  out->append(value->data(), value->size());
}

std::string EncodeValues(const Values& values) {
  std::string out;
  for (const auto& v : values) {
    AppendValue(&out, v.has_value() ? std::optional<absl::string_view>(*v) : std::nullopt);
  }
  return out;
}

Hash128 HashBytes(absl::string_view bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  return {h.low64, h.high64};
}

}  // namespace ferry::consistency
