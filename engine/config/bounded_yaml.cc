#include "engine/config/bounded_yaml.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <sstream>

#include "engine/config/limits.h"
#include "engine/config/value_parsers.h"

namespace ferry::config {
namespace {

// Thrown from inside yaml-cpp's parser by NodeBudget; caught in LoadBoundedYaml.
struct BudgetExceeded {
  std::string reason;
  YAML::Mark mark;
};

// Counts nodes, nesting and documents as yaml-cpp parses, throwing BudgetExceeded as soon as a
// limit is passed. No tree is built, so memory stays bounded by the parser's own state.
class NodeBudget final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      throw BudgetExceeded{"holds more than one YAML document ('---'); expected exactly one", mark};
    }
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Count(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Count(const YAML::Mark& mark) {
    if (++nodes_ > kMaxConfigNodes) {
      throw BudgetExceeded{absl::StrCat("has more than ", kMaxConfigNodes, " YAML nodes"), mark};
    }
  }
  void Open(const YAML::Mark& mark) {
    Count(mark);
    if (++depth_ > kMaxNesting) {
      throw BudgetExceeded{absl::StrCat("nests maps or lists deeper than ", kMaxNesting, " levels"),
                           mark};
    }
  }

  size_t nodes_ = 0;
  int depth_ = 0;
  int documents_ = 0;
};

}  // namespace

std::string AtLine(const YAML::Mark& mark) {
  if (mark.is_null()) return "";
  return absl::StrCat(" at line ", mark.line + 1, ", column ", mark.column + 1);
}

absl::StatusOr<YAML::Node> LoadBoundedYaml(absl::string_view text, const std::string& prefix) {
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "is ", text.size(), " bytes, over the ",
                                                   FormatBytes(kMaxConfigBytes), " limit"));
  }
  if (const size_t nul = text.find('\0'); nul != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "contains a NUL byte at offset ", nul, "; not a YAML text file"));
  }
  // yaml-cpp's scanner queues every token of an open flow collection ("[...]", "{...}") before
  // the parser sees them, about 250 bytes a token: a megabyte of "[[[[" would cost 250 MB
  // before any event reaches NodeBudget. A real config has a handful of flow collections, so
  // their opening characters are counted on the raw text, quotes and comments included (a
  // count cannot be fooled by quoting tricks).
  const size_t brackets =
      std::count_if(text.begin(), text.end(), [](char ch) { return ch == '[' || ch == '{'; });
  if (brackets > kMaxFlowOpenings) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "has ", brackets, " '[' or '{' characters, over the limit of ", kMaxFlowOpenings));
  }
  const std::string owned(text);
  try {
    std::istringstream in(owned);
    YAML::Parser parser(in);
    NodeBudget budget;
    while (parser.HandleNextDocument(budget)) {
    }
  } catch (const BudgetExceeded& e) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, e.reason, AtLine(e.mark)));
  }
  return YAML::Load(owned);
}

}  // namespace ferry::config
