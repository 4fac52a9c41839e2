#include "query/manifest.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/json_reader.h"
#include "base/json_string.h"
#include "base/source_text.h"
#include "message/message.h"

namespace edgeroute::query {
namespace {

// Manifests are read with the positioned JSON reader (base/json_reader.h):
// strict JSON, a byte order mark tolerated; a lone surrogate escape reads as
// U+FFFD (it cannot be UTF-8); other bytes are kept as they are (route text
// is repaired when it is compiled).
constexpr JsonStringOptions kManifestStrings = {LoneSurrogate::kReplace,
                                                /*require_utf8=*/false};

JsonReaderOptions ManifestReaderOptions() {
  JsonReaderOptions options;
  options.max_depth = 128;
  options.allow_byte_order_mark = true;
  options.strings = kManifestStrings;
  return options;
}

// ---------------------------------------------------------------------------
// Positions and diagnostics in the manifest text.

class Reporter {
 public:
  explicit Reporter(absl::string_view src) : src_(src), lines_(src) {}

  const LineIndex& lines() const { return lines_; }

  void Add(Diagnostic::Severity severity, size_t begin, size_t end,
           std::string message, std::string suggestion = "") {
    Diagnostic d;
    d.severity = severity;
    d.message = std::move(message);
    d.suggestion = std::move(suggestion);
    const TextPosition p = lines_.Position(begin);
    d.line = p.line;
    d.column = p.column;
    d.end_column = EndColumnOf(src_, begin, end, p);
    d.excerpt = CaretExcerpt(src_, p.line_begin, d.column, d.end_column);
    if (d.is_error()) ++errors_;
    diagnostics_.push_back(std::move(d));
  }
  void Error(const JsonNode& at, std::string message,
             std::string suggestion = "") {
    Add(Diagnostic::Severity::kError, at.begin, at.end, std::move(message),
        std::move(suggestion));
  }
  void Warning(const JsonNode& at, std::string message,
               std::string suggestion = "") {
    Add(Diagnostic::Severity::kWarning, at.begin, at.end, std::move(message),
        std::move(suggestion));
  }
  // Reports at a member's name rather than its value.
  void ErrorAtKey(const JsonNode& member, std::string message,
                  std::string suggestion = "") {
    Add(Diagnostic::Severity::kError, member.key_begin,
        member.key_begin + member.key.size() + 2, std::move(message),
        std::move(suggestion));
  }
  void WarningAtKey(const JsonNode& member, std::string message,
                    std::string suggestion = "") {
    Add(Diagnostic::Severity::kWarning, member.key_begin,
        member.key_begin + member.key.size() + 2, std::move(message),
        std::move(suggestion));
  }
  void Push(Diagnostic d) {
    if (d.is_error()) ++errors_;
    diagnostics_.push_back(std::move(d));
  }

  int errors() const { return errors_; }
  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }

 private:
  absl::string_view src_;
  LineIndex lines_;
  std::vector<Diagnostic> diagnostics_;
  int errors_ = 0;
};

// ---------------------------------------------------------------------------
// Numbers as Newtonsoft converts them to integer members.

enum class IntResult { kOk, kNotNumber, kNotInteger, kOutOfRange };

// Reads an integral JSON number (a fraction or exponent is fine when the
// value is whole, e.g. 7200.0 or 1e3) within [min, max].
IntResult ReadInteger(const JsonNode& node, int64_t min, int64_t max,
                      int64_t* value) {
  if (node.kind != JsonNode::Kind::kNumber) return IntResult::kNotNumber;
  const std::string& t = node.text;
  if (t.find_first_of(".eE") == std::string::npos) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(t, &v)) return IntResult::kOutOfRange;
    if (v < min || v > max) return IntResult::kOutOfRange;
    *value = v;
    return IntResult::kOk;
  }
  const double d = std::strtod(t.c_str(), nullptr);
  if (std::isfinite(d) && d != std::floor(d)) return IntResult::kNotInteger;
  if (!std::isfinite(d) || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    return IntResult::kOutOfRange;
  }
  *value = static_cast<int64_t>(d);
  return IntResult::kOk;
}

// ---------------------------------------------------------------------------
// Schema.

// .NET System.Version parsing: 2 to 4 components separated by '.', each an
// Int32 >= 0 (surrounding white space and a sign are tolerated, as
// Int32.Parse with NumberStyles.Integer does).
bool ParseDotNetVersion(absl::string_view text, int* major, int* minor) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() < 2 || parts.size() > 4) return false;
  int values[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
    bool negative = false;
    if (!p.empty() && (p[0] == '+' || p[0] == '-')) {
      negative = p[0] == '-';
      p.remove_prefix(1);
    }
    if (p.empty() || p.size() > 10) return false;
    int64_t v = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (negative) v = -v;
    if (v < 0 || v > std::numeric_limits<int32_t>::max()) return false;
    values[i] = static_cast<int>(v);
  }
  *major = values[0];
  *minor = values[1];
  return true;
}

// Newtonsoft's JSON path form of a property name (JToken.Path): names with
// any of . space ' / " [ ] ( ) or a control/line-separator character become
// ['name'] with ' and \ and control characters escaped.
std::string NewtonsoftPathName(absl::string_view name) {
  static constexpr absl::string_view kSpecial = ". '/\"[]()\t\n\r\f\b\\";
  bool special = name.find_first_of(kSpecial) != absl::string_view::npos ||
                 name.find("\xC2\x85") != absl::string_view::npos ||
                 name.find("\xE2\x80\xA8") != absl::string_view::npos ||
                 name.find("\xE2\x80\xA9") != absl::string_view::npos;
  if (!special) return std::string(name);
  std::string out = "['";
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    switch (c) {
      case '\'':
        out += "\\'";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\b':
        out += "\\b";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[(c >> 4) & 0xF]);
          out.push_back(kHex[c & 0xF]);
        } else if (name.substr(i, 2) == "\xC2\x85") {
          out += "\\u0085";
          ++i;
        } else if (name.substr(i, 3) == "\xE2\x80\xA8") {
          out += "\\u2028";
          i += 2;
        } else if (name.substr(i, 3) == "\xE2\x80\xA9") {
          out += "\\u2029";
          i += 2;
        } else {
          out.push_back(c);
        }
    }
  }
  out += "']";
  return out;
}

bool IsBlank(absl::string_view s) {
  return absl::StripAsciiWhitespace(s).empty();
}

std::string Quoted(absl::string_view name) {
  return absl::StrCat("route '", name, "': ");
}

// What the parse learned, including what CompileEdgeHubConfig needs to map
// route diagnostics back into the manifest.
struct ParseResult {
  EdgeHubConfig config;
  // Per route in config.routes: the source offset of its text's opening
  // quote (the route string itself, or the "route" member's value).
  std::vector<size_t> text_begin;
  // Routes that had manifest-level errors (bad priority, ...) but whose text
  // can still be compiled to find more errors. Parallel to extra_text_begin.
  std::vector<RouteSpec> extra_routes;
  std::vector<size_t> extra_text_begin;
  // The routes object could be read (routes can be compiled).
  bool routes_readable = false;
};

class ManifestParser {
 public:
  ManifestParser(absl::string_view src, Reporter* reporter)
      : src_(src), r_(*reporter) {}

  void Run(ParseResult* out) {
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

  void ParseDesired(const JsonNode& desired, ParseResult* out) {
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

  void ParseRoutes10(const JsonNode& desired, ParseResult* out) {
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
                          ParseResult* out) {
    const JsonNode* text = FindJsonMember(object, "route", true);
    if (text != nullptr && text->kind == JsonNode::Kind::kString &&
        !IsBlank(text->text)) {
      out->extra_routes.push_back(
          RouteSpec{name, text->text, kDefaultPriority, 0});
      out->extra_text_begin.push_back(text->begin);
    }
  }

  void ParseRoutes11(const JsonNode& desired, ParseResult* out) {
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
                        ParseResult* out) {
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
                            ParseResult* out) {
    const JsonNode* saf = FindJsonMember(desired, "storeAndForwardConfiguration", true);
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
  Reporter& r_;
};

absl::Status ErrorsToStatus(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : diagnostics) {
    if (!d.is_error()) continue;
    lines.push_back(absl::StrCat(d.line, ":", d.column, ": ", d.message));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(lines.size(), lines.size() == 1 ? " error" : " errors",
                   " in the manifest:\n", absl::StrJoin(lines, "\n")));
}

// Moves a diagnostic about a route's text to the text's place in the
// manifest source. `string_begin` is the offset of the route string's
// opening quote.
void MapIntoManifest(absl::string_view src, const LineIndex& lines,
                     size_t string_begin, Diagnostic* d) {
  std::string decoded;
  std::vector<size_t> offsets;
  JsonStringError error;
  if (DecodeJsonString(src, string_begin, kManifestStrings, &decoded, &offsets,
                       &error) == 0) {
    return;  // cannot happen: the string was decoded before
  }
  const size_t begin_in_text = OffsetOfLineColumn(decoded, d->line, d->column);
  size_t end_in_text = OffsetOfLineColumn(decoded, d->line, d->end_column);
  if (end_in_text <= begin_in_text) end_in_text = begin_in_text + 1;
  if (end_in_text >= offsets.size()) end_in_text = offsets.size() - 1;
  const size_t begin = offsets[begin_in_text];
  size_t end = offsets[end_in_text];
  if (end <= begin) end = begin + 1;
  const TextPosition p = lines.Position(begin);
  d->line = p.line;
  d->column = p.column;
  d->end_column = EndColumnOf(src, begin, end, p);
  d->excerpt = CaretExcerpt(src, p.line_begin, d->column, d->end_column);
}

// Finds the route a RouteSet diagnostic is about from its "route '<name>': "
// prefix (the longest name that matches wins).
class RouteFinder {
 public:
  explicit RouteFinder(const std::vector<RouteSpec>& routes) {
    for (size_t i = 0; i < routes.size(); ++i) {
      index_.emplace(routes[i].name, static_cast<int>(i));
    }
  }

  // The route's index, or -1.
  int Find(absl::string_view message) const {
    constexpr absl::string_view kPrefix = "route '";
    if (message.substr(0, kPrefix.size()) != kPrefix) return -1;
    int best = -1;
    for (size_t at = message.find("': ", kPrefix.size());
         at != absl::string_view::npos; at = message.find("': ", at + 1)) {
      auto it =
          index_.find(message.substr(kPrefix.size(), at - kPrefix.size()));
      if (it != index_.end()) best = it->second;
    }
    return best;
  }

 private:
  absl::flat_hash_map<std::string, int> index_;
};

}  // namespace

absl::StatusOr<EdgeHubConfig> ParseEdgeHubConfig(
    absl::string_view manifest_json, std::vector<Diagnostic>* diagnostics) {
  Reporter reporter(manifest_json);
  ParseResult result;
  ManifestParser(manifest_json, &reporter).Run(&result);
  const absl::Status status = reporter.errors() > 0
                                  ? ErrorsToStatus(reporter.diagnostics())
                                  : absl::OkStatus();
  if (diagnostics != nullptr) {
    for (Diagnostic& d : reporter.diagnostics()) {
      diagnostics->push_back(std::move(d));
    }
  }
  if (!status.ok()) return status;
  return std::move(result.config);
}

absl::StatusOr<CompiledEdgeHubConfig> CompileEdgeHubConfig(
    absl::string_view manifest_json, const CompileOptions& options,
    std::vector<Diagnostic>* diagnostics) {
  Reporter reporter(manifest_json);
  ParseResult result;
  ManifestParser(manifest_json, &reporter).Run(&result);
  std::unique_ptr<RouteSet> set;
  if (result.routes_readable) {
    // Compile the well-formed routes together; routes with manifest-level
    // errors are compiled separately, only to find errors in their text.
    std::vector<Diagnostic> route_diags;
    absl::StatusOr<std::unique_ptr<RouteSet>> compiled =
        RouteSet::Compile(result.config.routes, options, &route_diags);
    if (compiled.ok()) {
      set = *std::move(compiled);
    } else if (route_diags.empty()) {
      // A failure without diagnostics: report the status itself.
      Diagnostic d;
      d.message = std::string(compiled.status().message());
      reporter.Push(std::move(d));
    }
    std::vector<Diagnostic> extra_diags;
    if (!result.extra_routes.empty()) {
      (void)RouteSet::Compile(result.extra_routes, options, &extra_diags);
    }
    auto map_all = [&](std::vector<Diagnostic>* diags,
                       const std::vector<RouteSpec>& routes,
                       const std::vector<size_t>& begins) {
      const RouteFinder finder(routes);
      for (Diagnostic& d : *diags) {
        const int i = finder.Find(d.message);
        if (i >= 0) {
          MapIntoManifest(manifest_json, reporter.lines(), begins[i], &d);
        }
        reporter.Push(std::move(d));
      }
    };
    map_all(&route_diags, result.config.routes, result.text_begin);
    map_all(&extra_diags, result.extra_routes, result.extra_text_begin);
  }
  std::vector<Diagnostic>& all = reporter.diagnostics();
  // Report in manifest order.
  std::stable_sort(
      all.begin(), all.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
      });
  const int errors = reporter.errors();
  absl::Status status = errors > 0 ? ErrorsToStatus(all) : absl::OkStatus();
  if (diagnostics != nullptr) {
    for (Diagnostic& d : all) diagnostics->push_back(std::move(d));
  }
  if (!status.ok()) return status;
  if (set == nullptr) {
    return absl::InternalError("route set missing after a clean compile");
  }
  CompiledEdgeHubConfig out;
  out.config = std::move(result.config);
  out.routes = std::move(set);
  return out;
}

}  // namespace edgeroute::query
