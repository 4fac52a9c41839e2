#include "query/manifest_schema.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "message/message.h"
#include "query/newtonsoft.h"

namespace edgeroute::query::internal {
namespace {

// Manifests: strict JSON, a byte order mark tolerated.
JsonReaderOptions ManifestReaderOptions() {
  JsonReaderOptions options;
  options.max_depth = 128;
  options.allow_byte_order_mark = true;
  options.strings = kManifestStrings;
  return options;
}

bool IsBlank(absl::string_view s) {
  return absl::StripAsciiWhitespace(s).empty();
}

std::string Quoted(absl::string_view name) {
  return absl::StrCat("route '", name, "': ");
}

class ManifestParser {
 public:
  ManifestParser(absl::string_view src, ManifestReporter* reporter)
      : src_(src), r_(*reporter) {}

  void Run(ManifestParse* out) {
    JsonNode root;
    JsonReadError error;
    if (!ReadJson(src_, ManifestReaderOptions(), &root, &error)) {
      r_.Add(Diagnostic::Severity::kError, error.at, error.at + 1,
             absl::StrCat("invalid JSON: ", error.message));
      return;
    }
    if (root.kind != JsonNode::Kind::kObject) {
      r_.Error(root, absl::StrCat("expected a JSON object (a deployment "
                                  "manifest or $edgeHub desired properties), "
                                  "found ",
                                  JsonKindName(root.kind)));
      return;
    }
    const JsonNode* desired = FindDesired(root);
    if (desired == nullptr) return;
    ParseDesired(*desired, out);
  }

 private:
  // Locates $edgeHub's desired properties in the accepted shapes.
  const JsonNode* FindDesired(const JsonNode& root) {
    const JsonNode* modules = FindJsonMember(root, "modulesContent", false);
    if (modules == nullptr) {
      const JsonNode* content = FindJsonMember(root, "content", false);
      if (content != nullptr) {
        modules = FindJsonMember(*content, "modulesContent", false);
      }
    }
    const JsonNode* hub = nullptr;
    if (modules != nullptr) {
      hub = FindJsonMember(*modules, "$edgeHub", false);
      if (hub == nullptr) {
        r_.ErrorAtKey(*modules,
                      "the manifest's modulesContent has no \"$edgeHub\" "
                      "entry, so it has no routes",
                      "add \"$edgeHub\": {\"properties.desired\": "
                      "{\"schemaVersion\": \"1.1\", \"routes\": {...}, "
                      "\"storeAndForwardConfiguration\": {\"timeToLiveSecs\": "
                      "7200}}}");
        return nullptr;
      }
    } else {
      hub = FindJsonMember(root, "$edgeHub", false);
    }
    if (hub == nullptr) return &root;  // bare desired properties
    const JsonNode* desired = FindJsonMember(*hub, "properties.desired", false);
    if (desired == nullptr) {
      r_.ErrorAtKey(*hub, "\"$edgeHub\" has no \"properties.desired\"");
      return nullptr;
    }
    if (desired->kind != JsonNode::Kind::kObject) {
      r_.Error(*desired,
               absl::StrCat("\"properties.desired\" of $edgeHub must be an "
                            "object, found ",
                            JsonKindName(desired->kind)));
      return nullptr;
    }
    return desired;
  }

  void ParseDesired(const JsonNode& desired, ManifestParse* out) {
    // edgeHub reads schemaVersion with an exact (case-sensitive) lookup.
    const JsonNode* version = FindJsonMember(desired, "schemaVersion", false);
    if (version == nullptr) {
      r_.Add(Diagnostic::Severity::kError, desired.begin, desired.begin + 1,
             "missing \"schemaVersion\" in $edgeHub's desired properties",
             "add \"schemaVersion\": \"1.1\"");
      return;
    }
    std::string text;
    if (version->kind == JsonNode::Kind::kString) {
      text = version->text;
    } else if (version->kind == JsonNode::Kind::kNumber) {
      text = version->text;
      r_.Warning(*version, "schemaVersion should be a string",
                 absl::StrCat("write \"schemaVersion\": \"", text, "\""));
    } else {
      r_.Error(*version, absl::StrCat("schemaVersion must be a string such "
                                      "as \"1.1\", found ",
                                      JsonKindName(version->kind)));
      return;
    }
    int major = 0, minor = 0;
    if (!ParseDotNetVersion(text, &major, &minor)) {
      r_.Error(*version,
               absl::StrCat("invalid schemaVersion \"", text,
                            "\": expected major.minor such as \"1.1\""));
      return;
    }
    if (major != 1 || minor > 3) {
      r_.Error(*version, absl::StrCat("unsupported schemaVersion \"", text,
                                      "\": edgeHub accepts 1.0 to 1.3"));
      return;
    }
    out->config.schema_version = text;
    if (minor == 0) {
      ParseRoutes10(desired, out);
    } else {
      ParseRoutes11(desired, out);
    }
    ParseStoreAndForward(desired, minor, out);
  }

  // Members of `object`, the last one of each duplicated name only (the
  // later definition wins, as in edgeHub); each replaced definition is
  // reported with a warning at the one that replaces it.
  std::vector<const JsonNode*> UniqueMembers(const JsonNode& object) {
    absl::flat_hash_map<absl::string_view, size_t> last;
    for (size_t i = 0; i < object.children.size(); ++i) {
      auto [it, inserted] = last.emplace(object.children[i].key, i);
      if (!inserted) {
        it->second = i;
        r_.WarningAtKey(
            object.children[i],
            absl::StrCat(Quoted(object.children[i].key),
                         "defined twice; this later definition replaces "
                         "the earlier one (as in edgeHub)"),
            "give each route a unique name");
      }
    }
    std::vector<const JsonNode*> out;
    for (size_t i = 0; i < object.children.size(); ++i) {
      if (last[object.children[i].key] == i) {
        out.push_back(&object.children[i]);
      }
    }
    return out;
  }

  void ParseRoutes10(const JsonNode& desired, ManifestParse* out) {
    const JsonNode* routes = FindJsonMember(desired, "routes", true);
    out->routes_readable = true;
    if (routes == nullptr || routes->kind == JsonNode::Kind::kNull) return;
    if (routes->kind != JsonNode::Kind::kObject) {
      out->routes_readable = false;
      r_.Error(*routes,
               absl::StrCat("\"routes\" must be an object mapping route names "
                            "to route strings, found ",
                            JsonKindName(routes->kind)));
      return;
    }
    for (const JsonNode* m : UniqueMembers(*routes)) {
      const std::string& name = m->key;
      switch (m->kind) {
        case JsonNode::Kind::kString:
          if (IsBlank(m->text)) {
            r_.Warning(*m, absl::StrCat(Quoted(name),
                                        "empty route, ignored (schema 1.0)"));
            continue;
          }
          out->config.routes.push_back(
              RouteSpec{name, m->text, kDefaultPriority, 0});
          out->text_begin.push_back(m->begin);
          break;
        case JsonNode::Kind::kNull:
          r_.Warning(*m, absl::StrCat(Quoted(name),
                                      "null route, ignored (schema 1.0)"));
          break;
        case JsonNode::Kind::kObject:
          r_.Error(*m,
                   absl::StrCat(Quoted(name),
                                "schema 1.0 routes must be strings; a route "
                                "object with priority or timeToLiveSecs "
                                "needs schemaVersion 1.1 or later"),
                   "set \"schemaVersion\": \"1.1\" and add "
                   "\"storeAndForwardConfiguration\"");
          AddExtraFromObject(*m, name, out);
          break;
        default:
          r_.Error(*m, absl::StrCat(Quoted(name),
                                    "must be a route string, "
                                    "found ",
                                    JsonKindName(m->kind)));
      }
    }
  }

  // Keeps the text of a route that has other errors, so that its text is
  // still checked by CompileEdgeHubConfig.
  void AddExtraFromObject(const JsonNode& object, const std::string& name,
                          ManifestParse* out) {
    const JsonNode* text = FindJsonMember(object, "route", true);
    if (text != nullptr && text->kind == JsonNode::Kind::kString &&
        !IsBlank(text->text)) {
      out->extra_routes.push_back(
          RouteSpec{name, text->text, kDefaultPriority, 0});
      out->extra_text_begin.push_back(text->begin);
    }
  }

  void ParseRoutes11(const JsonNode& desired, ManifestParse* out) {
    const std::string version = out->config.schema_version;
    const JsonNode* routes = FindJsonMember(desired, "routes", true);
    if (routes == nullptr || routes->kind == JsonNode::Kind::kNull) {
      r_.Add(Diagnostic::Severity::kError, desired.begin, desired.begin + 1,
             absl::StrCat("schemaVersion ", version,
                          " requires \"routes\" (it may be empty: {})"),
             "add \"routes\": {}");
      return;
    }
    if (routes->kind != JsonNode::Kind::kObject) {
      r_.Error(*routes, absl::StrCat("\"routes\" must be an object mapping "
                                     "route names to routes, found ",
                                     JsonKindName(routes->kind)));
      return;
    }
    out->routes_readable = true;
    for (const JsonNode* m : UniqueMembers(*routes)) {
      if (m->key.empty()) {
        r_.ErrorAtKey(*m, "empty route name", "give the route a name");
        if (m->kind == JsonNode::Kind::kString && !IsBlank(m->text)) {
          out->extra_routes.push_back(
              RouteSpec{"", m->text, kDefaultPriority, 0});
          out->extra_text_begin.push_back(m->begin);
        } else if (m->kind == JsonNode::Kind::kObject) {
          AddExtraFromObject(*m, "", out);
        }
        continue;
      }
      const std::string name = NewtonsoftPathName(m->key);
      switch (m->kind) {
        case JsonNode::Kind::kString:
          if (IsBlank(m->text)) {
            r_.Error(*m, absl::StrCat(Quoted(name), "the route is empty"),
                     "write a route such as \"FROM /messages/* INTO "
                     "$upstream\", or remove the entry");
            continue;
          }
          out->config.routes.push_back(
              RouteSpec{name, m->text, kDefaultPriority, 0});
          out->text_begin.push_back(m->begin);
          break;
        case JsonNode::Kind::kObject:
          ParseRouteObject(*m, name, out);
          break;
        default:
          r_.Error(*m,
                   absl::StrCat(Quoted(name),
                                "Malformed route specification: expected a "
                                "route string or an object {\"route\": ..., "
                                "\"priority\": 0-9, \"timeToLiveSecs\": ...}, "
                                "found ",
                                JsonKindName(m->kind)));
      }
    }
  }

  void ParseRouteObject(const JsonNode& object, const std::string& name,
                        ManifestParse* out) {
    bool ok = true;
    RouteSpec spec{name, "", kDefaultPriority, 0};
    const JsonNode* text = FindJsonMember(object, "route", true);
    if (text == nullptr) {
      r_.Error(object, absl::StrCat(Quoted(name), "missing \"route\""),
               "add \"route\": \"FROM /messages/* INTO $upstream\"");
      ok = false;
    } else if (text->kind != JsonNode::Kind::kString) {
      r_.Error(*text,
               absl::StrCat(Quoted(name), "\"route\" must be a string, found ",
                            JsonKindName(text->kind)));
      ok = false;
    } else if (IsBlank(text->text)) {
      r_.Error(*text, absl::StrCat(Quoted(name), "the route is empty"));
      ok = false;
    } else {
      spec.text = text->text;
    }
    for (const JsonNode& m : object.children) {
      if (!EqualsIgnoreAsciiCase(m.key, "route") &&
          !EqualsIgnoreAsciiCase(m.key, "priority") &&
          !EqualsIgnoreAsciiCase(m.key, "timeToLiveSecs")) {
        r_.WarningAtKey(m, absl::StrCat(Quoted(name), "unknown key \"", m.key,
                                        "\" is ignored (a route object has "
                                        "route, priority and timeToLiveSecs)"));
      }
    }
    const JsonNode* priority = FindJsonMember(object, "priority", true);
    if (priority != nullptr) {
      int64_t p = 0;
      const IntResult res =
          ReadInteger(*priority, std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max(), &p);
      if (res == IntResult::kOk &&
          ((p >= 0 && p <= 9) || p == kDefaultPriority)) {
        spec.priority = static_cast<int>(p);
      } else {
        ok = false;
        std::string what;
        if (res == IntResult::kNotNumber) {
          what = absl::StrCat("priority must be a number from 0 to 9, found ",
                              JsonKindName(priority->kind));
        } else if (res == IntResult::kNotInteger) {
          what = absl::StrCat("priority ", priority->text,
                              " is not a whole number");
        } else {
          what = absl::StrCat("priority ", priority->text,
                              " is out of range: use 0 (highest) to 9 "
                              "(lowest), or leave it out for the default");
        }
        r_.Error(*priority, absl::StrCat(Quoted(name), what));
      }
    }
    const JsonNode* ttl = FindJsonMember(object, "timeToLiveSecs", true);
    if (ttl != nullptr) {
      int64_t t = 0;
      const IntResult res =
          ReadInteger(*ttl, 0, std::numeric_limits<uint32_t>::max(), &t);
      if (res == IntResult::kOk) {
        spec.ttl_secs = t;
      } else {
        ok = false;
        std::string what;
        if (res == IntResult::kNotNumber) {
          what = absl::StrCat(
              "timeToLiveSecs must be a number of seconds, "
              "found ",
              JsonKindName(ttl->kind));
        } else if (res == IntResult::kNotInteger) {
          what = absl::StrCat("timeToLiveSecs ", ttl->text,
                              " is not a whole number of seconds");
        } else {
          what = absl::StrCat("timeToLiveSecs ", ttl->text,
                              " is out of range: use 0 (the global TTL) to "
                              "4294967295 seconds");
        }
        r_.Error(*ttl, absl::StrCat(Quoted(name), what));
      }
    }
    if (ok) {
      out->config.routes.push_back(std::move(spec));
      out->text_begin.push_back(text->begin);
    } else if (!spec.text.empty()) {
      spec.priority = kDefaultPriority;
      spec.ttl_secs = 0;
      out->extra_routes.push_back(std::move(spec));
      out->extra_text_begin.push_back(text->begin);
    }
  }

  void ParseStoreAndForward(const JsonNode& desired, int minor,
                            ManifestParse* out) {
    const JsonNode* saf =
        FindJsonMember(desired, "storeAndForwardConfiguration", true);
    if (saf == nullptr || saf->kind == JsonNode::Kind::kNull) {
      if (minor >= 1) {
        r_.Add(Diagnostic::Severity::kError, desired.begin, desired.begin + 1,
               absl::StrCat("schemaVersion ", out->config.schema_version,
                            " requires \"storeAndForwardConfiguration\""),
               "add \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": "
               "7200}");
      }
      return;
    }
    if (saf->kind != JsonNode::Kind::kObject) {
      r_.Error(*saf, absl::StrCat("\"storeAndForwardConfiguration\" must be "
                                  "an object, found ",
                                  JsonKindName(saf->kind)));
      return;
    }
    const JsonNode* ttl = FindJsonMember(*saf, "timeToLiveSecs", true);
    if (ttl == nullptr) {
      r_.Error(*saf,
               "\"storeAndForwardConfiguration\" has no \"timeToLiveSecs\" "
               "(edgeHub would read 0 and expire every message at once)",
               "add \"timeToLiveSecs\": 7200 (or -1 for no expiry)");
    } else {
      int64_t t = 0;
      const IntResult res =
          ReadInteger(*ttl, std::numeric_limits<int32_t>::min(),
                      std::numeric_limits<int32_t>::max(), &t);
      if (res == IntResult::kOk) {
        out->config.ttl_secs = t;
      } else if (res == IntResult::kNotNumber) {
        r_.Error(*ttl, absl::StrCat("storeAndForwardConfiguration."
                                    "timeToLiveSecs must be a number of "
                                    "seconds, found ",
                                    JsonKindName(ttl->kind)));
      } else if (res == IntResult::kNotInteger) {
        r_.Error(*ttl,
                 absl::StrCat("storeAndForwardConfiguration."
                              "timeToLiveSecs ",
                              ttl->text, " is not a whole number of seconds"));
      } else {
        r_.Error(*ttl, absl::StrCat("storeAndForwardConfiguration."
                                    "timeToLiveSecs ",
                                    ttl->text,
                                    " does not fit a 32-bit integer (use a "
                                    "negative value for no expiry)"));
      }
    }
    const JsonNode* limits = FindJsonMember(*saf, "storeLimits", true);
    if (limits == nullptr || limits->kind == JsonNode::Kind::kNull) return;
    if (limits->kind != JsonNode::Kind::kObject) {
      r_.Error(*limits, absl::StrCat("storeLimits must be an object, found ",
                                     JsonKindName(limits->kind)));
      return;
    }
    const JsonNode* max = FindJsonMember(*limits, "maxSizeBytes", true);
    if (max == nullptr) {
      r_.Error(*limits, "storeLimits has no \"maxSizeBytes\"");
      return;
    }
    int64_t bytes = 0;
    if (ReadInteger(*max, 0, std::numeric_limits<int64_t>::max(), &bytes) ==
        IntResult::kOk) {
      out->config.max_size_bytes = bytes;
    } else {
      r_.Error(*max, absl::StrCat("storeLimits.maxSizeBytes must be a whole "
                                  "number of bytes >= 0, found ",
                                  max->kind == JsonNode::Kind::kNumber
                                      ? max->text
                                      : std::string(JsonKindName(max->kind))));
    }
  }

  absl::string_view src_;
  ManifestReporter& r_;
};

}  // namespace

void ParseManifest(absl::string_view manifest_json, ManifestReporter* reporter,
                   ManifestParse* out) {
  ManifestParser(manifest_json, reporter).Run(out);
}

}  // namespace edgeroute::query::internal
