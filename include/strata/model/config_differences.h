#pragma once
// Whether two configs make models that compute the same function from the same canonical
// weights, and if not, where they differ. Used where a model must be expressed in another
// format's terms (HF export): the format's config, read back, must make this model.
//
// Compared: the layers as one symbol per canonical layer, main decoder then each MTP depth
// ("G-*E/*E"), whether or not they are fused (fusion changes what runs in one TransformerLayer,
// not what is computed, for models without hyper-connections, whose streams are per layer);
// and every field of config_json.h that a layer of the model reads. Not compared: the fields the
// layers above replace (hybrid_layer_pattern, num_layers, the layer-allocation settings), fields
// only the model's absent layer kinds read (mamba_* without a Mamba2 layer, ...), the mHC
// settings when hyper-connections are off, and settings of training or initialisation alone
// (dropout, init_method_std, chunk sizes, dt initialisation, aux-loss and MTP-loss weights).
#include <string>
#include <vector>

#include "strata/core/config.h"

namespace strata {

struct ConfigDifference {
  std::string field;  // a config_json.h field name, or "layers"
  std::string ours, theirs;  // the values as JSON text
};

// Empty when `ours` and `theirs` make the same model; which fields count is decided by `ours`'s
// layers (a field that differs where only `theirs` uses it shows in the layers).
std::vector<ConfigDifference> model_differences(const TransformerConfig& ours, const TransformerConfig& theirs);

// One symbol per canonical layer of the main decoder, then "/" and one depth's symbols per MTP
// depth: "G-*E/*E".
std::string canonical_layer_symbols(const TransformerConfig& config);

}  // namespace strata
