// S3Client's listing, multipart and bucket-notification calls (s3_client.h); the transport
// and the object calls are in s3_client.cc.
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "connectors/s3/s3_client.h"
#include "connectors/s3/s3_request.h"
#include "connectors/s3/sigv4.h"
#include "connectors/s3/xml_scan.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {

using internal::AddPutHeaders;
using internal::CheckKey;
using internal::Unquote;

absl::StatusOr<ListPage> S3Client::ListObjectsV2(const std::string& bucket,
                                                 const std::string& prefix,
                                                 const std::string& continuation_token,
                                                 int max_keys) {
  Request request{.method = "GET",
                  .bucket = bucket,
                  .query = {{"list-type", "2"}, {"max-keys", absl::StrCat(max_keys)}}};
  if (!prefix.empty()) request.query.emplace_back("prefix", prefix);
  if (!continuation_token.empty()) {
    request.query.emplace_back("continuation-token", continuation_token);
  }
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  ListPage page;
  for (const XmlElement& e : XmlChildren(r.body, {"Contents"})) {
    ListedObject o{.key = XmlText(e.inner, "Key"),
                   .etag = Unquote(XmlText(e.inner, "ETag")),
                   .last_modified = XmlText(e.inner, "LastModified")};
    (void)absl::SimpleAtoi(XmlText(e.inner, "Size"), &o.size);
    page.objects.push_back(std::move(o));
  }
  if (XmlText(r.body, "IsTruncated") == "true") {
    page.next_continuation_token = XmlText(r.body, "NextContinuationToken");
    if (page.next_continuation_token.empty()) {
      return absl::DataLossError(
          absl::StrCat(request.what(), ": a truncated listing without a continuation"));
    }
  }
  return page;
}

absl::StatusOr<VersionsPage> S3Client::ListObjectVersions(const std::string& bucket,
                                                          const std::string& prefix,
                                                          const std::string& key_marker,
                                                          const std::string& version_id_marker,
                                                          int max_keys) {
  Request request{.method = "GET",
                  .bucket = bucket,
                  .query = {{"versions", ""}, {"max-keys", absl::StrCat(max_keys)}}};
  if (!prefix.empty()) request.query.emplace_back("prefix", prefix);
  if (!key_marker.empty()) request.query.emplace_back("key-marker", key_marker);
  if (!version_id_marker.empty()) {
    request.query.emplace_back("version-id-marker", version_id_marker);
  }
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  VersionsPage page;
  for (const XmlElement& e : XmlChildren(r.body, {"Version", "DeleteMarker"})) {
    ListedVersion v{.key = XmlText(e.inner, "Key"),
                    .version_id = XmlText(e.inner, "VersionId"),
                    .is_latest = XmlText(e.inner, "IsLatest") == "true",
                    .delete_marker = e.name == "DeleteMarker",
                    .etag = Unquote(XmlText(e.inner, "ETag")),
                    .last_modified = XmlText(e.inner, "LastModified")};
    (void)absl::SimpleAtoi(XmlText(e.inner, "Size"), &v.size);
    page.versions.push_back(std::move(v));
  }
  page.truncated = XmlText(r.body, "IsTruncated") == "true";
  page.next_key_marker = XmlText(r.body, "NextKeyMarker");
  page.next_version_id_marker = XmlText(r.body, "NextVersionIdMarker");
  return page;
}

absl::StatusOr<std::string> S3Client::CreateMultipartUpload(const std::string& bucket,
                                                            const std::string& key,
                                                            const PutOptions& options) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  if (!options.content_md5.empty()) {
    return absl::InvalidArgumentError("a multipart upload has no single Content-MD5");
  }
  Request request{.method = "POST", .bucket = bucket, .key = key, .query = {{"uploads", ""}}};
  FERRY_RETURN_IF_ERROR(AddPutHeaders(options, &request.headers));
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  std::string id = XmlText(r.body, "UploadId");
  if (id.empty()) {
    return absl::DataLossError(absl::StrCat(request.what(), ": no UploadId in the answer"));
  }
  return id;
}

absl::StatusOr<std::string> S3Client::UploadPart(const std::string& bucket, const std::string& key,
                                                 const std::string& upload_id, int number,
                                                 std::string_view body) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  FERRY_ASSIGN_OR_RETURN(
      Response r,
      Send(Request{.method = "PUT",
                   .bucket = bucket,
                   .key = key,
                   .query = {{"partNumber", absl::StrCat(number)}, {"uploadId", upload_id}},
                   .body = body}));
  return Unquote(r.header("etag"));
}

absl::StatusOr<PutResult> S3Client::CompleteMultipartUpload(
    const std::string& bucket, const std::string& key, const std::string& upload_id,
    const std::vector<CompletedPart>& parts) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  std::string body = "<CompleteMultipartUpload>";
  for (const CompletedPart& p : parts) {
    absl::StrAppend(&body, "<Part><PartNumber>", p.number, "</PartNumber><ETag>\"",
                    XmlEscape(p.etag), "\"</ETag></Part>");
  }
  body += "</CompleteMultipartUpload>";
  FERRY_ASSIGN_OR_RETURN(Response r, Send(Request{.method = "POST",
                                                  .bucket = bucket,
                                                  .key = key,
                                                  .query = {{"uploadId", upload_id}},
                                                  .headers = {{"content-type", "application/xml"}},
                                                  .body = body}));
  // S3 may answer 200 with an <Error> body once the assembly has started.
  if (!XmlText(r.body, "Code").empty() && XmlText(r.body, "ETag").empty()) {
    return absl::UnavailableError(
        absl::StrCat("complete multipart ", bucket, "/", key, ": ", XmlText(r.body, "Code")));
  }
  PutResult result{.etag = Unquote(XmlText(r.body, "ETag")),
                   .version_id = r.header("x-amz-version-id")};
  if (result.etag.empty()) {
    // radosgw 16 answers <ETag></ETag> on a versioned bucket: ask for the version made.
    FERRY_ASSIGN_OR_RETURN(ObjectInfo info, HeadObject(bucket, key, result.version_id));
    result.etag = info.etag;
    if (result.version_id.empty()) result.version_id = info.version_id;
  }
  return result;
}

absl::Status S3Client::AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                            const std::string& upload_id) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  absl::StatusOr<Response> r = Send(Request{
      .method = "DELETE", .bucket = bucket, .key = key, .query = {{"uploadId", upload_id}}});
  if (!r.ok() && r.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  return r.status();
}

}  // namespace ferry::s3

namespace ferry::s3 {

absl::StatusOr<std::vector<std::string>> S3Client::ListMultipartUploads(const std::string& bucket,
                                                                        const std::string& key) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  FERRY_ASSIGN_OR_RETURN(Response r, Send(Request{.method = "GET",
                                                  .bucket = bucket,
                                                  .query = {{"uploads", ""}, {"prefix", key}}}));
  std::vector<std::string> ids;
  for (const XmlElement& e : XmlChildren(r.body, {"Upload"})) {
    if (XmlText(e.inner, "Key") == key) ids.push_back(XmlText(e.inner, "UploadId"));
  }
  return ids;
}

absl::StatusOr<std::string> S3Client::CreateTopic(const std::string& name,
                                                  const std::string& push_endpoint) {
  const std::string body = CanonicalQuery({{"Action", "CreateTopic"},
                                           {"Name", name},
                                           {"Attributes.entry.1.key", "push-endpoint"},
                                           {"Attributes.entry.1.value", push_endpoint}});
  FERRY_ASSIGN_OR_RETURN(
      Response r, Send(Request{.method = "POST",
                               .headers = {{"content-type", "application/x-www-form-urlencoded"}},
                               .body = body}));
  std::string arn = XmlText(r.body, "TopicArn");
  if (arn.empty()) return absl::DataLossError("CreateTopic: no TopicArn in the answer");
  return arn;
}

absl::Status S3Client::PutBucketNotification(const std::string& bucket, const std::string& id,
                                             const std::string& topic_arn) {
  const std::string body = absl::StrCat(
      "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<TopicConfiguration><Id>",
      XmlEscape(id), "</Id><Topic>", XmlEscape(topic_arn),
      "</Topic><Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event>"
      "</TopicConfiguration></NotificationConfiguration>");
  return Send(Request{.method = "PUT",
                      .bucket = bucket,
                      .query = {{"notification", ""}},
                      .headers = {{"content-type", "application/xml"}},
                      .body = body})
      .status();
}

}  // namespace ferry::s3
