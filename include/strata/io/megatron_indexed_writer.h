#pragma once
// Writes a Megatron indexed dataset (megatron_indexed.h) as Megatron-Core's IndexedDatasetBuilder
// does, byte for byte: documents are appended in order, each with the lengths of its sequences
// (one per sentence; one for a whole document), and finish() writes the .idx. Both files are
// written under temporary names and renamed into place only by finish() (atomic_file.h): an
// interrupted run leaves no half-written dataset under the prefix.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "strata/io/atomic_file.h"
#include "strata/io/megatron_indexed.h"

namespace strata::io {

class MegatronIndexedWriter {
 public:
  MegatronIndexedWriter(const std::string& prefix, MegatronDType dtype);

  // `tokens` are the document's ids, `sequence_lengths` how they divide into sequences (they sum
  // to tokens.size()). An empty document adds a document of no sequences, as Megatron's does.
  // An id the dtype cannot hold is an error naming it.
  void add_document(const std::vector<int64_t>& tokens, const std::vector<int32_t>& sequence_lengths);
  void finish();

 private:
  void flush();

  std::string prefix_;
  MegatronDType dtype_;
  std::unique_ptr<AtomicFile> bin_;
  std::vector<char> pending_;  // .bin bytes not yet written
  std::vector<int32_t> lengths_;
  std::vector<int64_t> document_indices_{0};
  int64_t documents_ = 0;
};

}  // namespace strata::io
