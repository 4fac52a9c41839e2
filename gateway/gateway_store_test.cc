// The gateway with a store: its size limit (flag or manifest), the
// "store full" answer to clients, recovery without a restart once a
// consumer drains, and the store's Prometheus counters.

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/client.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "store/fault_fs.h"

namespace edgeroute {
namespace gateway {
namespace {

constexpr char kDevice[] = "edge-1";

// LIMIT is replaced by a storeLimits member (or nothing).
constexpr char kManifest[] = R"json({
  "schemaVersion": "1.1",
  "routes": {
    "toFilter": "FROM /messages/modules/sensor/outputs/* INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")"
  },
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200 LIMIT}
})json";

std::string Manifest(absl::string_view limit) {
  return absl::StrReplaceAll(kManifest, {{"LIMIT", limit}});
}

std::string Message(int n) {
  MessageBuilder builder;
  builder.SetBody(
      absl::StrCat("{\"n\":", n, ",\"pad\":\"", std::string(200, 'x'), "\"}"));
  builder.AddProperty("n", absl::StrCat(n));
  absl::Span<const uint8_t> b = builder.Finish();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

std::string TempDir(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : ".", "/", name);
  EXPECT_EQ(std::system(absl::StrCat("rm -rf '", path, "'").c_str()), 0);
  return path;
}

class GatewayStoreTest : public ::testing::Test {
 protected:
  void Start(GatewayOptions options) {
    options.device_id = kDevice;
    options.tcp_port = 0;
    options.metrics_port = -1;
    auto gateway = Gateway::Create(options);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = std::move(*gateway);
    ASSERT_TRUE(gateway_->Start().ok());
  }
  void TearDown() override {
    if (gateway_ != nullptr) {
      EXPECT_TRUE(gateway_->Shutdown().ok());
    }
  }
  std::unique_ptr<Client> Connect(absl::string_view module) {
    auto client =
        Client::Connect(absl::StrCat("tcp:127.0.0.1:", gateway_->tcp_port()));
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    absl::Status hello = (*client)->Hello(kDevice, module);
    EXPECT_TRUE(hello.ok()) << hello;
    return std::move(*client);
  }
  // Sends message n and waits for its TelemetryAck; true if accepted.
  bool SendOne(Client* sensor, int n) {
    const uint64_t refused = sensor->acks_refused();
    EXPECT_TRUE(sensor->SendTelemetry("out", AsBytes(Message(n)), true).ok());
    EXPECT_TRUE(sensor->WaitForAcks(sensor->acks_received() + 1).ok());
    return sensor->acks_refused() == refused;
  }

  // The "filter" module subscribes and receives and acks messages
  // 0..count-1 in order; then the sensor sends message `next` until the
  // store takes it -- checkpoints follow the acks asynchronously, and a
  // full store's append path runs the cleanup -- retrying every `pause`
  // for up to `within`; the filter receives and acks it too.
  void DrainThenAppendAgain(Client* sensor, int count, int next,
                            absl::Duration within, absl::Duration pause,
                            std::unique_ptr<Client>* filter) {
    *filter = Connect("filter");
    ASSERT_NE(*filter, nullptr);
    ASSERT_TRUE((*filter)->Subscribe({"input1"}).ok());
    for (int n = 0; n < count; ++n) {
      auto d = (*filter)->Receive(10000);
      ASSERT_TRUE(d.ok()) << n << ": " << d.status();
      ASSERT_EQ(d->message.FindProperty("n").value, absl::StrCat(n));
      ASSERT_TRUE((*filter)->Ack(d->delivery_id).ok());
    }
    ASSERT_TRUE((*filter)->Flush().ok());
    const absl::Time deadline = absl::Now() + within;
    bool resumed = false;
    while (!resumed && absl::Now() < deadline) {
      resumed = SendOne(sensor, next);
      if (!resumed) absl::SleepFor(pause);
    }
    ASSERT_TRUE(resumed) << "appends did not resume after the module drained";
    auto d = (*filter)->Receive(10000);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->message.FindProperty("n").value, absl::StrCat(next));
    ASSERT_TRUE((*filter)->Ack(d->delivery_id).ok());
    ASSERT_TRUE((*filter)->Flush().ok());
  }

  std::unique_ptr<Gateway> gateway_;
};

TEST(ChooseStoreLimitTest, FlagWinsOverManifest) {
  EXPECT_EQ(ChooseStoreLimit(5000, 9000).max_bytes, 5000u);
  EXPECT_EQ(ChooseStoreLimit(5000, 9000).source, "--store-max-bytes");
  EXPECT_EQ(ChooseStoreLimit(0, 9000).max_bytes, 0u);  // 0 = no limit
  EXPECT_EQ(ChooseStoreLimit(std::nullopt, 9000).max_bytes, 9000u);
  EXPECT_NE(ChooseStoreLimit(std::nullopt, 9000).source.find("maxSizeBytes"),
            std::string::npos);
  EXPECT_EQ(ChooseStoreLimit(std::nullopt, std::nullopt).max_bytes, 0u);
}

// The manifest's storeLimits.maxSizeBytes is enforced: the producer gets
// kStoreFull (not kOverloaded, not kBadFrame); once the consumer drains,
// appends are accepted again with no restart.
TEST_F(GatewayStoreTest, ManifestLimitIsEnforcedAndAppendsResumeAfterDrain) {
  GatewayOptions options;
  options.manifest_json =
      Manifest(", \"storeLimits\": {\"maxSizeBytes\": 3000}");
  options.store_dir = TempDir("manifest-limit");
  Start(options);
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  int accepted = 0;
  for (int n = 0; n < 100 && SendOne(sensor.get(), n); ++n) ++accepted;
  EXPECT_GT(accepted, 0);
  ASSERT_LT(accepted, 100) << "the manifest's limit was not enforced";
  EXPECT_EQ(sensor->last_refusal(), fb::ErrorCode::kStoreFull);
  absl::StatusOr<store::Store::Stats> stats = gateway_->StoreStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_LE(stats->stored_bytes, 3000u);
  EXPECT_GE(stats->rejected_full, 1u);
  const std::string metrics = gateway_->PrometheusText();
  EXPECT_NE(metrics.find("edgeroute_store_rejected_full_total "),
            std::string::npos);
  EXPECT_NE(metrics.find("edgeroute_store_errors_total{op=\"append\"} 0"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("edgeroute_store_quarantined_total 0"),
            std::string::npos);

  // The consumer drains the store; appends are accepted again.
  std::unique_ptr<Client> filter;
  DrainThenAppendAgain(sensor.get(), accepted, 1000, absl::Seconds(20),
                       absl::Milliseconds(20), &filter);
}

// --store-max-bytes (GatewayOptions::store_max_bytes) wins over the
// manifest: 0 lifts the manifest's limit.
TEST_F(GatewayStoreTest, FlagOverridesTheManifestLimit) {
  GatewayOptions options;
  options.manifest_json =
      Manifest(", \"storeLimits\": {\"maxSizeBytes\": 3000}");
  options.store_dir = TempDir("flag-limit");
  options.store_max_bytes = 0;
  options.store_durability = store::Durability::kPower;
  Start(options);
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  for (int n = 0; n < 40; ++n) ASSERT_TRUE(SendOne(sensor.get(), n)) << n;
}

// And a flag limit applies without any in the manifest.
TEST_F(GatewayStoreTest, FlagLimitAppliesWithoutManifestLimit) {
  GatewayOptions options;
  options.manifest_json = Manifest("");
  options.store_dir = TempDir("flag-only-limit");
  options.store_max_bytes = 2000;
  Start(options);
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  int accepted = 0;
  for (int n = 0; n < 40 && SendOne(sensor.get(), n); ++n) ++accepted;
  EXPECT_LT(accepted, 40);
  EXPECT_EQ(sensor->last_refusal(), fb::ErrorCode::kStoreFull);
}

// The disk fills up under the store (a fault-injecting file system whose
// deleted files give their space back): producers get kStoreFull, the
// module still drains what was stored, and its acknowledgements
// (checkpoints) and the cleanup they allow free space so that appends go
// on -- no restart.
TEST_F(GatewayStoreTest, FullDiskGivesStoreFullAndRecoversAfterDrain) {
  auto fs = std::make_shared<store::FaultFileSystem>();
  fs->SetDeletesFreeSpace(true);
  std::unique_ptr<rocksdb::Env> env = store::NewFaultEnv(fs);
  GatewayOptions options;
  options.manifest_json = Manifest("");
  options.store_dir = TempDir("full-disk");
  options.store_env = env.get();
  Start(options);
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  // What is left on the disk: enough that what the module drains frees
  // more than a quarter of the store's 4 MiB reserve (the margin it wants
  // before it takes the reserve back).
  fs->SetBudget(2 << 20);
  int accepted = 0;
  for (int n = 0; n < 40000 && SendOne(sensor.get(), n); ++n) ++accepted;
  ASSERT_GT(accepted, 0);
  ASSERT_LT(accepted, 40000) << "the disk never filled";
  EXPECT_EQ(sensor->last_refusal(), fb::ErrorCode::kStoreFull);
  absl::StatusOr<store::Store::Stats> stats = gateway_->StoreStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->append_errors, 1u);
  EXPECT_EQ(gateway_->PrometheusText().find(
                "edgeroute_store_errors_total{op=\"append\"} 0\n"),
            std::string::npos);

  std::unique_ptr<Client> filter;
  DrainThenAppendAgain(sensor.get(), accepted, 100000, absl::Seconds(30),
                       absl::Milliseconds(50), &filter);
  ASSERT_FALSE(HasFatalFailure()) << "budget " << fs->budget();
  ASSERT_TRUE(gateway_->Shutdown().ok());
  gateway_.reset();  // Before the environment goes.
}

// A stored message whose bytes were damaged on disk is quarantined; the
// module still gets every other message, in order, and Prometheus counts it.
TEST_F(GatewayStoreTest, CorruptStoredMessageIsSkippedAndLaterOnesDeliver) {
  GatewayOptions options;
  options.manifest_json = Manifest("");
  options.store_dir = TempDir("corrupt");
  Start(options);
  {
    auto sensor = Connect("sensor");
    ASSERT_NE(sensor, nullptr);
    for (int n = 0; n < 6; ++n) ASSERT_TRUE(SendOne(sensor.get(), n));
  }
  ASSERT_TRUE(gateway_->Shutdown().ok());
  gateway_.reset();
  {
    // Payload 3 (message 2; store/FORMAT.md: key = BE64 sequence): flip
    // the file identifier.
    rocksdb::Options db_options;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name : {"default", "payloads", "payload_refs", "refs"}) {
      cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(db_options, options.store_dir, cfs, &handles, &db)
            .ok());
    const std::string key("\0\0\0\0\0\0\0\x03", 8);
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), handles[1], key, &value).ok());
    value[5] = static_cast<char>(value[5] ^ 0x5A);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[1], key, value).ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  Start(options);
  auto filter = Connect("filter");
  ASSERT_NE(filter, nullptr);
  ASSERT_TRUE(filter->Subscribe({"input1"}).ok());
  for (int n : {0, 1, 3, 4, 5}) {
    auto d = filter->Receive(10000);
    ASSERT_TRUE(d.ok()) << n << ": " << d.status();
    EXPECT_EQ(d->message.FindProperty("n").value, absl::StrCat(n));
    ASSERT_TRUE(filter->Ack(d->delivery_id).ok());
  }
  ASSERT_TRUE(filter->Flush().ok());
  // And the queue goes on with new messages.
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  ASSERT_TRUE(SendOne(sensor.get(), 6));
  auto d = filter->Receive(10000);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->message.FindProperty("n").value, "6");
  EXPECT_NE(
      gateway_->PrometheusText().find("edgeroute_store_quarantined_total 1\n"),
      std::string::npos);
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
