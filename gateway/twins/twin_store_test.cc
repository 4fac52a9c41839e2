#include "gateway/twins/twin_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace edgeroute::gateway::twins {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

constexpr char kGateway[] = "edge-gw";

// A whole deployment manifest with two user modules.
std::string Manifest(const Json& filter_desired, const Json& sensor_desired) {
  Json manifest = {
      {"modulesContent",
       {{"$edgeAgent", {{"properties.desired", {{"schemaVersion", "1.1"}}}}},
        {"$edgeHub",
         {{"properties.desired",
           {{"schemaVersion", "1.1"},
            {"routes", {{"r", "FROM /messages/* INTO $upstream"}}},
            {"storeAndForwardConfiguration", {{"timeToLiveSecs", 7200}}}}}}},
        {"filter", {{"properties.desired", filter_desired}}},
        {"sensor", {{"properties.desired", sensor_desired}}}}}};
  return manifest.dump();
}

// Get's document, parsed (member order does not matter to the checks).
Json GetTwin(const TwinStore& store, const std::string& device,
             const std::string& module) {
  return Json::parse(store.Get(device, module));
}

std::unique_ptr<TwinStore> OpenOrDie(const TwinStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<TwinStore>> store = TwinStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

std::unique_ptr<TwinStore> MemoryStore() {
  TwinStoreOptions options;
  options.device_id = kGateway;
  return OpenOrDie(options);
}

// A fresh directory under TEST_TMPDIR.
std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
  std::string command = absl::StrCat("rm -rf '", dir, "'");
  EXPECT_EQ(std::system(command.c_str()), 0);
  return dir;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

// --- desired properties ----------------------------------------------------

TEST(TwinStoreDesired, ComesFromTheManifestWithVersionOne) {
  auto store = MemoryStore();
  absl::StatusOr<std::vector<DesiredPatch>> patches = store->SetDesired(
      Manifest({{"TemperatureThreshold", 100}, {"mode", {{"fast", true}}}},
               {{"interval", 5}}));
  ASSERT_TRUE(patches.ok()) << patches.status();
  EXPECT_THAT(*patches, IsEmpty());  // the first manifest defines version 1

  Json filter = GetTwin(*store, kGateway, "filter");
  EXPECT_EQ(filter["desired"], Json({{"TemperatureThreshold", 100},
                                     {"mode", {{"fast", true}}},
                                     {"$version", 1}}));
  EXPECT_EQ(filter["reported"], Json({{"$version", 1}}));
  EXPECT_EQ(GetTwin(*store, kGateway, "sensor")["desired"],
            Json({{"interval", 5}, {"$version", 1}}));
  // The system modules' sections are not module twins here.
  EXPECT_EQ(GetTwin(*store, kGateway, "$edgeHub")["desired"],
            Json({{"$version", 1}}));
  // Not in the manifest: empty desired properties.
  EXPECT_EQ(GetTwin(*store, kGateway, "other")["desired"],
            Json({{"$version", 1}}));
}

TEST(TwinStoreDesired, VersionIsTheLastMemberAsIoTHubWritesIt) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, Json::object())).ok());
  EXPECT_EQ(store->Get(kGateway, "filter"),
            R"({"desired":{"a":1,"$version":1},"reported":{"$version":1}})");
}

TEST(TwinStoreDesired, AcceptsEveryManifestShape) {
  const Json desired = {{"threshold", 7}};
  const Json expected = {{"threshold", 7}, {"$version", 1}};
  const Json edge_hub = {
      {"properties.desired", {{"schemaVersion", "1.1"}, {"routes", {}}}}};
  const std::vector<std::string> shapes = {
      // az iot edge's {"content": {"modulesContent": ...}}
      Json({{"content",
             {{"modulesContent",
               {{"$edgeHub", edge_hub},
                {"filter", {{"properties.desired", desired}}}}}}}})
          .dump(),
      // the modulesContent object itself
      Json({{"$edgeHub", edge_hub},
            {"filter", {{"properties.desired", desired}}}})
          .dump(),
      // "properties": {"desired": ...} instead of "properties.desired"
      Json({{"modulesContent",
             {{"$edgeHub", edge_hub},
              {"filter", {{"properties", {{"desired", desired}}}}}}}})
          .dump(),
  };
  for (const std::string& manifest : shapes) {
    SCOPED_TRACE(manifest);
    auto store = MemoryStore();
    ASSERT_TRUE(store->SetDesired(manifest).ok());
    EXPECT_EQ(GetTwin(*store, kGateway, "filter")["desired"], expected);
  }
}

TEST(TwinStoreDesired, BareEdgeHubSectionMeansNoModuleHasDesiredProperties) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, {{"b", 2}})).ok());
  absl::StatusOr<std::vector<DesiredPatch>> patches = store->SetDesired(
      R"({"schemaVersion": "1.1", "routes": {},
          "storeAndForwardConfiguration": {"timeToLiveSecs": 10}})");
  ASSERT_TRUE(patches.ok()) << patches.status();
  ASSERT_EQ(patches->size(), 2u);
  EXPECT_EQ(Json::parse((*patches)[0].patch_json),
            Json({{"a", nullptr}, {"$version", 2}}));
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["desired"],
            Json({{"$version", 2}}));

  auto fresh = MemoryStore();
  ASSERT_TRUE(fresh->SetDesired(R"({"schemaVersion": "1.0"})").ok());
  EXPECT_EQ(GetTwin(*fresh, kGateway, "filter")["desired"],
            Json({{"$version", 1}}));
}

TEST(TwinStoreDesired, VersionGrowsOnlyForModulesThatChanged) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, {{"b", 2}})).ok());

  // Same manifest again: nothing to send, nothing moves.
  absl::StatusOr<std::vector<DesiredPatch>> patches =
      store->SetDesired(Manifest({{"a", 1}}, {{"b", 2}}));
  ASSERT_TRUE(patches.ok());
  EXPECT_THAT(*patches, IsEmpty());

  patches = store->SetDesired(Manifest({{"a", 2}}, {{"b", 2}}));
  ASSERT_TRUE(patches.ok());
  ASSERT_EQ(patches->size(), 1u);
  EXPECT_EQ((*patches)[0].module_id, "filter");
  EXPECT_EQ((*patches)[0].version, 2);
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["desired"]["$version"], 2);
  EXPECT_EQ(GetTwin(*store, kGateway, "sensor")["desired"]["$version"], 1);

  patches = store->SetDesired(Manifest({{"a", 3}}, {{"b", 3}}));
  ASSERT_TRUE(patches.ok());
  ASSERT_EQ(patches->size(), 2u);
  EXPECT_EQ((*patches)[0].module_id, "filter");
  EXPECT_EQ((*patches)[0].version, 3);
  EXPECT_EQ((*patches)[1].module_id, "sensor");
  EXPECT_EQ((*patches)[1].version, 2);
}

TEST(TwinStoreDesired, PatchCarriesChangedNestedAndRemovedKeys) {
  auto store = MemoryStore();
  const Json before = {{"same", 1},
                       {"nested", {{"keep", 1}, {"change", 2}, {"drop", 3}}},
                       {"gone", "x"},
                       {"list", {1, 2}},
                       {"becomesObject", 5}};
  const Json after = {{"same", 1},
                      {"nested", {{"keep", 1}, {"change", 20}, {"add", 4}}},
                      {"list", {1, 2, 3}},
                      {"becomesObject", {{"x", 1}}},
                      {"new", {{"deep", {{"er", true}}}}}};
  ASSERT_TRUE(store->SetDesired(Manifest(before, Json::object())).ok());
  absl::StatusOr<std::vector<DesiredPatch>> patches =
      store->SetDesired(Manifest(after, Json::object()));
  ASSERT_TRUE(patches.ok()) << patches.status();
  ASSERT_EQ(patches->size(), 1u);
  EXPECT_EQ(Json::parse((*patches)[0].patch_json),
            Json({{"nested", {{"change", 20}, {"add", 4}, {"drop", nullptr}}},
                  {"list", {1, 2, 3}},
                  {"becomesObject", {{"x", 1}}},
                  {"new", {{"deep", {{"er", true}}}}},
                  {"gone", nullptr},
                  {"$version", 2}}));
  // Applying the patch as a client does (RFC 7396) gives the new document.
  Json client = before;
  client.merge_patch(Json::parse((*patches)[0].patch_json));
  client.erase("$version");
  EXPECT_EQ(client, after);
  Json served = GetTwin(*store, kGateway, "filter")["desired"];
  served.erase("$version");
  EXPECT_EQ(served, after);
}

TEST(TwinStoreDesired, ModulesLeavingAndJoiningTheManifest) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, {{"b", 2}})).ok());
  // "sensor" leaves: all of its properties are removed.
  Json without_sensor = Json::parse(Manifest({{"a", 1}}, Json::object()));
  without_sensor["modulesContent"].erase("sensor");
  absl::StatusOr<std::vector<DesiredPatch>> patches =
      store->SetDesired(without_sensor.dump());
  ASSERT_TRUE(patches.ok());
  ASSERT_EQ(patches->size(), 1u);
  EXPECT_EQ((*patches)[0].module_id, "sensor");
  EXPECT_EQ(Json::parse((*patches)[0].patch_json),
            Json({{"b", nullptr}, {"$version", 2}}));
  // It comes back: its version keeps growing.
  patches = store->SetDesired(Manifest({{"a", 1}}, {{"b", 5}}));
  ASSERT_TRUE(patches.ok());
  ASSERT_EQ(patches->size(), 1u);
  EXPECT_EQ((*patches)[0].version, 3);
  // A module that joins later starts from version 1 with nothing: its first
  // properties are version 2.
  Json with_new = Json::parse(Manifest({{"a", 1}}, {{"b", 5}}));
  with_new["modulesContent"]["late"] = {{"properties.desired", {{"c", 1}}}};
  patches = store->SetDesired(with_new.dump());
  ASSERT_TRUE(patches.ok());
  ASSERT_EQ(patches->size(), 1u);
  EXPECT_EQ((*patches)[0].module_id, "late");
  EXPECT_EQ(Json::parse((*patches)[0].patch_json),
            Json({{"c", 1}, {"$version", 2}}));
}

TEST(TwinStoreDesired, NullAndDollarMembersAreNotProperties) {
  auto store = MemoryStore();
  ASSERT_TRUE(store
                  ->SetDesired(Manifest({{"a", nullptr},
                                         {"b", {{"c", nullptr}, {"d", 1}}},
                                         {"$version", 7},
                                         {"$metadata", {{"x", 1}}}},
                                        Json::object()))
                  .ok());
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["desired"],
            Json({{"b", {{"d", 1}}}, {"$version", 1}}));
}

TEST(TwinStoreDesired, LeafDevicesAndOtherDevicesGetEmptyDesired) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, Json::object())).ok());
  // A device (no module id) named like a module still gets nothing.
  EXPECT_EQ(store->Get("filter", ""),
            R"({"desired":{"$version":1},"reported":{"$version":1}})");
  EXPECT_EQ(GetTwin(*store, "leaf-1", "")["desired"], Json({{"$version", 1}}));
  // A module of a device that is not the gateway.
  EXPECT_EQ(GetTwin(*store, "other-device", "filter")["desired"],
            Json({{"$version", 1}}));

  // Without a gateway device id, a module of any device gets them.
  auto any_device = OpenOrDie(TwinStoreOptions{});
  ASSERT_TRUE(
      any_device->SetDesired(Manifest({{"a", 1}}, Json::object())).ok());
  EXPECT_EQ(GetTwin(*any_device, "whatever", "filter")["desired"],
            Json({{"a", 1}, {"$version", 1}}));
}

TEST(TwinStoreDesired, BadManifestsAreRefusedAndChangeNothing) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, Json::object())).ok());

  absl::StatusOr<std::vector<DesiredPatch>> result =
      store->SetDesired("{\n  \"modulesContent\": {\n    \"filter\": nope\n");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().ToString(), HasSubstr("line 3, column 16"));

  result = store->SetDesired("[]");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("found array"));

  result = store->SetDesired(
      R"({"modulesContent": {"$edgeHub": {}, "filter": {"properties.desired": 5}}})");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(),
              HasSubstr("modulesContent.filter: \"properties.desired\" must "
                        "be an object, found number"));

  result = store->SetDesired(R"({"modulesContent": {"filter": 1}})");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("must be an object"));

  // Twelve objects: the root and 11 nested ones.
  Json deep = 1;
  for (int i = 0; i < 12; ++i) deep = Json({{"n", deep}});
  result = store->SetDesired(Manifest(deep, Json::object()));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("nest more than 10"));

  Json big = {{"s", std::string(TwinStore::kMaxDocumentBytes, 'x')}};
  result = store->SetDesired(Manifest(big, Json::object()));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("more than 32768"));

  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["desired"],
            Json({{"a", 1}, {"$version", 1}}));
}

// --- reported properties ---------------------------------------------------

TEST(TwinStoreReported, MergesLikeRfc7396AndCountsVersions) {
  auto store = MemoryStore();
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["reported"],
            Json({{"$version", 1}}));

  absl::StatusOr<int64_t> version = store->PatchReported(
      kGateway, "filter",
      R"({"a": 1, "b": {"c": 1, "d": 2}, "list": [1, {"x": null}]})");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 2);

  version = store->PatchReported(
      kGateway, "filter",
      R"({"a": null, "b": {"c": null, "e": {"f": "g"}}, "list": [3],
          "absent": null})");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 3);
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["reported"],
            Json({{"b", {{"d", 2}, {"e", {{"f", "g"}}}}},
                  {"list", {3}},
                  {"$version", 3}}));

  // A scalar replaced by an object and back.
  ASSERT_TRUE(store->PatchReported(kGateway, "filter", R"({"b": 5})").ok());
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["reported"]["b"], 5);
  version = store->PatchReported(kGateway, "filter", "{}");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 5);  // every accepted patch is a new version
}

TEST(TwinStoreReported, IdentitiesAreSeparate) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->PatchReported(kGateway, "filter", R"({"m": 1})").ok());
  ASSERT_TRUE(store->PatchReported(kGateway, "", R"({"d": 1})").ok());
  ASSERT_TRUE(store->PatchReported("leaf-1", "", R"({"l": 1})").ok());
  // Ids that would collide if they were not encoded.
  ASSERT_TRUE(store->PatchReported("a~b", "", R"({"x": 1})").ok());
  ASSERT_TRUE(store->PatchReported("a", "b", R"({"y": 1})").ok());
  EXPECT_EQ(GetTwin(*store, kGateway, "filter")["reported"],
            Json({{"m", 1}, {"$version", 2}}));
  EXPECT_EQ(GetTwin(*store, kGateway, "")["reported"],
            Json({{"d", 1}, {"$version", 2}}));
  EXPECT_EQ(GetTwin(*store, "leaf-1", "")["reported"],
            Json({{"l", 1}, {"$version", 2}}));
  EXPECT_EQ(GetTwin(*store, "a~b", "")["reported"],
            Json({{"x", 1}, {"$version", 2}}));
  EXPECT_EQ(GetTwin(*store, "a", "b")["reported"],
            Json({{"y", 1}, {"$version", 2}}));
}

TEST(TwinStoreReported, BadJsonIsRefusedWithItsPosition) {
  auto store = MemoryStore();
  ASSERT_TRUE(store->PatchReported("d", "", R"({"keep": 1})").ok());

  absl::StatusOr<int64_t> result =
      store->PatchReported("d", "", "{\n  \"a\": 1,\n  \"b\": tru\n}");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().ToString(), HasSubstr("invalid JSON at line 3"));

  result = store->PatchReported("d", "", R"({"a": 1,})");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("line 1, column 9"));

  for (const char* not_object : {"[1, 2]", " \n 5", "\"text\"", "null"}) {
    result = store->PatchReported("d", "", not_object);
    ASSERT_FALSE(result.ok()) << not_object;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().ToString(),
                HasSubstr("expected a JSON object, found"));
  }
  result = store->PatchReported("d", "", " \n [1]");
  EXPECT_THAT(result.status().ToString(), HasSubstr("line 2, column 2"));

  for (const char* bad : {"", "{", "{\"a\": \"\xff\"}", "{\"a\": 1e400}",
                          "{\"a\": 1} {\"b\": 2}", "{'a': 1}"}) {
    result = store->PatchReported("d", "", bad);
    ASSERT_FALSE(result.ok()) << bad;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_THAT(result.status().ToString(), HasSubstr("invalid JSON")) << bad;
  }
  // Messages quote the input, but only as printable ASCII (they may end up
  // in a JSON error response).
  result = store->PatchReported("d", "", "{\"a\": \"\xff\xfe\"}");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("\\xff"));
  for (char c : result.status().message()) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
  // A name too long to quote whole, whose 17th byte is inside a character:
  // the quote stops before that character.
  std::string long_name = "a";
  for (int i = 0; i < 550; ++i) long_name += "\xc3\xa9";
  result = store->PatchReported("d", "", "{\"" + long_name + "\": 1}");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("property '" + long_name.substr(0, 15) + "...'"));
  // Nothing changed.
  EXPECT_EQ(GetTwin(*store, "d", "")["reported"],
            Json({{"keep", 1}, {"$version", 2}}));
}

TEST(TwinStoreReported, PropertyNamesFollowIoTHubRules) {
  auto store = MemoryStore();
  const std::vector<std::pair<std::string, std::string>> refused = {
      {R"({"$version": 4})", "'$'"},
      {R"({"a": {"$metadata": {}}})", "property 'a.$metadata'"},
      {R"({"a.b": 1})", "'.'"},
      {R"({"a#": 1})", "'#'"},
      {R"({"a b": 1})", "' '"},
      {R"({"a\tb": 1})", "control characters"},
      {R"({"": 1})", "empty property name"},
      {R"({"list": [{"ok": 1}, {"$bad": 2}]})", "property 'list[1].$bad'"},
  };
  for (const auto& [patch, message] : refused) {
    absl::StatusOr<int64_t> result = store->PatchReported("d", "", patch);
    ASSERT_FALSE(result.ok()) << patch;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().ToString(), HasSubstr(message)) << patch;
  }
  std::string long_name(TwinStore::kMaxNameBytes, 'n');
  EXPECT_TRUE(
      store->PatchReported("d", "", absl::StrCat("{\"", long_name, "\": 1}"))
          .ok());
  absl::StatusOr<int64_t> result =
      store->PatchReported("d", "", absl::StrCat("{\"", long_name, "n\": 1}"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("more than 1024"));
  // Names that are not ASCII are fine.
  EXPECT_TRUE(store->PatchReported("d", "", R"({"température": 1})").ok());
}

TEST(TwinStoreReported, ValueLimits) {
  auto store = MemoryStore();
  auto patch = [&](const std::string& json) {
    return store->PatchReported("d", "", json);
  };
  std::string max_string(TwinStore::kMaxStringBytes, 's');
  EXPECT_TRUE(patch(absl::StrCat("{\"s\": \"", max_string, "\"}")).ok());
  absl::StatusOr<int64_t> result =
      patch(absl::StrCat("{\"s\": \"", max_string, "s\"}"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("more than 4096"));

  EXPECT_TRUE(patch(R"({"i": 4503599627370495})").ok());   // 2^52 - 1
  EXPECT_TRUE(patch(R"({"i": -4503599627370496})").ok());  // -2^52
  EXPECT_TRUE(patch(R"({"f": 1.5e300, "b": true})").ok());
  for (const char* out_of_range :
       {R"({"i": 4503599627370496})", R"({"i": -4503599627370497})",
        R"({"i": 18446744073709551615})", R"({"a": [9007199254740993]})"}) {
    result = patch(out_of_range);
    ASSERT_FALSE(result.ok()) << out_of_range;
    EXPECT_THAT(result.status().ToString(), HasSubstr("integer out of range"));
  }
}

TEST(TwinStoreReported, NestingLimit) {
  auto store = MemoryStore();
  auto nested = [](int levels) {
    Json value = 1;
    for (int i = 0; i < levels; ++i) value = Json({{"n", value}});
    return value.dump();  // `levels` objects, the root among them
  };
  // The root plus 10 nested objects is the limit.
  EXPECT_TRUE(store->PatchReported("d", "", nested(11)).ok());
  absl::StatusOr<int64_t> result = store->PatchReported("d", "", nested(12));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().ToString(),
              HasSubstr("nested more than 10 levels deep"));
  // Arrays count as levels too.
  result = store->PatchReported("d", "", R"({"a": [[[[[[[[[[[1]]]]]]]]]]]})");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("nested more than 10"));
  // Deep hostile nesting is refused without trouble.
  std::string hostile =
      "{\"a\":" + std::string(30000, '[') + std::string(30000, ']') + "}";
  result = store->PatchReported("d", "", hostile);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TwinStoreReported, SizeLimits) {
  auto store = MemoryStore();
  std::string chunk(4000, 'x');
  // Eight 4,000-byte strings fit in 32 KiB, a ninth does not.
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(
        store
            ->PatchReported("d", "",
                            absl::StrCat("{\"k", i, "\": \"", chunk, "\"}"))
            .ok())
        << i;
  }
  absl::StatusOr<int64_t> result =
      store->PatchReported("d", "", absl::StrCat("{\"k8\": \"", chunk, "\"}"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().ToString(), HasSubstr("the document would be"));
  EXPECT_EQ(GetTwin(*store, "d", "")["reported"]["$version"], 9);
  // Removing makes room again.
  EXPECT_TRUE(
      store
          ->PatchReported(
              "d", "", absl::StrCat("{\"k0\": null, \"k8\": \"", chunk, "\"}"))
          .ok());

  std::string padded = "{" + std::string(TwinStore::kMaxPatchBytes, ' ') + "}";
  result = store->PatchReported("e", "", padded);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().ToString(), HasSubstr("the patch is"));
}

TEST(TwinStoreReported, IdentityLimits) {
  TwinStoreOptions options;
  options.max_twins = 3;
  auto store = OpenOrDie(options);
  for (const char* device : {"a", "b", "c"}) {
    ASSERT_TRUE(store->PatchReported(device, "", "{}").ok());
  }
  absl::StatusOr<int64_t> result = store->PatchReported("d", "", "{}");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(store->PatchReported("a", "", R"({"x": 1})").ok());  // existing

  result = store->PatchReported("", "m", "{}");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);

  result = store->PatchReported("a", std::string(200, '%'), "{}");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().ToString(), HasSubstr("too long"));
}

// --- durability ------------------------------------------------------------

TEST(TwinStoreDurability, SurvivesReopen) {
  TwinStoreOptions options;
  options.dir = FreshDir("reopen");
  options.device_id = kGateway;
  {
    auto store = OpenOrDie(options);
    ASSERT_TRUE(store->SetDesired(Manifest({{"a", 1}}, {{"b", 1}})).ok());
    ASSERT_TRUE(store->SetDesired(Manifest({{"a", 2}}, {{"b", 1}})).ok());
    ASSERT_TRUE(store
                    ->PatchReported(kGateway, "filter",
                                    R"({"z": 1, "nested": {"q": [1, 2]}})")
                    .ok());
    ASSERT_TRUE(
        store->PatchReported(kGateway, "filter", R"({"z": null, "y": 2})")
            .ok());
    ASSERT_TRUE(store->PatchReported("leaf/1 ..", "", R"({"l": true})").ok());
  }
  const std::string filter_before = R"({"desired":{"a":2,"$version":2},)"
                                    R"("reported":{"nested":{"q":[1,2]},)"
                                    R"("y":2,"$version":3}})";
  {
    auto store = OpenOrDie(options);
    EXPECT_EQ(store->Get(kGateway, "filter"), filter_before);
    EXPECT_EQ(GetTwin(*store, "leaf/1 ..", "")["reported"],
              Json({{"l", true}, {"$version", 2}}));
    // Versions go on from where they were.
    absl::StatusOr<int64_t> version =
        store->PatchReported(kGateway, "filter", R"({"x": 0})");
    ASSERT_TRUE(version.ok());
    EXPECT_EQ(*version, 4);
    // The same manifest as before the restart: nothing changed.
    absl::StatusOr<std::vector<DesiredPatch>> patches =
        store->SetDesired(Manifest({{"a", 2}}, {{"b", 1}}));
    ASSERT_TRUE(patches.ok());
    EXPECT_THAT(*patches, IsEmpty());
  }
  {
    // A manifest changed while the gateway was down: its first SetDesired
    // reports the change against the last run's state.
    auto store = OpenOrDie(options);
    absl::StatusOr<std::vector<DesiredPatch>> patches =
        store->SetDesired(Manifest({{"a", 2}}, {{"b", 9}}));
    ASSERT_TRUE(patches.ok());
    ASSERT_EQ(patches->size(), 1u);
    EXPECT_EQ((*patches)[0].module_id, "sensor");
    EXPECT_EQ((*patches)[0].version, 2);
    EXPECT_EQ(GetTwin(*store, kGateway, "filter")["reported"]["$version"], 4);
  }
}

TEST(TwinStoreDurability, OneFilePerIdentityAndNoTemporaries) {
  TwinStoreOptions options;
  options.dir = FreshDir("files");
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store->PatchReported("gw", "filter", R"({"a": 1})").ok());
  ASSERT_TRUE(store->PatchReported("leaf.1", "", R"({"a": 1})").ok());
  EXPECT_TRUE(Exists(options.dir + "/reported~gw~filter.json"));
  EXPECT_TRUE(Exists(options.dir + "/reported~leaf%2E1.json"));
  EXPECT_FALSE(Exists(options.dir + "/reported~gw~filter.json.tmp"));
}

TEST(TwinStoreDurability, InterruptedWriteLeavesTheOldDocument) {
  TwinStoreOptions options;
  options.dir = FreshDir("interrupted");
  {
    auto store = OpenOrDie(options);
    ASSERT_TRUE(store->PatchReported("d", "", R"({"a": 1})").ok());
  }
  // What a crash between write and rename leaves behind.
  WriteText(options.dir + "/reported~d.json.tmp", "{\"deviceId\": \"d\", tr");
  auto store = OpenOrDie(options);
  EXPECT_EQ(GetTwin(*store, "d", "")["reported"],
            Json({{"a", 1}, {"$version", 2}}));
  EXPECT_FALSE(Exists(options.dir + "/reported~d.json.tmp"));
}

TEST(TwinStoreDurability, FailedWriteChangesNothing) {
  TwinStoreOptions options;
  options.dir = FreshDir("failing");
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store->PatchReported("d", "", R"({"a": 1})").ok());
  ASSERT_EQ(::unlink((options.dir + "/reported~d.json").c_str()), 0);
  ASSERT_EQ(::rmdir(options.dir.c_str()), 0);  // no file can be created now
  absl::StatusOr<int64_t> result = store->PatchReported("d", "", R"({"a": 2})");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().ToString(), HasSubstr(options.dir));
  EXPECT_EQ(GetTwin(*store, "d", "")["reported"],
            Json({{"a", 1}, {"$version", 2}}));
  EXPECT_FALSE(store->SetDesired(Manifest({{"a", 1}}, {{"b", 1}})).ok());
  EXPECT_EQ(GetTwin(*store, "gw", "filter")["desired"],
            Json({{"$version", 1}}));
}

TEST(TwinStoreDurability, CorruptFilesAreErrorsNamingTheFile) {
  const std::vector<std::pair<std::string, std::string>> corrupt = {
      {"reported~d.json", "{\"deviceId\": \"d\", \"moduleId\": \"\", tr"},
      {"reported~d.json", "[]"},
      {"reported~d.json",
       R"({"deviceId": "e", "moduleId": "", "version": 2, "reported": {}})"},
      {"reported~d.json",
       R"({"deviceId": "d", "moduleId": "", "version": 0, "reported": {}})"},
      {"reported~d.json",
       R"({"deviceId": "d", "moduleId": "", "version": 2, "reported": 1})"},
      {"reported~d.json",
       R"({"deviceId": "d", "moduleId": "", "version": 2,
           "reported": {"$x": 1}})"},
      {"desired.json", "{\"modules\": {\"m\": {\"version\": 1}}}"},
      {"desired.json", "garbage"},
  };
  int round = 0;
  for (const auto& [name, contents] : corrupt) {
    SCOPED_TRACE(contents);
    TwinStoreOptions options;
    options.dir = FreshDir(absl::StrCat("corrupt", round++));
    ASSERT_EQ(::mkdir(options.dir.c_str(), 0755), 0);
    WriteText(options.dir + "/" + name, contents);
    absl::StatusOr<std::unique_ptr<TwinStore>> store = TwinStore::Open(options);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(store.status().ToString(), HasSubstr(options.dir + "/" + name));
    // The file is still there for someone to look at.
    EXPECT_TRUE(Exists(options.dir + "/" + name));
  }
}

TEST(TwinStoreDurability, DirectoryIsLockedAndOtherFilesAreLeftAlone) {
  TwinStoreOptions options;
  options.dir = FreshDir("locked");
  auto store = OpenOrDie(options);
  WriteText(options.dir + "/README", "not ours");
  absl::StatusOr<std::unique_ptr<TwinStore>> second = TwinStore::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  store.reset();
  EXPECT_TRUE(TwinStore::Open(options).ok());
  EXPECT_TRUE(Exists(options.dir + "/README"));

  TwinStoreOptions missing_parent;
  missing_parent.dir = FreshDir("no-such-parent") + "/twins";
  absl::StatusOr<std::unique_ptr<TwinStore>> failed =
      TwinStore::Open(missing_parent);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().ToString(), HasSubstr(missing_parent.dir));
}

// --- threads ---------------------------------------------------------------

// Every thread patches its own keys of one shared twin and of its own twin,
// while others read and reload the manifest. Each patch must get its own
// version, and no patch may be lost.
void RunConcurrentPatches(TwinStore* store, int threads, int patches_each) {
  std::mutex mu;
  std::multiset<int64_t> versions;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < patches_each; ++i) {
        std::string patch = absl::StrCat("{\"t", t, "\": {\"i", i, "\": ", i,
                                         "}, \"last", t, "\": ", i, "}");
        absl::StatusOr<int64_t> shared =
            store->PatchReported("gw", "shared", patch);
        ASSERT_TRUE(shared.ok()) << shared.status();
        ASSERT_TRUE(
            store->PatchReported(absl::StrCat("own", t), "", patch).ok());
        {
          std::lock_guard<std::mutex> lock(mu);
          versions.insert(*shared);
        }
        Json twin = Json::parse(store->Get("gw", "shared"));
        ASSERT_GE(twin["reported"]["$version"].get<int64_t>(), *shared);
        if (t == 0) {
          ASSERT_TRUE(
              store->SetDesired(Manifest({{"i", i}}, Json::object())).ok());
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();

  const int total = threads * patches_each;
  ASSERT_EQ(versions.size(), static_cast<size_t>(total));
  int64_t expected = 2;
  for (int64_t version : versions) EXPECT_EQ(version, expected++);
  Json shared = GetTwin(*store, "gw", "shared")["reported"];
  EXPECT_EQ(shared["$version"], total + 1);
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(shared[absl::StrCat("t", t)].size(),
              static_cast<size_t>(patches_each));
    EXPECT_EQ(shared[absl::StrCat("last", t)], patches_each - 1);
    EXPECT_EQ(
        GetTwin(*store, absl::StrCat("own", t), "")["reported"]["$version"],
        patches_each + 1);
  }
  EXPECT_EQ(GetTwin(*store, "gw", "filter")["desired"]["$version"],
            patches_each);
}

TEST(TwinStoreThreads, ConcurrentPatchesInMemory) {
  auto store = OpenOrDie(TwinStoreOptions{});
  RunConcurrentPatches(store.get(), 4, 100);
}

TEST(TwinStoreThreads, ConcurrentPatchesOnDisk) {
  TwinStoreOptions options;
  options.dir = FreshDir("threads");
  {
    auto store = OpenOrDie(options);
    RunConcurrentPatches(store.get(), 4, 10);
  }
  auto reopened = OpenOrDie(options);
  EXPECT_EQ(GetTwin(*reopened, "gw", "shared")["reported"]["$version"], 41);
}

}  // namespace
}  // namespace edgeroute::gateway::twins
