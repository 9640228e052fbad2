#pragma once
// The safetensors header: an 8-byte little-endian length N, N bytes of JSON naming every tensor's
// dtype, shape and byte range, then the data section. This part knows nothing of LibTorch so the
// fuzzer can build it alone; it validates everything a reader later trusts (offsets, sizes, layout)
// and throws strata::Error, naming the file and the problem, for any bad input.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

std::string_view dtype_name(DType dtype);  // "F32", "BF16", ... as the format spells them
std::optional<DType> dtype_from_name(std::string_view name);
size_t dtype_size(DType dtype);  // bytes per element

// The reference implementation's cap on N: a header beyond it is corrupt or hostile, not a model.
inline constexpr uint64_t kMaxSafetensorsHeaderSize = 100'000'000;

struct TensorEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // byte range relative to the start of the data section

  bool operator==(const TensorEntry&) const = default;
};

struct SafetensorsHeader {
  std::vector<TensorEntry> tensors;  // sorted by begin
  std::map<std::string, std::string> metadata;
  uint64_t header_size;  // N, the JSON length; the data section starts at byte 8 + N
};

// `bytes` is the whole file, or at least its first 8 + N bytes; `file_size` is the full size, so
// the data section is known to be file_size - 8 - N bytes. `source` (a path) starts every error.
SafetensorsHeader parse_safetensors_header(std::string_view bytes, uint64_t file_size,
                                           const std::string& source);

// The 8-byte length followed by the JSON, padded with spaces to a multiple of 8 bytes so the data
// section that follows starts aligned. Metadata is omitted when empty.
std::string encode_safetensors_header(const std::vector<TensorEntry>& tensors,
                                      const std::map<std::string, std::string>& metadata);

}  // namespace strata::io
