#include "bench/side_by_side/bench_text.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace ferry::bench::sbs {

std::string PgbenchFigure(const std::string& log, const std::string& label) {
  const size_t at = log.find(label);
  if (at == std::string::npos) return "";
  size_t end = at + label.size();
  while (end < log.size() && (isdigit(static_cast<unsigned char>(log[end])) || log[end] == '.')) {
    ++end;
  }
  return log.substr(at + label.size(), end - at - label.size());
}

std::optional<double> Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return std::nullopt;
  p = std::clamp(p, 0.0, 1.0);
  const double k = static_cast<double>(sorted.size() - 1) * p;
  const size_t f = static_cast<size_t>(k);
  const size_t c = std::min(f + 1, sorted.size() - 1);
  return sorted[f] + (sorted[c] - sorted[f]) * (k - static_cast<double>(f));
}

namespace {

// "HOST(PORT)" (PORT digits, HOST not empty) or "[local]": where a client backend's peer is.
bool IsClientAddress(absl::string_view w) {
  if (w == "[local]") return true;
  const size_t open = w.rfind('(');
  if (open == absl::string_view::npos || open == 0 || !absl::ConsumeSuffix(&w, ")")) return false;
  const absl::string_view port = w.substr(open + 1);
  return !port.empty() &&
         std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

PgRole PgRoleOfTitle(absl::string_view title) {
  if (!absl::ConsumePrefix(&title, "postgres: ")) return PgRole::kRest;  // the postmaster
  std::vector<absl::string_view> words = absl::StrSplit(title, ' ', absl::SkipEmpty());
  // With cluster_name set, every title starts with "NAME: ".
  if (!words.empty() && absl::EndsWith(words.front(), ":")) words.erase(words.begin());
  if (words.empty()) return PgRole::kRest;
  if (words[0] == "walsender") return PgRole::kWalsender;
  if (words.size() >= 3 && words[0] == "logical" && words[1] == "replication" &&
      words[2] != "launcher") {
    return PgRole::kReplicationWorker;
  }
  // A client backend's title is "USER DB HOST(PORT) ACTIVITY" ("[local]" on a socket); every
  // other process names itself ("checkpointer", "autovacuum worker DB", ...). A name with a
  // space in it moves the client further on.
  for (size_t i = 2; i < words.size(); ++i) {
    if (IsClientAddress(words[i])) return PgRole::kClientBackend;
  }
  return PgRole::kRest;
}

void NotifyLog::ReadNew() {
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset_));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();  // what was appended since the last complete line
  const size_t end = text.rfind('\n');
  if (end == std::string::npos) return;  // no complete new line yet
  for (absl::string_view line : absl::StrSplit(absl::string_view(text).substr(0, end), '\n')) {
    if (line == "ready") ready_ = true;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    int64_t micros = 0;
    if (f.size() != 3 || !absl::SimpleAtoi(f[2], &micros)) continue;  // stderr lines
    notes_.push_back({std::string(f[0]), std::string(f[1]), micros});
  }
  offset_ += end + 1;
}

bool NotifyLog::Ready() {
  ReadNew();
  return ready_;
}

std::optional<double> NotifyLog::LastSeen(const std::string& table, const std::string& payload) {
  ReadNew();
  const std::string channel = "bench_" + table;
  int64_t latest = 0;
  for (const Note& n : notes_) {
    if (n.channel == channel && (payload.empty() || n.payload == payload)) {
      latest = std::max(latest, n.micros);
    }
  }
  if (latest == 0) return std::nullopt;
  return static_cast<double>(latest) / 1e6;
}

std::map<std::string, double> NotifyLog::FirstSeenByPayload(const std::string& table) {
  ReadNew();
  const std::string channel = "bench_" + table;
  std::map<std::string, double> first;
  for (const Note& n : notes_) {
    if (n.channel == channel) first.emplace(n.payload, static_cast<double>(n.micros) / 1e6);
  }
  return first;
}

}  // namespace ferry::bench::sbs
