#include "strata/text/megatron_preprocess.h"

#include <nlohmann/json.hpp>

#include <exception>
#include <filesystem>
#include <fstream>
#include <thread>

#include "strata/core/error.h"
#include "strata/io/megatron_indexed_writer.h"

namespace strata::text {

namespace {

// Lines read and encoded together: enough to keep every worker busy, few enough to bound memory.
constexpr size_t kBatchLines = 4096;

std::vector<std::string> sentences_of(const nlohmann::json& value, const std::string& key, const std::string& where) {
  if (value.is_string()) return {value.get<std::string>()};
  if (value.is_array() && std::all_of(value.begin(), value.end(), [](const auto& s) { return s.is_string(); }))
    return value.get<std::vector<std::string>>();
  fail(where, ": \"", key, "\" is ", value.dump().substr(0, 80), ", expected a string or a list of strings");
}

}  // namespace

std::vector<EncodedDocument> encode_json_line(const std::string& line, const std::vector<std::string>& json_keys,
                                              const Tokenizer& tokenizer, bool append_eod, const std::string& where) {
  nlohmann::json data;
  try {
    data = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not a JSON object (", e.what(), ")");
  }
  if (!data.is_object()) fail(where, ": ", data.type_name(), ", expected a JSON object");
  std::vector<EncodedDocument> documents;
  for (const auto& key : json_keys) {
    if (!data.contains(key)) fail(where, ": no key \"", key, "\" (--json-keys)");
    EncodedDocument document;
    for (const auto& sentence : sentences_of(data[key], key, where)) {
      std::vector<int64_t> ids;
      try {
        ids = tokenizer.encode(sentence, AddSpecialTokens::yes);
      } catch (const Error& e) {
        fail(where, ": \"", key, "\": ", e.what());
      }
      if (ids.empty()) continue;
      document.ids.insert(document.ids.end(), ids.begin(), ids.end());
      document.sentence_lengths.push_back(static_cast<int32_t>(ids.size()));
    }
    if (!document.ids.empty() && append_eod) {
      const auto eod = tokenizer.eod_id();
      if (!eod) fail("--append-eod: the tokenizer has no end-of-document (EOS) token");
      document.ids.push_back(*eod);
      ++document.sentence_lengths.back();
    }
    documents.push_back(std::move(document));
  }
  return documents;
}

std::vector<std::string> preprocess_jsonl(const PreprocessOptions& o,
                                          const std::function<std::unique_ptr<Tokenizer>()>& open_tokenizer,
                                          const std::function<void(const PreprocessProgress&)>& progress) {
  if (o.workers < 1) fail("--workers ", o.workers, ": expected at least 1");
  if (o.json_keys.empty()) fail("--json-keys: give at least one key");
  std::ifstream in(o.input, std::ios::binary);
  if (!in) fail("--input ", o.input, ": cannot be read");
  std::error_code error;
  const uint64_t total = std::filesystem::file_size(o.input, error);
  std::vector<std::unique_ptr<Tokenizer>> tokenizers;
  for (int w = 0; w < o.workers; ++w) tokenizers.push_back(open_tokenizer());
  const auto dtype = io::megatron_token_dtype(tokenizers[0]->vocab_size());
  std::vector<std::string> prefixes;
  std::vector<std::unique_ptr<io::MegatronIndexedWriter>> writers;
  for (const auto& key : o.json_keys) {
    prefixes.push_back(o.output_prefix + "_" + key + "_document");
    writers.push_back(std::make_unique<io::MegatronIndexedWriter>(prefixes.back(), dtype));
  }
  PreprocessProgress state{0, error ? 0 : total, 0};
  std::vector<std::string> lines;
  uint64_t first_line = 1;  // the number of the batch's first line in the file
  for (bool more = true; more;) {
    lines.clear();
    std::string line;
    while (lines.size() < kBatchLines && (more = static_cast<bool>(std::getline(in, line)))) {
      state.bytes_read += line.size() + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(std::move(line));
    }
    // Worker w encodes lines [w n / W, (w + 1) n / W); results go back in input order.
    std::vector<std::vector<EncodedDocument>> encoded(lines.size());
    std::vector<std::exception_ptr> failures(tokenizers.size());
    {
      std::vector<std::jthread> workers;
      for (size_t w = 0; w < tokenizers.size(); ++w)
        workers.emplace_back([&, w] {
          const size_t begin = w * lines.size() / tokenizers.size(), end = (w + 1) * lines.size() / tokenizers.size();
          try {
            for (size_t i = begin; i < end; ++i)
              encoded[i] = encode_json_line(lines[i], o.json_keys, *tokenizers[w], o.append_eod,
                                            cat("--input ", o.input, " line ", first_line + i));
          } catch (...) {
            failures[w] = std::current_exception();
          }
        });
    }
    for (const auto& failure : failures)  // the earliest line's error: worker slices are in order
      if (failure) std::rethrow_exception(failure);
    for (auto& documents : encoded)
      for (size_t k = 0; k < writers.size(); ++k) writers[k]->add_document(documents[k].ids, documents[k].sentence_lengths);
    state.documents += lines.size();
    first_line += lines.size();
    progress(state);
  }
  for (auto& writer : writers) writer->finish();
  return prefixes;
}

}  // namespace strata::text
