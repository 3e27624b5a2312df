#include "engine/admin/admin_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>

namespace ferry {
namespace {

class FakeBackend : public AdminBackend {
 public:
  v1::StatusReply Status() override {
    v1::StatusReply r;
    r.set_region("east");
    r.set_role("primary");
    r.set_epoch(3);
    r.set_paused(paused_);
    return r;
  }
  absl::StatusOr<bool> Pause() override {
    if (fail_) return absl::UnavailableError("cannot persist the paused state: disk full");
    return paused_.exchange(true);
  }
  absl::StatusOr<bool> Resume() override {
    if (fail_) return absl::UnavailableError("cannot persist the resumed state: disk full");
    return paused_.exchange(false);
  }
  absl::StatusOr<uint64_t> ResumeTable(const std::string& table) override {
    if (table == "public.stopped") return uint64_t{42};
    return absl::NotFoundError("table " + table + " is not stopped");
  }
  absl::StatusOr<v1::ReseedReply> Reseed(const std::string& discard_log_id) override {
    reseeds_.push_back(discard_log_id);
    v1::ReseedReply reply;
    reply.set_discarded_applied_seq(28276);
    reply.set_inbound_log_id("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    return reply;
  }
  absl::StatusOr<v1::ResnapshotReply> Resnapshot(const std::string& table) override {
    resnapshots_.push_back(table);
    if (table != "public.t") return absl::NotFoundError("no table " + table);
    v1::ResnapshotReply reply;
    reply.set_rows(1234);
    reply.set_id("00112233445566778899aabbccddeeff");
    return reply;
  }
  absl::Status Verify(const v1::VerifyRequest& request,
                      const std::function<void(const v1::VerifyEvent&)>& emit,
                      const std::function<bool()>&) override {
    verifies_.push_back(request);
    v1::VerifyEvent progress;
    progress.set_operation("verify-3-1");
    progress.mutable_table()->set_table("public.t");
    emit(progress);
    v1::VerifyEvent last;
    last.set_operation("verify-3-1");
    last.mutable_summary()->set_equal(true);
    emit(last);
    return absl::OkStatus();
  }
  std::atomic<bool> paused_{false};
  std::atomic<bool> fail_{false};
  std::vector<v1::VerifyRequest> verifies_;  // what reached the backend
  std::vector<std::string> reseeds_;         // what reached the backend
  std::vector<std::string> resnapshots_;     // what reached the backend
};

class AdminServiceTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& token) {
    service_ = std::make_unique<AdminService>(&backend_, token);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ =
        v1::Admin::NewStub(grpc::CreateChannel(absl_address(), grpc::InsecureChannelCredentials()));
  }
  std::string absl_address() const { return "127.0.0.1:" + std::to_string(port_); }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }
  static void WithToken(grpc::ClientContext* ctx, const std::string& token) {
    ctx->AddMetadata("authorization", "Bearer " + token);
  }

  FakeBackend backend_;
  std::unique_ptr<AdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Admin::Stub> stub_;
  int port_ = 0;
};

TEST_F(AdminServiceTest, StatusPassesTheBackendReplyThrough) {
  StartServer("");
  grpc::ClientContext ctx;
  v1::StatusReply reply;
  ASSERT_TRUE(stub_->Status(&ctx, v1::StatusRequest(), &reply).ok());
  EXPECT_EQ(reply.region(), "east");
  EXPECT_EQ(reply.epoch(), 3u);
}

TEST_F(AdminServiceTest, PauseAndResumeReportThePreviousState) {
  StartServer("");
  v1::PauseReply pause;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Pause(&ctx, v1::PauseRequest(), &pause).ok());
  }
  EXPECT_FALSE(pause.was_paused());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Pause(&ctx, v1::PauseRequest(), &pause).ok());
  }
  EXPECT_TRUE(pause.was_paused());
  v1::ResumeReply resume;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Resume(&ctx, v1::ResumeRequest(), &resume).ok());
  EXPECT_TRUE(resume.was_paused());
  EXPECT_FALSE(backend_.paused_);
}

TEST_F(AdminServiceTest, ResumeTableChecksTheNameAndPassesTheBackendAnswerThrough) {
  StartServer("");
  auto call = [&](const std::string& table, v1::ResumeTableReply* reply) {
    grpc::ClientContext ctx;
    v1::ResumeTableRequest request;
    request.set_table(table);
    return stub_->ResumeTable(&ctx, request, reply);
  };
  v1::ResumeTableReply reply;
  ASSERT_TRUE(call("public.stopped", &reply).ok());
  EXPECT_EQ(reply.resumed_from_seq(), 42u);
  EXPECT_EQ(call("public.running", &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  for (const std::string& bad : {std::string(), std::string("nodot"), std::string(".t"),
                                 std::string("s."), std::string(2000, 'x') + ".t"}) {
    EXPECT_EQ(call(bad, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.size();
  }
}

// A re-snapshot takes a lock on the primary: a name without the outline of schema.name (or with
// a NUL) never reaches the backend; the backend's answer and refusal pass through.
TEST_F(AdminServiceTest, ResnapshotChecksTheNameAndPassesTheBackendAnswerThrough) {
  StartServer("");
  auto call = [&](const std::string& table, v1::ResnapshotReply* reply) {
    grpc::ClientContext ctx;
    v1::ResnapshotRequest request;
    request.set_table(table);
    return stub_->Resnapshot(&ctx, request, reply);
  };
  for (const std::string& bad :
       {std::string(), std::string("nodot"), std::string(".t"), std::string("s."),
        std::string(2000, 'x') + ".t", std::string("public.t\0x", 10)}) {
    v1::ResnapshotReply reply;
    EXPECT_EQ(call(bad, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.size();
  }
  EXPECT_TRUE(backend_.resnapshots_.empty());
  v1::ResnapshotReply reply;
  ASSERT_TRUE(call("public.t", &reply).ok());
  EXPECT_EQ(reply.table(), "public.t");
  EXPECT_EQ(reply.rows(), 1234u);
  EXPECT_EQ(reply.id(), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(call("public.x'; DROP TABLE t; --", &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(backend_.resnapshots_,
            (std::vector<std::string>{"public.t", "public.x'; DROP TABLE t; --"}));
}

TEST_F(AdminServiceTest, VerifyChecksTheTablesAndStreamsTheBackendsEvents) {
  StartServer("tok");
  auto call = [&](const std::vector<std::string>& tables, const std::string& token,
                  std::vector<v1::VerifyEvent>* events) {
    grpc::ClientContext ctx;
    if (!token.empty()) WithToken(&ctx, token);
    v1::VerifyRequest request;
    for (const auto& t : tables) request.add_tables(t);
    auto reader = stub_->Verify(&ctx, request);
    v1::VerifyEvent event;
    while (reader->Read(&event)) events->push_back(event);
    return reader->Finish();
  };
  std::vector<v1::VerifyEvent> events;
  EXPECT_EQ(call({"public.t"}, "wrong", &events).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  for (const std::string& bad : {std::string("nodot"), std::string(".t"), std::string("s."),
                                 std::string(2000, 'x') + ".t", std::string("public.t\0x", 10)}) {
    EXPECT_EQ(call({"public.ok", bad}, "tok", &events).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << bad.size();
  }
  EXPECT_EQ(call(std::vector<std::string>(10001, "public.t"), "tok", &events).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(backend_.verifies_.empty());
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(call({"public.t"}, "tok", &events).ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].table().table(), "public.t");
  EXPECT_TRUE(events[1].summary().equal());
  ASSERT_EQ(backend_.verifies_.size(), 1u);
}

// Regression: a pause whose persistence failed was reported as done.
// A re-seed discards progress: only a well-formed log id (or "unrecorded") reaches the backend.
TEST_F(AdminServiceTest, ReseedChecksTheLogIdAndPassesTheBackendAnswerThrough) {
  StartServer("");
  auto call = [&](const std::string& id, v1::ReseedReply* reply) {
    grpc::ClientContext ctx;
    v1::ReseedRequest request;
    request.set_discard_log_id(id);
    return stub_->Reseed(&ctx, request, reply);
  };
  for (const std::string& bad :
       {std::string(), std::string(31, 'a'), std::string(33, 'a'), std::string(1 << 16, 'a'),
        std::string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), std::string("unrecorded "),
        std::string("'; DROP TABLE t; --")}) {
    v1::ReseedReply reply;
    EXPECT_EQ(call(bad, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.size();
  }
  EXPECT_TRUE(backend_.reseeds_.empty());
  v1::ReseedReply reply;
  ASSERT_TRUE(call("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &reply).ok());
  EXPECT_EQ(reply.discarded_log_id(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(reply.discarded_applied_seq(), 28276u);
  EXPECT_EQ(reply.inbound_log_id(), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  ASSERT_TRUE(call("unrecorded", &reply).ok());
  EXPECT_EQ(reply.discarded_log_id(), "unrecorded");
  EXPECT_EQ(backend_.reseeds_, (std::vector<std::string>{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ""}));
}

TEST_F(AdminServiceTest, PauseThatCouldNotBePersistedIsReportedAsFailed) {
  StartServer("");
  backend_.fail_ = true;
  v1::PauseReply pause;
  grpc::ClientContext ctx;
  const grpc::Status s = stub_->Pause(&ctx, v1::PauseRequest(), &pause);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("disk full"), std::string::npos) << s.error_message();
  v1::ResumeReply resume;
  grpc::ClientContext ctx2;
  EXPECT_EQ(stub_->Resume(&ctx2, v1::ResumeRequest(), &resume).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AdminServiceTest, MissingOrWrongTokenIsRefusedAndChangesNothing) {
  StartServer("s3cret-token");
  v1::PauseReply reply;
  {
    grpc::ClientContext ctx;
    auto s = stub_->Pause(&ctx, v1::PauseRequest(), &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  for (const std::string& bad :
       std::vector<std::string>{"s3cret-toke", "s3cret-token2", "", std::string(3000, 'x')}) {
    grpc::ClientContext ctx;
    WithToken(&ctx, bad);
    auto s = stub_->Pause(&ctx, v1::PauseRequest(), &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << bad.size();
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Basic s3cret-token");
    EXPECT_EQ(stub_->Pause(&ctx, v1::PauseRequest(), &reply).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_FALSE(backend_.paused_);
  grpc::ClientContext ctx;
  WithToken(&ctx, "s3cret-token");
  EXPECT_TRUE(stub_->Pause(&ctx, v1::PauseRequest(), &reply).ok());
  EXPECT_TRUE(backend_.paused_);
}

TEST_F(AdminServiceTest, OversizedTokenIsRefusedAndChangesNothing) {
  StartServer("s3cret-token");
  grpc::ClientContext ctx;
  WithToken(&ctx, std::string(100000, 'x'));  // beyond gRPC's metadata limit
  v1::PauseReply reply;
  EXPECT_FALSE(stub_->Pause(&ctx, v1::PauseRequest(), &reply).ok());
  EXPECT_FALSE(backend_.paused_);
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace ferry
