#include "connectors/s3/notification.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace ferry::s3 {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const Value* Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

const Struct* Object(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  return v != nullptr && v->has_struct_value() ? &v->struct_value() : nullptr;
}

std::string String(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3339 as both dialects write it ("2026-12-05T04:22:16.084Z", fractions of any length).
int64_t EventTimeUs(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return 0;
  return absl::ToUnixMicros(t);
}

}  // namespace

std::optional<std::string> DecodeEventKey(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= encoded.size()) return std::nullopt;
      int hi = Hex(encoded[i + 1]);
      int lo = Hex(encoded[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (int k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

absl::StatusOr<ParsedNotification> ParseNotification(std::string_view json) {
  if (json.size() > kMaxNotificationBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "notification of ", json.size(), " bytes is over the bound of ", kMaxNotificationBytes));
  }
  Struct root;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("notification is not a JSON object: ", parsed.message().ToString()));
  }
  const Value* records = Field(root, "Records");
  if (records == nullptr || !records->has_list_value()) {
    return absl::InvalidArgumentError("notification has no Records array");
  }
  if (static_cast<size_t>(records->list_value().values_size()) > kMaxRecords) {
    return absl::InvalidArgumentError(absl::StrCat("notification has ",
                                                   records->list_value().values_size(),
                                                   " records, over the bound of ", kMaxRecords));
  }
  ParsedNotification out;
  int index = -1;
  for (const Value& value : records->list_value().values()) {
    ++index;
    auto reject = [&](std::string reason) { out.rejected.push_back({index, std::move(reason)}); };
    if (!value.has_struct_value()) {
      reject("record is not an object");
      continue;
    }
    const Struct& record = value.struct_value();
    const Struct* s3 = Object(record, "s3");
    const Struct* bucket = s3 != nullptr ? Object(*s3, "bucket") : nullptr;
    const Struct* object = s3 != nullptr ? Object(*s3, "object") : nullptr;
    if (bucket == nullptr || object == nullptr) {
      reject("record has no s3.bucket or s3.object");
      continue;
    }
    BucketNotice notice;
    notice.bucket = String(*bucket, "name");
    if (notice.bucket.empty()) {
      reject("record has no bucket name");
      continue;
    }
    const std::string source = String(record, "eventSource");
    const std::string raw_key = String(*object, "key");
    if (raw_key.empty()) {
      reject("record has no object key");
      continue;
    }
    if (source == "ceph:s3") {
      notice.key = raw_key;
    } else {
      std::optional<std::string> decoded = DecodeEventKey(raw_key);
      if (!decoded) {
        reject("object key has a bad %-escape");
        continue;
      }
      notice.key = std::move(*decoded);
    }
    if (notice.key.empty() || notice.key.size() > 1024) {
      reject(absl::StrCat("object key of ", notice.key.size(), " bytes is not 1-1024 bytes"));
      continue;
    }
    if (!IsValidUtf8(notice.key)) {
      reject("object key is not UTF-8");
      continue;
    }
    notice.event_name = String(record, "eventName");
    std::string_view name = notice.event_name;
    if (name.substr(0, 3) == "s3:") name.remove_prefix(3);
    if (name.substr(0, 14) == "ObjectCreated:") {
      notice.kind = BucketNotice::Kind::kCreated;
    } else if (name.substr(0, 14) == "ObjectRemoved:") {
      notice.kind = BucketNotice::Kind::kRemoved;
    }
    notice.version_id = String(*object, "versionId");
    notice.etag = String(*object, "eTag");
    notice.sequencer = String(*object, "sequencer");
    if (const Value* size = Field(*object, "size"); size != nullptr) {
      uint64_t n = 0;
      if (size->kind_case() == Value::kNumberValue && size->number_value() >= 0 &&
          size->number_value() < 9.0e15 &&
          std::floor(size->number_value()) == size->number_value()) {
        notice.size = static_cast<uint64_t>(size->number_value());
      } else if (size->kind_case() == Value::kStringValue &&
                 absl::SimpleAtoi(size->string_value(), &n)) {
        notice.size = n;
      }
    }
    notice.event_time_us = EventTimeUs(String(record, "eventTime"));
    out.notices.push_back(std::move(notice));
  }
  return out;
}

}  // namespace ferry::s3
