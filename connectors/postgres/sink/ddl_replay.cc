#include "connectors/postgres/sink/ddl_replay.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"

namespace ferry::pg_sink {
namespace {

// absl's string_view is its own type in this Abseil build.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

struct Token {
  enum Kind { kWord, kQuoted, kSymbol } kind;
  size_t begin;
  size_t end;
};

bool IdentStart(char c) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IdentChar(char c) {
  return IdentStart(c) || absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// Postgres' lexical structure, as far as finding statement boundaries and leading keywords
// needs it (the server's scan.l): quotes, dollar quotes, comments, words, single symbols.
class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  std::optional<Token> Next() {
    SkipSpaceAndComments();
    if (i_ >= s_.size()) return std::nullopt;
    const size_t begin = i_;
    const char c = s_[i_];
    const char next = i_ + 1 < s_.size() ? s_[i_ + 1] : '\0';
    if (c == '\'') return Quoted(begin, '\'', /*backslash=*/false);
    if ((c == 'E' || c == 'e') && next == '\'') {
      ++i_;
      return Quoted(begin, '\'', /*backslash=*/true);
    }
    if ((c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') && next == '\'') {
      ++i_;
      return Quoted(begin, '\'', /*backslash=*/false);
    }
    if ((c == 'U' || c == 'u') && next == '&' && i_ + 2 < s_.size() &&
        (s_[i_ + 2] == '\'' || s_[i_ + 2] == '"')) {
      i_ += 2;
      return Quoted(begin, s_[i_], /*backslash=*/false);
    }
    if (c == '"') return Quoted(begin, '"', /*backslash=*/false);
    if (c == '$') return Dollar(begin);
    if (IdentStart(c)) {
      while (i_ < s_.size() && IdentChar(s_[i_])) ++i_;
      return Token{Token::kWord, begin, i_};
    }
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      while (i_ < s_.size() && (absl::ascii_isalnum(static_cast<unsigned char>(s_[i_])) ||
                                s_[i_] == '.' || s_[i_] == '_')) {
        ++i_;
      }
      return Token{Token::kSymbol, begin, i_};
    }
    ++i_;
    return Token{Token::kSymbol, begin, i_};
  }

 private:
  void SkipSpaceAndComments() {
    while (i_ < s_.size()) {
      if (absl::ascii_isspace(static_cast<unsigned char>(s_[i_]))) {
        ++i_;
      } else if (s_.substr(i_, 2) == "--") {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (s_.substr(i_, 2) == "/*") {
        int depth = 0;
        while (i_ < s_.size()) {
          if (s_.substr(i_, 2) == "/*") {
            ++depth;
            i_ += 2;
          } else if (s_.substr(i_, 2) == "*/") {
            i_ += 2;
            if (--depth == 0) break;
          } else {
            ++i_;
          }
        }
      } else {
        return;
      }
    }
  }

  // At the opening quote; a doubled quote is a quote; with `backslash`, \x escapes x.
  Token Quoted(size_t begin, char quote, bool backslash) {
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (backslash && c == '\\') {
        i_ += 2;
      } else if (c == quote) {
        if (i_ + 1 < s_.size() && s_[i_ + 1] == quote) {
          i_ += 2;
        } else {
          ++i_;
          break;
        }
      } else {
        ++i_;
      }
    }
    i_ = std::min(i_, s_.size());
    return Token{Token::kQuoted, begin, i_};
  }

  // At a '$': a parameter ($1), a dollar-quoted string ($tag$ ... $tag$), or a lone symbol.
  Token Dollar(size_t begin) {
    size_t j = i_ + 1;
    if (j < s_.size() && absl::ascii_isdigit(static_cast<unsigned char>(s_[j]))) {
      while (j < s_.size() && absl::ascii_isdigit(static_cast<unsigned char>(s_[j]))) ++j;
      i_ = j;
      return Token{Token::kSymbol, begin, i_};
    }
    while (j < s_.size() && IdentChar(s_[j]) && s_[j] != '$') ++j;
    if (j < s_.size() && s_[j] == '$') {
      const std::string_view tag = s_.substr(i_, j + 1 - i_);
      const size_t close = s_.find(tag, j + 1);
      i_ = close == std::string_view::npos ? s_.size() : close + tag.size();
      return Token{Token::kQuoted, begin, i_};
    }
    ++i_;
    return Token{Token::kSymbol, begin, i_};
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::vector<Token> Tokens(std::string_view s) {
  std::vector<Token> out;
  Lexer lexer(s);
  while (std::optional<Token> t = lexer.Next()) out.push_back(*t);
  return out;
}

std::string Upper(std::string_view s, const Token& t) {
  return absl::AsciiStrToUpper(A(s.substr(t.begin, t.end - t.begin)));
}

// The words of `s` at top level (outside parentheses), upper-cased, with their tokens.
std::vector<std::pair<std::string, Token>> TopLevelWords(std::string_view s) {
  std::vector<std::pair<std::string, Token>> words;
  int depth = 0;
  for (const Token& t : Tokens(s)) {
    if (t.kind == Token::kSymbol && s[t.begin] == '(') ++depth;
    if (t.kind == Token::kSymbol && s[t.begin] == ')' && depth > 0) --depth;
    if (depth == 0 && t.kind == Token::kWord) words.emplace_back(Upper(s, t), t);
  }
  return words;
}

// Words that may stand between a command's verb and its object without changing its tag.
bool Modifier(const std::string& w) {
  static const char* const kModifiers[] = {
      "OR",    "REPLACE", "UNIQUE",     "UNLOGGED",  "TEMP",    "TEMPORARY", "GLOBAL",
      "LOCAL", "TRUSTED", "PROCEDURAL", "RECURSIVE", "DEFAULT", "CONSTRAINT"};
  for (const char* m : kModifiers) {
    if (w == m) return true;
  }
  return false;
}

// Does the statement (its leading words) start with the words of `tag`?
bool StartsWithTag(const std::vector<std::pair<std::string, Token>>& words, std::string_view tag) {
  const std::vector<absl::string_view> tag_words = absl::StrSplit(A(tag), ' ', absl::SkipEmpty());
  if (tag_words.empty()) return false;
  size_t w = 0;
  for (size_t k = 0; k < tag_words.size(); ++k, ++w) {
    while (k > 0 && w < words.size() && words[w].first != tag_words[k] &&
           Modifier(words[w].first)) {
      ++w;
    }
    if (w >= words.size() || words[w].first != tag_words[k]) return false;
  }
  return true;
}

bool HasTopLevelWord(const std::vector<std::pair<std::string, Token>>& words,
                     std::string_view word) {
  for (const auto& [w, t] : words) {
    if (w == word) return true;
  }
  return false;
}

// The parts of a possibly qualified, possibly quoted name starting at token `i` of `tokens`,
// as Postgres folds them: unquoted lower-cased, quoted as written.
std::vector<std::string> NameAt(std::string_view s, const std::vector<Token>& tokens, size_t i) {
  std::vector<std::string> parts;
  while (i < tokens.size()) {
    const Token& t = tokens[i];
    std::string_view text = s.substr(t.begin, t.end - t.begin);
    if (t.kind == Token::kWord) {
      parts.push_back(absl::AsciiStrToLower(A(text)));
    } else if (t.kind == Token::kQuoted && text.size() >= 2 && text[0] == '"') {
      parts.push_back(absl::StrReplaceAll(A(text.substr(1, text.size() - 2)), {{"\"\"", "\""}}));
    } else {
      return parts;
    }
    if (i + 1 < tokens.size() && s[tokens[i + 1].begin] == '.' &&
        tokens[i + 1].kind == Token::kSymbol) {
      i += 2;
      continue;
    }
    return parts;
  }
  return parts;
}

// Does a (possibly qualified) name from the text name `t`? An unqualified one names any schema's
// table of that name (search_path decides; the server resolved it).
bool Names(const std::vector<std::string>& parts, const v1::PgTableRef& t) {
  if (parts.empty() || parts.back() != t.name()) return false;
  return parts.size() == 1 || parts[parts.size() - 2] == t.schema();
}

// The names a table command's text names as its object: the first name after the tag (and
// IF [NOT] EXISTS, ONLY), the table after ON for CREATE INDEX, and a RENAME TO's new name.
std::vector<std::vector<std::string>> ObjectNames(std::string_view stmt, std::string_view tag) {
  const std::vector<Token> tokens = Tokens(stmt);
  std::vector<std::string> upper;
  for (const Token& t : tokens) upper.push_back(t.kind == Token::kWord ? Upper(stmt, t) : "");
  std::vector<std::vector<std::string>> names;
  const bool index = absl::StartsWith(A(tag), "CREATE INDEX");
  const std::string last_tag_word(tag.substr(tag.rfind(' ') + 1));
  size_t i = 0;
  if (index) {
    int depth = 0;
    for (; i < tokens.size(); ++i) {
      if (tokens[i].kind == Token::kSymbol && stmt[tokens[i].begin] == '(') ++depth;
      if (tokens[i].kind == Token::kSymbol && stmt[tokens[i].begin] == ')') --depth;
      if (depth == 0 && upper[i] == "ON") break;
    }
    ++i;
  } else {
    while (i < tokens.size() && upper[i] != last_tag_word) ++i;
    ++i;
  }
  while (i < tokens.size() &&
         (upper[i] == "IF" || upper[i] == "NOT" || upper[i] == "EXISTS" || upper[i] == "ONLY")) {
    ++i;
  }
  names.push_back(NameAt(stmt, tokens, i));
  for (size_t k = 0; k + 2 < tokens.size(); ++k) {
    if (upper[k] == "RENAME" && upper[k + 1] == "TO") {
      // The new name is unqualified; it lives in the renamed table's schema.
      std::vector<std::string> renamed = NameAt(stmt, tokens, k + 2);
      if (renamed.size() == 1 && names.front().size() > 1) {
        renamed.insert(renamed.begin(), names.front()[names.front().size() - 2]);
      }
      names.push_back(std::move(renamed));
    }
  }
  return names;
}

}  // namespace

std::vector<std::string_view> SplitStatements(std::string_view sql) {
  std::vector<std::string_view> out;
  std::optional<size_t> first;  // begin of the statement's first token
  size_t last_end = 0;
  int depth = 0;
  int atomic = 0;  // inside BEGIN ATOMIC ... END: nesting of CASE ... END
  std::string previous;
  auto close = [&]() {
    if (first) out.push_back(sql.substr(*first, last_end - *first));
    first.reset();
    depth = 0;
    atomic = 0;
    previous.clear();
  };
  for (const Token& t : Tokens(sql)) {
    if (t.kind == Token::kSymbol && sql[t.begin] == ';' && depth == 0 && atomic == 0) {
      close();
      continue;
    }
    if (!first) first = t.begin;
    last_end = t.end;
    if (t.kind == Token::kSymbol && sql[t.begin] == '(') ++depth;
    if (t.kind == Token::kSymbol && sql[t.begin] == ')' && depth > 0) --depth;
    if (t.kind == Token::kWord) {
      const std::string w = Upper(sql, t);
      if (atomic == 0 && previous == "BEGIN" && w == "ATOMIC") {
        atomic = 1;
      } else if (atomic > 0 && w == "CASE") {
        ++atomic;
      } else if (atomic > 0 && w == "END") {
        --atomic;
      }
      previous = w;
    } else {
      previous.clear();
    }
  }
  close();
  return out;
}

bool MatchesTag(std::string_view statement, std::string_view tag) {
  const auto words = TopLevelWords(statement);
  if (tag == "SELECT INTO") {
    return !words.empty() && (words[0].first == "SELECT" || words[0].first == "WITH") &&
           HasTopLevelWord(words, "INTO");
  }
  if (tag == "CREATE TABLE AS") {
    return StartsWithTag(words, "CREATE TABLE") && HasTopLevelWord(words, "AS");
  }
  if (!StartsWithTag(words, tag)) return false;
  // CREATE TABLE ... AS is its own tag.
  if (tag == "CREATE TABLE" && HasTopLevelWord(words, "AS")) return false;
  return true;
}

absl::StatusOr<std::string> StatementToReplay(const v1::PgDdlMessage& message) {
  if (message.query().empty()) {
    return absl::NotFoundError(absl::StrCat("the ", message.tag(), " command's query text of ",
                                            message.query_bytes(),
                                            " bytes is over the 1 MiB the source sends"));
  }
  if (message.backslash_quotes()) {
    return absl::NotFoundError(absl::StrCat(
        "the ", message.tag(),
        " command ran with standard_conforming_strings off, where Ferry cannot split the query "
        "text safely"));
  }
  int seen = 0;
  for (std::string_view stmt : SplitStatements(message.query())) {
    if (!MatchesTag(stmt, message.tag()) || ++seen < message.ordinal()) continue;
    // A table command whose text names none of the tables the command touched is not this
    // command: the query ran it elsewhere (in a function or DO block) and this is another.
    if (!message.tables().empty() && (absl::StartsWith(message.tag(), "CREATE TABLE") ||
                                      absl::StartsWith(message.tag(), "ALTER TABLE") ||
                                      absl::StartsWith(message.tag(), "DROP TABLE") ||
                                      absl::StartsWith(message.tag(), "CREATE INDEX"))) {
      bool named = false;
      for (const std::vector<std::string>& n : ObjectNames(stmt, message.tag())) {
        for (const v1::PgTableRef& t : message.tables()) named = named || Names(n, t);
      }
      if (!named) break;
    }
    std::string sql(stmt);
    if (message.tag() == "CREATE INDEX" || message.tag() == "DROP INDEX" ||
        message.tag() == "ALTER TABLE") {
      // Not allowed inside a transaction block; the standby's copy builds in apply's.
      for (const auto& [w, t] : TopLevelWords(stmt)) {
        if (w == "CONCURRENTLY") {
          sql = absl::StrCat(A(stmt.substr(0, t.begin)), A(stmt.substr(t.end)));
          break;
        }
      }
    }
    return sql;
  }
  return absl::NotFoundError(absl::StrCat(
      "the ", message.tag(), " command #", message.ordinal(),
      " ran inside a function, a DO block or a procedure, where Ferry cannot isolate it from "
      "the query's other statements"));
}

bool ChangesNoData(std::string_view tag) {
  return tag == "GRANT" || tag == "REVOKE" || tag == "COMMENT" || tag == "SECURITY LABEL" ||
         tag == "ALTER DEFAULT PRIVILEGES";
}

bool CreatesFilledTable(std::string_view tag) {
  return tag == "CREATE TABLE AS" || tag == "SELECT INTO";
}

namespace {

template <typename M>
absl::StatusOr<M> ParseJson(std::string_view json, const char* what) {
  if (json.size() > kMaxDdlMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " message of ", json.size(), " bytes is over the limit of ", kMaxDdlMessageBytes));
  }
  M m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto s = google::protobuf::util::JsonStringToMessage(std::string(json), &m, options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed ", what, " message: ", std::string(s.message())));
  }
  if (m.v() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " message of unknown version ", m.v(), " (this build reads 1)"));
  }
  return m;
}

}  // namespace

absl::StatusOr<v1::PgDdlMessage> ParseDdlMessage(std::string_view json) {
  auto m = ParseJson<v1::PgDdlMessage>(json, "schema change");
  if (!m.ok()) return m.status();
  if (m->tag().empty() || (m->query().empty() && m->query_bytes() <= 0) || m->ordinal() < 1) {
    return absl::InvalidArgumentError("schema change message without tag, query or ordinal");
  }
  if (m->tables_size() > kMaxDdlTables) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema change message names ", m->tables_size(), " tables"));
  }
  for (const auto& t : m->tables()) {
    if (t.schema().empty() || t.name().empty()) {
      return absl::InvalidArgumentError("schema change message names a table without a name");
    }
  }
  return m;
}

absl::StatusOr<v1::PgTruncateMessage> ParseTruncateMessage(std::string_view json) {
  auto m = ParseJson<v1::PgTruncateMessage>(json, "partition truncate");
  if (!m.ok()) return m.status();
  if (m->schema().empty() || m->name().empty()) {
    return absl::InvalidArgumentError("partition truncate message without a table");
  }
  return m;
}

absl::StatusOr<v1::PgResnapshotMessage> ParseResnapshotMessage(std::string_view json) {
  auto m = ParseJson<v1::PgResnapshotMessage>(json, "re-snapshot");
  if (!m.ok()) return m.status();
  if (m->schema().empty() || m->name().empty()) {
    return absl::InvalidArgumentError("re-snapshot message without a table");
  }
  return m;
}

absl::StatusOr<v1::PgSequencesMessage> ParseSequencesMessage(std::string_view json) {
  auto m = ParseJson<v1::PgSequencesMessage>(json, "sequence values");
  if (!m.ok()) return m.status();
  if (m->sequences_size() > kMaxSequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence values message names ", m->sequences_size(), " sequences"));
  }
  for (const auto& v : m->sequences()) {
    if (v.schema().empty() || v.name().empty()) {
      return absl::InvalidArgumentError("sequence values message names a sequence without a name");
    }
  }
  return m;
}

}  // namespace ferry::pg_sink
