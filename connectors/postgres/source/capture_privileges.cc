#include "connectors/postgres/source/capture_privileges.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/common/identifiers.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {
namespace {

absl::Status Missing(const std::string& role, const std::string& what, const std::string& fix) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the capture role ", QuoteIdentifier(role), " ", what, "; as a superuser run: ", fix,
      " (the privileges capture needs: connectors/postgres/source/README.md)"));
}

}  // namespace

absl::Status CheckCapturePrivileges(PgConnection& conn, const CaptureNeeds& needs) {
  FERRY_ASSIGN_OR_RETURN(
      PgResult who,
      conn.Exec("SELECT current_user, r.rolsuper, r.rolreplication, current_database() "
                "FROM pg_roles r WHERE r.rolname = current_user"));
  if (who.rows() != 1) {
    return absl::FailedPreconditionError("the capture role is not in pg_roles");
  }
  const std::string role(who.Get(0, 0));
  const bool superuser = who.Get(0, 1) == "t";
  const bool replication = who.Get(0, 2) == "t";
  const std::string database(who.Get(0, 3));
  if (superuser) return absl::OkStatus();
  if (!replication) {
    return Missing(role,
                   "lacks the REPLICATION attribute (needed to open the replication connection "
                   "and to create and read the replication slot)",
                   absl::StrCat("ALTER ROLE ", QuoteIdentifier(role), " REPLICATION"));
  }

  FERRY_ASSIGN_OR_RETURN(
      PgResult pub,
      conn.ExecParams("SELECT 1 FROM pg_publication WHERE pubname = $1", {needs.publication}));
  if (pub.rows() == 0) {
    if (needs.tables.empty()) {
      return Missing(
          role,
          absl::StrCat("cannot create the publication ", QuoteIdentifier(needs.publication),
                       " FOR ALL TABLES (only a superuser can)"),
          absl::StrCat("CREATE PUBLICATION ", QuoteIdentifier(needs.publication),
                       " FOR ALL TABLES WITH (publish_via_partition_root = true)"));
    }
    FERRY_ASSIGN_OR_RETURN(
        PgResult create, conn.Exec("SELECT has_database_privilege(current_database(), 'CREATE')"));
    if (create.rows() != 1 || create.Get(0, 0) != "t") {
      return Missing(
          role,
          absl::StrCat("cannot create the publication ", QuoteIdentifier(needs.publication),
                       ": it lacks CREATE on database ", QuoteIdentifier(database)),
          absl::StrCat("GRANT CREATE ON DATABASE ", QuoteIdentifier(database), " TO ",
                       QuoteIdentifier(role)));
    }
    std::vector<std::string> not_owned;
    for (const std::string& t : needs.tables) {
      const size_t dot = t.find('.');
      const std::string qualified = dot == std::string::npos
                                        ? QuoteIdentifier(t)
                                        : QualifiedName(t.substr(0, dot), t.substr(dot + 1));
      FERRY_ASSIGN_OR_RETURN(
          PgResult owner, conn.ExecParams("SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
                                          "WHERE c.oid = to_regclass($1)",
                                          {qualified}));
      // A table that does not exist is CREATE PUBLICATION's own error, with its name.
      if (owner.rows() == 1 && owner.Get(0, 0) != "t") not_owned.push_back(qualified);
    }
    if (!not_owned.empty()) {
      return Missing(
          role,
          absl::StrCat("cannot create the publication ", QuoteIdentifier(needs.publication),
                       ": it does not own table(s) ", absl::StrJoin(not_owned, ", ")),
          absl::StrCat("CREATE PUBLICATION ", QuoteIdentifier(needs.publication), " FOR TABLE ",
                       absl::StrJoin(not_owned, ", "),
                       " WITH (publish_via_partition_root = true)"));
    }
  }

  if (!needs.snapshot || pub.rows() == 0) return absl::OkStatus();
  // SELECT on every published table (and USAGE on its schema): the initial snapshot reads them.
  FERRY_ASSIGN_OR_RETURN(
      PgResult unreadable,
      conn.ExecParams("SELECT quote_ident(n.nspname), quote_ident(c.relname), "
                      "has_schema_privilege(n.oid, 'USAGE') "
                      "FROM pg_get_publication_tables($1) t JOIN pg_class c ON c.oid = t.relid "
                      "JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname <> 'ferry' AND (NOT has_schema_privilege(n.oid, 'USAGE') "
                      "OR NOT has_table_privilege(c.oid, 'SELECT')) ORDER BY 1, 2",
                      {needs.publication}));
  if (unreadable.rows() == 0) return absl::OkStatus();
  const std::string schema(unreadable.Get(0, 0)), table(unreadable.Get(0, 1));
  if (unreadable.Get(0, 2) != "t") {
    return Missing(
        role,
        absl::StrCat("cannot read schema ", schema, " for the initial snapshot (USAGE is missing)"),
        absl::StrCat("GRANT USAGE ON SCHEMA ", schema, " TO ", QuoteIdentifier(role)));
  }
  std::vector<std::string> tables;
  for (int i = 0; i < unreadable.rows() && i < 20; ++i) {
    tables.push_back(absl::StrCat(unreadable.Get(i, 0), ".", unreadable.Get(i, 1)));
  }
  return Missing(
      role,
      absl::StrCat("cannot read ", unreadable.rows(),
                   " published table(s) for the initial snapshot (SELECT is missing)"),
      absl::StrCat("GRANT SELECT ON ", absl::StrJoin(tables, ", "), " TO ", QuoteIdentifier(role)));
}

}  // namespace ferry::pg
