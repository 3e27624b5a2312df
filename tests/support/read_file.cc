#include "tests/support/read_file.h"

#include <fstream>
#include <sstream>

namespace ferry::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadFileFrom(const std::string& path, size_t offset) {
  const std::string text = ReadFile(path);
  return text.size() > offset ? text.substr(offset) : "";
}

std::string Tail(const std::string& text, size_t max_bytes) {
  return text.size() <= max_bytes ? text : "..." + text.substr(text.size() - max_bytes);
}

}  // namespace ferry::testing
