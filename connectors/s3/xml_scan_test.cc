// XmlScan reads S3's answers; the server's bytes are never trusted (hostile-input cases).
#include "connectors/s3/xml_scan.h"

#include <gtest/gtest.h>

namespace ferry::s3 {
namespace {

TEST(XmlScanTest, ReadsRepeatedContainersInOrder) {
  std::string xml =
      "<?xml version=\"1.0\"?><ListVersionsResult><Version><Key>a&amp;b</Key></Version>"
      "<DeleteMarker><Key>c</Key></DeleteMarker><Version><Key>d</Key></Version>"
      "</ListVersionsResult>";
  auto found = XmlChildren(xml, {"Version", "DeleteMarker"});
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].name, "Version");
  EXPECT_EQ(XmlText(found[0].inner, "Key"), "a&b");
  EXPECT_EQ(found[1].name, "DeleteMarker");
  EXPECT_EQ(XmlText(found[2].inner, "Key"), "d");
}

TEST(XmlScanTest, UnescapesEntitiesAndCharacterReferences) {
  EXPECT_EQ(XmlUnescape("&lt;&gt;&quot;&apos;&amp;"), "<>\"'&");
  EXPECT_EQ(XmlUnescape("&#233;&#xE9;"), "\xc3\xa9\xc3\xa9");
  EXPECT_EQ(XmlUnescape("&#x1F600;"), "\xf0\x9f\x98\x80");
}

TEST(XmlScanTest, HostileInputNeverCrashes) {
  for (const char* xml :
       {"", "<", "<Key", "<Key>unterminated", "&", "&#;", "&#x110000;", "&#99999999999999999999;",
        "&unknownentity;", "<Key/>", "</Key>", "<a><Key>x</Key", "<<<>>>", "&#xZZ;"}) {
    (void)XmlChildren(xml, {"Key"});
    (void)XmlText(xml, "Key");
    (void)XmlUnescape(xml);
  }
  EXPECT_EQ(XmlText("<Key>unterminated", "Key"), "");
  EXPECT_EQ(XmlUnescape("&#x110000;"), "&#x110000;");
  EXPECT_EQ(XmlUnescape("a&b"), "a&b");
  EXPECT_EQ(XmlText("<Key/>", "Key"), "");
}

TEST(XmlScanTest, EscapeRoundTrips) {
  std::string s = "a<b>&\"c'";
  EXPECT_EQ(XmlUnescape(XmlEscape(s)), s);
}

}  // namespace
}  // namespace ferry::s3
