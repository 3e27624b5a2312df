#include "connectors/postgres/common/type_names.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ferry::pg {

absl::StatusOr<std::vector<std::string>> TypeNameCache::Resolve(PgConnection& conn,
                                                                const std::vector<TypeRef>& refs) {
  std::vector<TypeRef> missing;
  {
    absl::MutexLock lock(&mu_);
    for (const TypeRef& r : refs) {
      if (!names_.contains(r)) missing.push_back(r);
    }
  }
  if (!missing.empty()) {
    std::vector<std::string> oids, mods;
    for (const TypeRef& r : missing) {
      oids.push_back(absl::StrCat(r.oid));
      mods.push_back(absl::StrCat(r.typmod));
    }
    auto result = conn.ExecParams(
        "SELECT format_type(o, NULLIF(m, -1)) FROM unnest($1::oid[], $2::int4[]) "
        "WITH ORDINALITY AS u(o, m, n) ORDER BY n",
        {absl::StrCat("{", absl::StrJoin(oids, ","), "}"),
         absl::StrCat("{", absl::StrJoin(mods, ","), "}")});
    if (!result.ok()) return result.status();
    if (result->rows() != static_cast<int>(missing.size())) {
      return absl::InternalError("format_type returned an unexpected number of rows");
    }
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < missing.size(); ++i) {
      names_[missing[i]] = std::string(result->Get(static_cast<int>(i), 0));
    }
  }
  std::vector<std::string> out;
  out.reserve(refs.size());
  absl::MutexLock lock(&mu_);
  for (const TypeRef& r : refs) out.push_back(names_.at(r));
  return out;
}

size_t TypeNameCache::size() const {
  absl::MutexLock lock(&mu_);
  return names_.size();
}

}  // namespace ferry::pg
