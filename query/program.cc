#include "query/program.h"

#include "absl/strings/ascii.h"

namespace edgeroute::query::internal {

const char* StaticTypeName(StaticType type) {
  switch (type) {
    case StaticType::kString:
      return "string";
    case StaticType::kNumber:
      return "number";
    case StaticType::kBool:
      return "bool";
    case StaticType::kNull:
      return "null";
    case StaticType::kUndefined:
      return "undefined";
    case StaticType::kQueryValue:
      return "body value";
  }
  return "?";
}

int Program::AddNode(Node node) {
  nodes_.push_back(std::move(node));
  return int(nodes_.size() - 1);
}

int Program::AddConstant(StaticType type, Value value) {
  Node n;
  n.op = Op::kConst;
  n.type = type;
  n.constant = value;
  return AddNode(std::move(n));
}

absl::string_view Program::InternString(std::string s) {
  strings_.push_back(std::move(s));
  return strings_.back();
}

namespace {

// The slot of `name` among `names`, matched ignoring ASCII case; a new one
// when there is none.
int InternName(absl::string_view name, std::vector<std::string>* names,
               absl::flat_hash_map<std::string, int>* index) {
  std::string key = absl::AsciiStrToLower(name);
  auto it = index->find(key);
  if (it != index->end()) return it->second;
  const int slot = int(names->size());
  names->emplace_back(name);
  index->emplace(std::move(key), slot);
  return slot;
}

}  // namespace

int Program::AppSlot(absl::string_view name) {
  return InternName(name, &app_names_, &app_index_);
}

int Program::SysSlot(absl::string_view name) {
  return InternName(name, &sys_names_, &sys_index_);
}

int Program::BodySlot(absl::string_view path, BodyPath parsed) {
  std::string key(path);  // property names are case-sensitive
  auto it = body_index_.find(key);
  if (it != body_index_.end()) return it->second;
  int slot = int(body_paths_.size());
  parsed.top_member = parsed.segments.size() == 1 &&
                      parsed.segments[0].indexes.empty() &&
                      parsed.segments[0].name != "*";
  // A wildcard first segment reads every member.
  if (parsed.segments[0].name == "*") {
    body_members_.AddAll();
  } else {
    body_members_.Add(parsed.segments[0].name);
  }
  body_paths_.push_back(std::move(parsed));
  body_index_.emplace(std::move(key), slot);
  return slot;
}

int Program::BodyCacheSlot(int body_slot, int app_slot) {
  const std::pair<int, int> key(body_slot, app_slot);
  auto it = body_cache_index_.find(key);
  if (it != body_cache_index_.end()) return it->second;
  int slot = int(body_cache_keys_.size());
  body_cache_keys_.push_back(key);
  body_cache_index_.emplace(key, slot);
  return slot;
}

}  // namespace edgeroute::query::internal
