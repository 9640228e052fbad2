// strata's SentencePiece module: libsentencepiece behind the C interface of
// sentencepiece_module.h (which says why it is a module of its own).
#include "sentencepiece_module.h"

#include <sentencepiece_processor.h>

#include <string>
#include <vector>

namespace {

sentencepiece::SentencePieceProcessor& processor_of(void* p) { return *static_cast<sentencepiece::SentencePieceProcessor*>(p); }

void send(strata_sp_sink sink, void* context, const std::string& text) { sink(context, text.data(), text.size()); }

}  // namespace

extern "C" {

void* strata_sp_open(const char* path, strata_sp_sink error, void* context) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(path);
  if (status.ok()) return processor;
  send(error, context, status.ToString());
  delete processor;
  return nullptr;
}

void strata_sp_close(void* processor) { delete &processor_of(processor); }

int strata_sp_encode(void* processor, const char* text, size_t size, strata_sp_sink ids, strata_sp_sink error, void* context) {
  std::vector<int> out;
  const auto status = processor_of(processor).Encode(std::string(text, size), &out);
  if (!status.ok()) {
    send(error, context, status.ToString());
    return 1;
  }
  ids(context, out.data(), out.size() * sizeof(int));
  return 0;
}

int strata_sp_decode(void* processor, const int* ids, size_t count, strata_sp_sink text, strata_sp_sink error, void* context) {
  std::string out;
  const auto status = processor_of(processor).Decode(std::vector<int>(ids, ids + count), &out);
  if (!status.ok()) {
    send(error, context, status.ToString());
    return 1;
  }
  send(text, context, out);
  return 0;
}

int strata_sp_piece_size(void* processor) { return processor_of(processor).GetPieceSize(); }
int strata_sp_eos_id(void* processor) { return processor_of(processor).eos_id(); }
int strata_sp_bos_id(void* processor) { return processor_of(processor).bos_id(); }
int strata_sp_piece_to_id(void* processor, const char* piece, size_t size) {
  return processor_of(processor).PieceToId(std::string(piece, size));
}
int strata_sp_is_control(void* processor, int id) { return processor_of(processor).IsControl(id); }
int strata_sp_is_unknown(void* processor, int id) { return processor_of(processor).IsUnknown(id); }
void strata_sp_id_to_piece(void* processor, int id, strata_sp_sink piece, void* context) {
  send(piece, context, processor_of(processor).IdToPiece(id));
}
}
