#pragma once
// tokenizer.json's "decoder": token strings -> text, as HF tokenizers does. Implemented:
// ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder, Sequence. Anything else
// is refused by name. Without a decoder HF joins the tokens with spaces (NoDecoder below).
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace strata::text {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // One step of the chain: tokens in, tokens out (HF's decode_chain).
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
  // The text: the chain's output joined.
  std::string decode(std::vector<std::string> tokens) const;
};

std::unique_ptr<Decoder> parse_decoder(const nlohmann::json& spec, const std::string& where);
// What HF does for a tokenizer.json whose decoder is null: tokens joined by single spaces.
std::unique_ptr<Decoder> no_decoder();

}  // namespace strata::text
