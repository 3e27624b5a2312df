#include "engine/config/value_parsers.h"

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::config {
namespace {

using ::testing::HasSubstr;

TEST(ParseHostPortTest, Valid) {
  EXPECT_EQ(*ParseHostPort("127.0.0.1:7401"), (HostPort{"127.0.0.1", 7401}));
  EXPECT_EQ(*ParseHostPort("[::1]:7401"), (HostPort{"::1", 7401}));
  EXPECT_EQ(*ParseHostPort("[2001:db8::5]:65535"), (HostPort{"2001:db8::5", 65535}));
  EXPECT_EQ(*ParseHostPort("db-1.example.com:1"), (HostPort{"db-1.example.com", 1}));
  EXPECT_EQ(*ParseHostPort("pg_east:5432"), (HostPort{"pg_east", 5432}));
  EXPECT_EQ(*ParseHostPort("localhost:0"), (HostPort{"localhost", 0}));
  EXPECT_EQ(ParseHostPort("[::1]:7401")->ToString(), "[::1]:7401");
  EXPECT_EQ(ParseHostPort("10.1.2.3:80")->ToString(), "10.1.2.3:80");
}

TEST(ParseHostPortTest, Invalid) {
  const auto reason = [](std::string_view text) {
    absl::StatusOr<HostPort> r = ParseHostPort(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  EXPECT_EQ(reason("7400"), "expected HOST:PORT, got \"7400\"");
  EXPECT_EQ(reason(""), "expected HOST:PORT, got \"\"");
  EXPECT_THAT(reason(":7400"), HasSubstr("the host is empty"));
  EXPECT_THAT(reason("::1:7400"), HasSubstr("IPv6 address in brackets"));
  EXPECT_THAT(reason("256.1.1.1:80"), HasSubstr("invalid IPv4 address \"256.1.1.1\""));
  EXPECT_THAT(reason("1.2.3:80"), HasSubstr("invalid IPv4 address"));
  EXPECT_THAT(reason("bad host:80"), HasSubstr("invalid host name"));
  EXPECT_THAT(reason("-bad.com:80"), HasSubstr("invalid host name"));
  EXPECT_THAT(reason("[zz::q]:80"), HasSubstr("invalid IPv6 address"));
  EXPECT_THAT(reason("[::1]"), HasSubstr("expected HOST:PORT"));
  EXPECT_THAT(reason("[::1]7400"), HasSubstr("expected HOST:PORT"));
  EXPECT_THAT(reason("h:70000"), HasSubstr("port must be a number 0-65535, got \"70000\""));
  EXPECT_THAT(reason("h:-1"), HasSubstr("port must be a number"));
  EXPECT_THAT(reason("h:"), HasSubstr("port must be a number"));
  EXPECT_THAT(reason("h:80x"), HasSubstr("port must be a number"));
  EXPECT_THAT(reason(std::string(1000, 'h') + ":80"), HasSubstr("expected HOST:PORT"));
}

TEST(ParseByteSizeTest, Valid) {
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("65536"), 65536u);
  EXPECT_EQ(*ParseByteSize("10B"), 10u);
  EXPECT_EQ(*ParseByteSize("512KiB"), 512u << 10);
  EXPECT_EQ(*ParseByteSize("64MiB"), 64u << 20);
  EXPECT_EQ(*ParseByteSize("1GiB"), 1u << 30);
  EXPECT_EQ(*ParseByteSize("1 GiB"), 1u << 30);
  EXPECT_EQ(*ParseByteSize("2gib"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("3TiB"), 3ull << 40);
}

TEST(ParseByteSizeTest, Invalid) {
  const auto reason = [](std::string_view text) {
    absl::StatusOr<uint64_t> r = ParseByteSize(text);
    EXPECT_FALSE(r.ok()) << text;
    return std::string(r.status().message());
  };
  EXPECT_THAT(reason(""), HasSubstr("expected a byte size"));
  EXPECT_THAT(reason("abc"),
              HasSubstr("expected a byte size such as 65536, 512KiB, 64MiB or 1GiB"));
  EXPECT_THAT(reason("MiB"), HasSubstr("expected a byte size"));
  EXPECT_THAT(reason("-1"), HasSubstr("must not be negative"));
  EXPECT_THAT(reason("1.5GiB"), HasSubstr("fractions are not allowed"));
  EXPECT_THAT(reason("64MB"), HasSubstr("ambiguous unit \"MB\""));
  EXPECT_THAT(reason("64k"), HasSubstr("ambiguous unit"));
  EXPECT_THAT(reason("64 PiB"), HasSubstr("expected a byte size"));
  EXPECT_THAT(reason("18446744073709551616"), HasSubstr("too large"));
  EXPECT_THAT(reason("17179869184GiB"), HasSubstr("too large"));
  EXPECT_THAT(reason("+5"), HasSubstr("expected a byte size"));
}

TEST(ParseIntegerTest, DecimalWithOptionalMinusOnly) {
  EXPECT_EQ(*ParseInteger("0"), 0);
  EXPECT_EQ(*ParseInteger("4"), 4);
  EXPECT_EQ(*ParseInteger("-5"), -5);
  EXPECT_EQ(*ParseInteger("999999999999999999"), 999999999999999999);
  for (const char* bad :
       {"", "-", "4.0", "+4", "0x10", "1e3", " 4", "4 ", "abc", "9999999999999999999"}) {
    absl::StatusOr<int64_t> r = ParseInteger(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseInteger("4.0").status().message(), "expected an integer, got \"4.0\"");
}

TEST(ParseBoolTest, OnlyYaml12Booleans) {
  for (const char* yes : {"true", "True", "TRUE"}) EXPECT_TRUE(*ParseBool(yes)) << yes;
  for (const char* no : {"false", "False", "FALSE"}) EXPECT_FALSE(*ParseBool(no)) << no;
  for (const char* bad : {"yes", "no", "on", "off", "y", "n", "1", "0", "tRUE", ""}) {
    EXPECT_FALSE(ParseBool(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseBool("yes").status().message(), "expected true or false, got \"yes\"");
}

TEST(ParseEnumTest, ExactNamesAndTheChoicesInTheMessage) {
  constexpr absl::string_view kNames[] = {"stop", "apply_remote"};
  EXPECT_EQ(*ParseEnum("stop", kNames), 0u);
  EXPECT_EQ(*ParseEnum("apply_remote", kNames), 1u);
  EXPECT_EQ(ParseEnum("Stop", kNames).status().message(),
            "expected one of stop, apply_remote, got \"Stop\"");
  EXPECT_EQ(EnumChoices(kNames), "one of stop, apply_remote");
}

TEST(QuoteTest, EscapesAndCutsLongValues) {
  EXPECT_EQ(Quote("a\"b\n"), "\"a\\\"b\\n\"");
  const std::string long_value(3000, 'e');
  EXPECT_EQ(Quote(long_value), "\"" + std::string(64, 'e') + "\"... (3000 bytes)");
}

TEST(FormatBytesTest, LargestExactBinaryUnit) {
  EXPECT_EQ(FormatBytes(0), "0");
  EXPECT_EQ(FormatBytes(1000), "1000");
  EXPECT_EQ(FormatBytes(1536 << 10), "1536KiB");
  EXPECT_EQ(FormatBytes(64ull << 20), "64MiB");
  EXPECT_EQ(FormatBytes(1ull << 50), "1024TiB");
}

TEST(CheckAbsolutePathTest, RelativePathsAreRefused) {
  EXPECT_TRUE(CheckAbsolutePath("/var/lib/ferry").ok());
  EXPECT_EQ(CheckAbsolutePath("var/lib").message(), "expected an absolute path, got \"var/lib\"");
  EXPECT_FALSE(CheckAbsolutePath("").ok());
}

TEST(IsLoopbackHostTest, LocalhostAnd127AndV6Loopback) {
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.5"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
}

}  // namespace
}  // namespace ferry::config
