#pragma once
// tokenizer.json's "post_processor" for a single text: the special tokens put around every
// encoding (Llama's BOS through TemplateProcessing, RoBERTa's <s> ... </s>). Implemented:
// TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel (ids unchanged), Sequence.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::text {

// The ids that go before and after a single text's ids.
struct SpecialTokenFrame {
  std::vector<int64_t> before, after;
};

// `spec` may be null (no post-processor: nothing added).
SpecialTokenFrame parse_post_processor(const nlohmann::json& spec, const std::string& where);

}  // namespace strata::text
