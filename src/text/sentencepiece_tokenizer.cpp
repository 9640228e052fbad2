// --tokenizer-type SentencePieceTokenizer: a SentencePiece tokenizer.model, run by the
// SentencePiece library itself (through strata's module, sentencepiece_module.h), as Megatron's
// SentencePieceTokenizer does: encode_as_ids (no BOS added, no special-token splitting), EOS the
// model's eos_id.
#include "strata/text/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#include "sentencepiece_module.h"
#include "strata/core/error.h"
#include "strata/text/utf8.h"

namespace strata::text {

namespace {

// The module's functions, looked up once.
struct Module {
  decltype(&strata_sp_open) open;
  decltype(&strata_sp_close) close;
  decltype(&strata_sp_encode) encode;
  decltype(&strata_sp_decode) decode;
  decltype(&strata_sp_piece_size) piece_size;
  decltype(&strata_sp_eos_id) eos_id;
  decltype(&strata_sp_bos_id) bos_id;
  decltype(&strata_sp_piece_to_id) piece_to_id;
  decltype(&strata_sp_is_control) is_control;
  decltype(&strata_sp_is_unknown) is_unknown;
  decltype(&strata_sp_id_to_piece) id_to_piece;
};

// Where the module may be: STRATA_SENTENCEPIECE_MODULE if set, then the build tree, then the
// installed copy.
Module load_module() {
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("STRATA_SENTENCEPIECE_MODULE")) candidates.emplace_back(path);
  candidates.emplace_back(STRATA_SENTENCEPIECE_MODULE_BUILD);
  candidates.emplace_back(STRATA_SENTENCEPIECE_MODULE_INSTALL);
  std::string tried;
  for (const auto& path : candidates) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!handle) {
      tried += cat("\n  ", path, ": ", dlerror());
      continue;
    }
    const auto symbol = [&](const char* name) {
      void* f = dlsym(handle, name);
      if (!f) fail("the SentencePiece module ", path, " lacks ", name);
      return f;
    };
    Module m;
    m.open = reinterpret_cast<decltype(m.open)>(symbol("strata_sp_open"));
    m.close = reinterpret_cast<decltype(m.close)>(symbol("strata_sp_close"));
    m.encode = reinterpret_cast<decltype(m.encode)>(symbol("strata_sp_encode"));
    m.decode = reinterpret_cast<decltype(m.decode)>(symbol("strata_sp_decode"));
    m.piece_size = reinterpret_cast<decltype(m.piece_size)>(symbol("strata_sp_piece_size"));
    m.eos_id = reinterpret_cast<decltype(m.eos_id)>(symbol("strata_sp_eos_id"));
    m.bos_id = reinterpret_cast<decltype(m.bos_id)>(symbol("strata_sp_bos_id"));
    m.piece_to_id = reinterpret_cast<decltype(m.piece_to_id)>(symbol("strata_sp_piece_to_id"));
    m.is_control = reinterpret_cast<decltype(m.is_control)>(symbol("strata_sp_is_control"));
    m.is_unknown = reinterpret_cast<decltype(m.is_unknown)>(symbol("strata_sp_is_unknown"));
    m.id_to_piece = reinterpret_cast<decltype(m.id_to_piece)>(symbol("strata_sp_id_to_piece"));
    return m;
  }
  fail("SentencePieceTokenizer needs strata's SentencePiece module, which did not load from any of:", tried,
       "\n(set STRATA_SENTENCEPIECE_MODULE to its path)");
}

const Module& module() {
  static const Module m = load_module();
  return m;
}

// Sinks the module writes into.
void append_bytes(void* context, const void* data, size_t size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
}
struct EncodeResult {
  std::vector<int64_t> ids;
  std::string error;
};
void append_ids(void* context, const void* data, size_t size) {
  auto& out = static_cast<EncodeResult*>(context)->ids;
  const size_t count = size / sizeof(int);
  const int* ids = static_cast<const int*>(data);
  out.insert(out.end(), ids, ids + count);
}
void encode_error(void* context, const void* data, size_t size) {
  static_cast<EncodeResult*>(context)->error.assign(static_cast<const char*>(data), size);
}
struct DecodeResult {
  std::string text, error;
};
void decode_text(void* context, const void* data, size_t size) {
  static_cast<DecodeResult*>(context)->text.assign(static_cast<const char*>(data), size);
}
void decode_error(void* context, const void* data, size_t size) {
  static_cast<DecodeResult*>(context)->error.assign(static_cast<const char*>(data), size);
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& file) : where_(file.string()) {
    std::string error;
    processor_ = module().open(where_.c_str(), append_bytes, &error);
    if (!processor_) fail(where_, ": not a SentencePiece model (", error, ")");
  }
  ~SentencePieceTokenizer() override { module().close(processor_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int64_t> encode(std::string_view text, AddSpecialTokens) const override {
    check_utf8(text, "the text to encode");
    EncodeResult result;
    if (module().encode(processor_, text.data(), text.size(), append_ids, encode_error, &result) != 0)
      fail(where_, ": SentencePiece could not encode a text of ", text.size(), " bytes (", result.error, ")");
    return std::move(result.ids);
  }

  std::string decode(std::span<const int64_t> ids) const override {
    std::vector<int> narrow;
    narrow.reserve(ids.size());
    for (const int64_t id : ids) {
      if (id < 0 || id >= vocab_size())
        fail("token id ", id, " is not in the tokenizer's vocabulary (ids run from 0 to ", vocab_size() - 1, ")");
      narrow.push_back(static_cast<int>(id));
    }
    DecodeResult result;
    if (module().decode(processor_, narrow.data(), narrow.size(), decode_text, decode_error, &result) != 0)
      fail(where_, ": SentencePiece could not decode ", ids.size(), " ids (", result.error, ")");
    return std::move(result.text);
  }

  int64_t vocab_size() const override { return module().piece_size(processor_); }
  std::optional<int64_t> eos_id() const override { return id_or_none(module().eos_id(processor_)); }
  std::optional<int64_t> bos_id() const override { return id_or_none(module().bos_id(processor_)); }

  std::optional<int64_t> token_to_id(std::string_view token) const override {
    const int id = module().piece_to_id(processor_, token.data(), token.size());
    // PieceToId answers the unknown token's id for a piece it lacks.
    if (module().is_unknown(processor_, id)) {
      std::string unknown;
      module().id_to_piece(processor_, id, append_bytes, &unknown);
      if (unknown != token) return std::nullopt;
    }
    return id;
  }

  std::vector<int64_t> special_ids() const override {
    std::vector<int64_t> ids;
    for (int id = 0; id < vocab_size(); ++id)
      if (module().is_control(processor_, id)) ids.push_back(id);
    return ids;
  }

 private:
  static std::optional<int64_t> id_or_none(int id) { return id < 0 ? std::nullopt : std::optional<int64_t>(id); }

  void* processor_ = nullptr;
  std::string where_;
};

}  // namespace

std::unique_ptr<Tokenizer> open_sentencepiece(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const fs::path file = fs::is_directory(path) ? path / "tokenizer.model" : path;
  if (!fs::exists(file))
    fail("--tokenizer-model ", path.string(), ": ", fs::is_directory(path) ? "the folder has no tokenizer.model" : "no such file",
         " (SentencePieceTokenizer reads a SentencePiece tokenizer.model)");
  return std::make_unique<SentencePieceTokenizer>(file);
}

}  // namespace strata::text
