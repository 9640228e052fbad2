#include "strata/io/megatron_indexed_writer.h"

#include <cstring>
#include <limits>

#include "strata/core/error.h"

namespace strata::io {

namespace {

constexpr size_t kFlushBytes = 1 << 20;

template <class T>
void append(std::vector<char>& bytes, T value) {
  const auto at = bytes.size();
  bytes.resize(at + sizeof value);
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

template <class T>
bool fits(int64_t id) {
  return id >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
         static_cast<uint64_t>(id) <= static_cast<uint64_t>(std::numeric_limits<T>::max());
}

bool dtype_holds(MegatronDType dtype, int64_t id) {
  switch (dtype) {
    case MegatronDType::uint8: return fits<uint8_t>(id);
    case MegatronDType::int8: return fits<int8_t>(id);
    case MegatronDType::int16: return fits<int16_t>(id);
    case MegatronDType::uint16: return fits<uint16_t>(id);
    case MegatronDType::int32: return fits<int32_t>(id);
    case MegatronDType::int64: return true;
    case MegatronDType::float32:
    case MegatronDType::float64: return false;
  }
  return false;
}

}  // namespace

MegatronIndexedWriter::MegatronIndexedWriter(const std::string& prefix, MegatronDType dtype)
    : prefix_(prefix), dtype_(dtype) {
  if (dtype == MegatronDType::float32 || dtype == MegatronDType::float64)
    fail(prefix, ": dtype ", megatron_dtype_name(dtype), " cannot hold token ids");
  bin_ = std::make_unique<AtomicFile>(megatron_bin_path(prefix));
}

void MegatronIndexedWriter::add_document(const std::vector<int64_t>& tokens,
                                         const std::vector<int32_t>& sequence_lengths) {
  int64_t total = 0;
  for (const auto length : sequence_lengths) total += length;
  if (total != static_cast<int64_t>(tokens.size()))
    fail(prefix_, ": document ", documents_, " has ", tokens.size(), " tokens but its sequence lengths add up to ",
         total);
  for (const auto id : tokens) {
    if (!dtype_holds(dtype_, id))
      fail(prefix_, ": document ", documents_, " holds token id ", id, ", which ", megatron_dtype_name(dtype_),
           " cannot hold");
    switch (dtype_) {
      case MegatronDType::uint8: append(pending_, static_cast<uint8_t>(id)); break;
      case MegatronDType::int8: append(pending_, static_cast<int8_t>(id)); break;
      case MegatronDType::int16: append(pending_, static_cast<int16_t>(id)); break;
      case MegatronDType::uint16: append(pending_, static_cast<uint16_t>(id)); break;
      case MegatronDType::int32: append(pending_, static_cast<int32_t>(id)); break;
      case MegatronDType::int64: append(pending_, id); break;
      case MegatronDType::float32:
      case MegatronDType::float64: break;  // refused by the constructor
    }
  }
  lengths_.insert(lengths_.end(), sequence_lengths.begin(), sequence_lengths.end());
  document_indices_.push_back(static_cast<int64_t>(lengths_.size()));
  ++documents_;
  if (pending_.size() >= kFlushBytes) flush();
}

void MegatronIndexedWriter::flush() {
  bin_->write(pending_.data(), pending_.size());
  pending_.clear();
}

void MegatronIndexedWriter::finish() {
  flush();
  std::vector<char> index(9);
  std::memcpy(index.data(), "MMIDIDX\0\0", 9);
  append(index, uint64_t{1});
  append(index, static_cast<uint8_t>(dtype_));
  append(index, static_cast<uint64_t>(lengths_.size()));
  append(index, static_cast<uint64_t>(document_indices_.size()));
  for (const auto length : lengths_) append(index, length);
  int64_t pointer = 0;
  for (const auto length : lengths_) {
    append(index, pointer);
    pointer += static_cast<int64_t>(length) * megatron_dtype_bytes(dtype_);
  }
  for (const auto d : document_indices_) append(index, d);
  bin_->commit();
  AtomicFile idx(megatron_idx_path(prefix_));
  idx.write(index.data(), index.size());
  idx.commit();
}

}  // namespace strata::io
