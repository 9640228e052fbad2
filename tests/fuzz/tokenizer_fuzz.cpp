// libFuzzer target for the tokenizer.json pipeline, on bytelevel_bpe (NFC, Qwen2's Split regex,
// byte-level BPE, three special tokens): any input is refused as invalid UTF-8 or encodes to ids
// in the vocabulary that decode to the text's NFC form, and streaming those ids one by one gives
// the same text.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "strata/core/error.h"
#include "strata/text/hf_tokenizer.h"
#include "strata/text/text_stream.h"
#include "strata/text/unicode.h"
#include "strata/text/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer = strata::text::HfTokenizer::open(STRATA_FUZZ_TOKENIZER);
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = strata::text::valid_utf8_prefix(text) == text.size();
  std::vector<int64_t> ids;
  try {
    ids = tokenizer->encode(text);
  } catch (const strata::Error&) {
    if (valid) std::abort();  // valid text is never refused
    return 0;
  }
  if (!valid) std::abort();  // invalid text is always refused
  for (const int64_t id : ids)
    if (id < 0 || id >= tokenizer->vocab_size()) std::abort();
  const std::string decoded = tokenizer->decode(ids);
  if (decoded != strata::text::normalize(text, strata::text::NormalizationForm::NFC)) std::abort();
  strata::text::TextStream stream(*tokenizer, {});
  std::string streamed;
  for (const int64_t id : ids) streamed += stream.push(id);
  streamed += stream.finish();
  if (streamed != decoded) std::abort();
  return 0;
}
