// How edgeHub reads the values of its desired properties: Newtonsoft.Json's
// conversion of JSON numbers to integer members, .NET's Version parsing of
// schemaVersion, and the JSON-path form (JToken.Path) that names routes.
// Internal to //query (the manifest).
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_QUERY_NEWTONSOFT_H_
#define EDGEROUTE_QUERY_NEWTONSOFT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "base/json_reader.h"

namespace edgeroute::query::internal {

enum class IntResult { kOk, kNotNumber, kNotInteger, kOutOfRange };

// Reads an integral JSON number (a fraction or exponent is fine when the
// value is whole, e.g. 7200.0 or 1e3) within [min, max].
IntResult ReadInteger(const JsonNode& node, int64_t min, int64_t max,
                      int64_t* value);

// .NET System.Version parsing: 2 to 4 components separated by '.', each an
// Int32 >= 0 (surrounding white space and a sign are tolerated, as
// Int32.Parse with NumberStyles.Integer does).
bool ParseDotNetVersion(absl::string_view text, int* major, int* minor);

// Newtonsoft's JSON path form of a property name (JToken.Path): names with
// any of . space ' / " [ ] ( ) or a control/line-separator character become
// ['name'] with ' and \ and control characters escaped.
std::string NewtonsoftPathName(absl::string_view name);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_NEWTONSOFT_H_
