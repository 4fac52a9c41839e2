// A JSON document parsed with nlohmann/json that remembers where each of its
// values and member names starts in the text, so that a configuration file
// can be refused with the line and column of the problem.

#ifndef EDGEROUTE_GATEWAY_AUTH_JSON_POSITIONS_H_
#define EDGEROUTE_GATEWAY_AUTH_JSON_POSITIONS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace edgeroute {
namespace gateway {
namespace auth {

// 1-based line and column (in bytes) of a position in a text.
struct TextPosition {
  size_t line = 1;
  size_t column = 1;
};

// Thread-safety: immutable after Parse; safe for concurrent reads.
class PositionedJson {
 public:
  // Parses `text` (one JSON value, nothing but white space around it).
  // InvalidArgument "LINE:COL: message" for malformed JSON (nlohmann's
  // message, with its byte offset turned into line and column), a member
  // name repeated in one object, or nesting deeper than `max_depth`.
  static absl::StatusOr<PositionedJson> Parse(absl::string_view text,
                                              size_t max_depth = 32);

  // The document; objects keep their members in document order.
  const nlohmann::ordered_json& root() const { return root_; }

  // Where the value at `pointer` (a JSON pointer as built by Pointer; "" is
  // the root) starts, or where its member name starts. The root position
  // for an unknown pointer.
  TextPosition ValueAt(const std::string& pointer) const;
  TextPosition NameAt(const std::string& pointer) const;
  // "LINE:COL" of ValueAt / NameAt.
  std::string WhereValue(const std::string& pointer) const;
  std::string WhereName(const std::string& pointer) const;

  // The JSON pointer of member `name` (escaped per RFC 6901) or element
  // `index` under `parent`.
  static std::string Pointer(const std::string& parent, absl::string_view name);
  static std::string Pointer(const std::string& parent, size_t index);

  // The position of byte `offset` (clamped to the text) in `text`.
  static TextPosition PositionOf(absl::string_view text, size_t offset);

 private:
  friend class PositionRecorder;
  PositionedJson() = default;

  nlohmann::ordered_json root_;
  // Offsets of the first byte of each line.
  std::vector<size_t> line_starts_;
  absl::flat_hash_map<std::string, size_t> value_offsets_;
  absl::flat_hash_map<std::string, size_t> name_offsets_;

  TextPosition PositionOfOffset(size_t offset) const;
};

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_AUTH_JSON_POSITIONS_H_
