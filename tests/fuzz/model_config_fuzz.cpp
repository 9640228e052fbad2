// libFuzzer target for the model config (`strata train --model-config FILE`, a checkpoint's
// state.json): any bytes either become a config that validates and resolves to a layer pattern,
// or are refused with strata::Error (or, for bytes that are not JSON, nlohmann's exception: a
// parse_error, or out_of_range for a number too large for a double). An accepted config must
// hold every value the input gave, and survive to_json, dump and parse unchanged. Anything else
// (another exception, a sanitizer report, a value changed on the way) is a bug and aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/model/layer_allocation.h"

namespace {

using nlohmann::json;

[[noreturn]] void changed(const char* what, const json& given, const json& held) {
  std::fprintf(stderr, "model config: %s changed:\n  given %s\n  held  %s\n", what, given.dump().c_str(),
               held.dump().c_str());
  std::abort();
}

// A frequency given as a list expression or null is written as what it stands for (a list, or the
// field's default); the round trip below still holds it to that.
bool written_in_another_form(const std::string& key, const json& given) {
  return (key == "moe_layer_freq" || key == "linear_attention_freq") && (given.is_string() || given.is_null());
}

// Every field the input set reads back as given; of rotary_scaling, the keys the input set
// ({"type": "none"} is written as null). strata's former field names (enable_hyper_connections,
// ...) are written under their new names, and null (Megatron's None, unset) as the value it
// stands for: config_json_test checks both.
void check_fields_kept(const json& input, const json& written) {
  for (const auto& [key, given] : input.items()) {
    if (!written.contains(key) || given.is_null()) continue;
    const json& held = written.at(key);
    if (written_in_another_form(key, given)) continue;
    if (!given.is_object()) {
      if (held != given) changed(key.c_str(), given, held);
    } else if (held.is_null()) {
      if (given != json{{"type", "none"}}) changed(key.c_str(), given, held);
    } else {
      for (const auto& [field, value] : given.items())
        if (held.at(field) != value) changed(field.c_str(), value, held.at(field));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  json input;
  try {
    input = json::parse(data, data + size);
  } catch (const json::exception&) {
    return 0;  // not JSON: callers report nlohmann's message with the file name
  }
  strata::TransformerConfig config;
  try {
    config = strata::config_from_json(input, "fuzz input");
    strata::validate(config);
    strata::resolve_layer_pattern(config);
  } catch (const strata::Error&) {
    return 0;  // refused with a message: the expected outcome for most inputs
  }
  const json written = strata::to_json(config);
  check_fields_kept(input, written);
  json again;
  try {
    again = strata::to_json(strata::config_from_json(json::parse(written.dump()), "round trip"));
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "model config: an accepted config's JSON is refused: %s\n", e.what());
    std::abort();
  }
  if (again != written) changed("the whole config, written and read back,", written, again);
  return 0;
}
