#pragma once
// Megatron's per-layer frequency settings as text (--moe-layer-freq, --linear-attention-freq):
// an integer N, or a Python list expression such as "([0]*3+[1]*5)" or "[1,0]*4" giving one 0/1
// entry per layer. Megatron hands the expression to Python's eval after a character check; here a
// small evaluator reads the same language (integers, lists, parentheses, +, * and **) and nothing
// else, with errors that name the setting, the text and the position.
#include <string>

#include "strata/core/config.h"

namespace strata {

// `where` names the setting in errors ("--moe-layer-freq", "model.json: field 'moe_layer_freq'").
// Text without '[' is an integer, as in Megatron; with '[' it must evaluate to a list of integers
// (at most kMaxLayers entries). Values are checked where they are used (layer_allocation.h).
LayerFrequency parse_layer_frequency(const std::string& text, const std::string& where);

// "4", or "[1,0,1]": what parse_layer_frequency reads back; "" when unset.
std::string to_string(const LayerFrequency& frequency);

}  // namespace strata
