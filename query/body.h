// $body queries: the compile-time check of a path (edgeHub's JsonPath.g4),
// and the decoding of a body into the text the JSON parser reads. The
// run-time lookup of a path in the parsed body is the evaluator's
// (body.cc implements those Evaluator members). Internal to //query.

#ifndef EDGEROUTE_QUERY_BODY_H_
#define EDGEROUTE_QUERY_BODY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgeroute::query::internal {

// A parsed $body path: $body.a.b[2].c is {a}, {b, [2]}, {c}.
struct BodyPath {
  struct Segment {
    std::string name;  // "*" = every member or item
    std::vector<uint32_t> indexes;
  };
  std::vector<Segment> segments;
  // Trailing text after a valid path: edgeHub compiles it, but its
  // run-time path parser rejects it, so the query is undefined on every
  // message.
  bool junk = false;
  // One member of the top-level object ($body.name, the usual case): looked
  // up without the general walk. Set by Program::BodySlot.
  bool top_member = false;
};

// Checks a JsonPath (the text after "$body."). Returns false with a reason
// on a compile-time error; sets parsed->junk for trailing text.
bool ParseBodyPath(absl::string_view path, BodyPath* parsed,
                   std::string* error);

// The contentEncoding values edgeHub decodes bodies with.
enum class BodyEncoding : uint8_t { kUtf8, kUtf16, kUtf32 };

// A little-endian UTF-16 or UTF-32 body as UTF-8, as .NET's Encoding decodes
// it (each ill-formed unit, a lone surrogate, a value past U+10FFFF or a
// truncated last unit is U+FFFD). Reuses *buffer; returns a view of it.
absl::string_view TranscodeBody(absl::string_view body, BodyEncoding encoding,
                                std::string* buffer);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_BODY_H_
