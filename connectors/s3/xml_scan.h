// XmlScan: just enough XML for S3's answers (ListBucketResult, ListVersionsResult,
// InitiateMultipartUploadResult, CompleteMultipartUploadResult, Error). S3's answers are flat
// records of leaf elements inside repeated containers; this reads them as such, without a DOM
// and without any library. Input is from the server, so it is bounded and never trusted:
// a missing element is "", never a crash.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ferry::s3 {

// One child element of a scanned range: its name and its raw (still escaped) inner text.
struct XmlElement {
  std::string_view name;
  std::string_view inner;
};

// The top-level elements inside `xml` whose name is one of `names`, in document order (a
// matching element inside another matching one is not returned separately).
std::vector<XmlElement> XmlChildren(std::string_view xml, const std::vector<std::string>& names);

// The unescaped text of the first element `name` inside `xml`; "" when there is none.
std::string XmlText(std::string_view xml, std::string_view name);

// Replaces the five predefined entities and numeric character references (&#NN; &#xNN;, as
// UTF-8). An unknown or malformed entity is kept as written.
std::string XmlUnescape(std::string_view text);

// Escapes & < > " ' for element text.
std::string XmlEscape(std::string_view text);

}  // namespace ferry::s3
