// libFuzzer target: the tuned JsonTape::Parse against the parser it replaced
// (json_reference.h). For any input both must agree on success and, when
// it parses, on every tape entry; every number token's JsonNumberValue must
// equal std::strtod bit for bit. The input is also tried as a number token
// alone, so that the fuzzer can explore numbers directly. Parse(text, keep)
// must agree too, with the reference's tape cut down to the kept members,
// for no members, a fixed few, and the input's own last top-level key.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "query/json.h"
#include "query/json_reference.h"

namespace {

using edgeroute::query::internal::JsonMemberSet;
using edgeroute::query::internal::JsonNumberValue;
using edgeroute::query::internal::JsonTape;

void CheckNumber(absl::string_view token) {
  const std::string copy(token);
  const double want = std::strtod(copy.c_str(), nullptr);
  const double got = JsonNumberValue(token);
  if (std::memcmp(&want, &got, sizeof want) != 0) std::abort();
}

// Aborts unless `tape` holds exactly `want`; checks its numbers.
void CheckTape(const JsonTape& tape, const std::vector<JsonTape::Entry>& want) {
  if (tape.entry(0).next != want.size()) std::abort();
  for (uint32_t i = 0; i < want.size(); ++i) {
    const JsonTape::Entry& a = tape.entry(i);
    const JsonTape::Entry& b = want[i];
    if (a.type != b.type || a.flags != b.flags || a.begin != b.begin ||
        a.end != b.end || a.next != b.next) {
      std::abort();
    }
    if (a.type == JsonTape::kNumber) {
      CheckNumber(tape.raw(a));
      const std::string copy(tape.raw(a));
      const double want_value = std::strtod(copy.c_str(), nullptr);
      double d = 0;
      if (!tape.NumberValue(a, &d)) std::abort();
      if (std::memcmp(&d, &want_value, sizeof d) != 0) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<JsonTape::Entry> want;
  const bool ok = edgeroute::query::internal::reference::Parse(text, &want);

  // A fresh tape is sized for this input alone, so AddressSanitizer sees a
  // write past it; the reused one has stale bytes past the text.
  JsonTape fresh;
  static JsonTape* reused = new JsonTape();
  if (fresh.Parse(text) != ok || reused->Parse(text) != ok) std::abort();
  if (ok) {
    CheckTape(fresh, want);
    CheckTape(*reused, want);
  }

  static const JsonMemberSet* const fixed = [] {
    auto* set = new JsonMemberSet();
    for (const char* name : {"a", "b", "n", "temperature", ""}) set->Add(name);
    return set;
  }();
  JsonMemberSet last_key;
  if (ok && want[0].next > 1) {
    uint32_t k = 1;
    while (want[k + 1].next < want[0].next) k = want[k + 1].next;
    last_key.Add(text.substr(want[k].begin, want[k].end - want[k].begin));
  }
  for (const JsonMemberSet* keep :
       {static_cast<const JsonMemberSet*>(&last_key), fixed}) {
    JsonTape kept;
    if (kept.Parse(text, *keep) != ok || reused->Parse(text, *keep) != ok) {
      std::abort();
    }
    if (ok) {
      const std::vector<JsonTape::Entry> cut =
          edgeroute::query::internal::reference::KeepMembers(want, text, *keep);
      CheckTape(kept, cut);
      CheckTape(*reused, cut);
    }
  }

  // The input as a member value: a number token when the tape says so.
  const std::string doc = "{\"n\":" + std::string(text) + "}";
  JsonTape number_tape;
  if (number_tape.Parse(doc) &&
      number_tape.entry(2).type == JsonTape::kNumber &&
      number_tape.entry(0).next == 3) {
    const absl::string_view token = number_tape.raw(number_tape.entry(2));
    CheckNumber(token);
    const std::string copy(token);
    const double want_value = std::strtod(copy.c_str(), nullptr);
    double d = 0;
    number_tape.NumberValue(number_tape.entry(2), &d);
    if (std::memcmp(&d, &want_value, sizeof d) != 0) std::abort();
  }
  return 0;
}
