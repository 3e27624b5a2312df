#include "engine/config/key_table.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ferry::config {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

absl::Status ReadKey(const Section& section, const KeyInfo& info, const FieldRef& field) {
  return std::visit(
      Overloaded{
          [&](std::string* v) { return section.GetString(info.name, info.need, info.check, v); },
          [&](std::vector<std::string>* v) {
            return section.GetStringList(info.name, info.list, v);
          },
          [&](bool* v) { return section.GetBool(info.name, v); },
          [&](int* v) {
            return section.GetInt(info.name, static_cast<int>(info.min), static_cast<int>(info.max),
                                  v);
          },
          [&](int64_t* v) { return section.GetInt(info.name, info.min, info.max, v); },
          [&](uint64_t* v) {
            return section.GetSize(info.name, static_cast<uint64_t>(info.min),
                                   static_cast<uint64_t>(info.max), v);
          },
          [&](HostPort* v) {
            return section.GetHostPort(info.name, info.need, info.allow_port_0, v);
          },
          [&](Secret* v) { return section.GetSecret(info.name, v); },
          [&](const EnumRef& v) { return section.GetEnum(info.name, info.need, v); },
      },
      field);
}

void AppendYamlKeys(const KeyInfo& info, const FieldRef& field, std::vector<std::string>* out) {
  if (std::holds_alternative<Secret*>(field)) {
    out->push_back(absl::StrCat(info.name, "_file"));
    out->push_back(absl::StrCat(info.name, "_env"));
  } else {
    out->emplace_back(info.name);
  }
}

std::string DumpLine(const KeyInfo& info, const FieldRef& field) {
  const std::string value =
      std::visit(Overloaded{
                     [&](std::string* v) -> std::string {
                       if (v->empty() && !info.empty_text.empty())
                         return std::string(info.empty_text);
                       return info.quoted ? absl::StrCat("\"", absl::CEscape(*v), "\"") : *v;
                     },
                     [](std::vector<std::string>* v) {
                       return absl::StrCat("[", absl::StrJoin(*v, ", "), "]");
                     },
                     [](bool* v) { return std::string(*v ? "true" : "false"); },
                     [](int* v) { return absl::StrCat(*v); },
                     [](int64_t* v) { return absl::StrCat(*v); },
                     [](uint64_t* v) { return FormatBytes(*v); },
                     [](HostPort* v) { return v->ToString(); },
                     [](Secret* v) { return v->Masked(); },
                     [](const EnumRef& v) { return std::string(v.current()); },
                 },
                 field);
  return absl::StrCat(info.name, ": ", value);
}

}  // namespace ferry::config
