// Enumerations in the config: a key whose value is one of a fixed set of names ("primary",
// "standby"). Each enum type names its values once, by specialising EnumNames; readers and
// dumps then handle every enum through EnumRef, without code per type.
//
// Example (a connector's own enum, in its own .cc):
//   enum class StorageClass { kStandard, kArchive };
//   template <>
//   struct ferry::config::EnumNames<StorageClass> {
//     static constexpr StorageClass kValues[] = {StorageClass::kStandard, StorageClass::kArchive};
//     static absl::string_view Name(StorageClass c) {
//       return c == StorageClass::kStandard ? "standard" : "archive";
//     }
//   };
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace ferry::config {

// Specialise with `static constexpr E kValues[]` (every value, in the order messages list them)
// and `static absl::string_view Name(E)` (the config's spelling).
template <typename E>
struct EnumNames;

// A field of some enumeration type E with EnumNames<E>, type-erased. Values are addressed by
// their index in EnumNames<E>::kValues. Does not own the field.
class EnumRef {
 public:
  template <typename E>
  explicit EnumRef(E* field) : field_(field), ops_(&OpsFor<E>()) {}

  // Every name, in the order of kValues.
  std::span<const absl::string_view> names() const { return ops_->names(); }
  // The name of the field's current value.
  absl::string_view current() const { return names()[ops_->get(field_)]; }
  // Sets the field to the value at `index` of names(). REQUIRES: index < names().size().
  void Set(size_t index) const { ops_->set(field_, index); }

 private:
  struct Ops {
    std::span<const absl::string_view> (*names)();
    size_t (*get)(const void* field);
    void (*set)(void* field, size_t index);
  };

  template <typename E>
  static const Ops& OpsFor() {
    static const Ops ops = {
        [] {
          static const std::vector<absl::string_view> names = [] {
            std::vector<absl::string_view> v;
            for (E e : EnumNames<E>::kValues) v.push_back(EnumNames<E>::Name(e));
            return v;
          }();
          return std::span<const absl::string_view>(names);
        },
        [](const void* field) -> size_t {
          const E value = *static_cast<const E*>(field);
          size_t i = 0;
          while (i + 1 < std::size(EnumNames<E>::kValues) && EnumNames<E>::kValues[i] != value) ++i;
          return i;
        },
        [](void* field, size_t index) { *static_cast<E*>(field) = EnumNames<E>::kValues[index]; },
    };
    return ops;
  }

  void* field_;
  const Ops* ops_;
};

}  // namespace ferry::config
