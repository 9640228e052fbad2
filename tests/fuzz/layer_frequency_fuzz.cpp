// libFuzzer target for Megatron's list expressions (--moe-layer-freq, --linear-attention-freq,
// a frequency string in a model config): any text either reads as a frequency or is refused with
// strata::Error, within strata's layer limit; what is read reads back the same from to_string.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "strata/core/error.h"
#include "strata/core/layer_frequency.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  strata::LayerFrequency frequency;
  try {
    frequency = strata::parse_layer_frequency(text, "fuzz input");
  } catch (const strata::Error&) {
    return 0;
  }
  if (frequency.explicit_list.size() > static_cast<size_t>(strata::kMaxLayers)) std::abort();
  if (strata::parse_layer_frequency(strata::to_string(frequency), "round trip") != frequency) std::abort();
  return 0;
}
