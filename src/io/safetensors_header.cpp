#include "strata/io/safetensors_header.h"

#include <algorithm>
#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "strata/core/error.h"

namespace strata::io {
namespace {

using nlohmann::json;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeInfo, 12> kDTypes{{
    {DType::F64, "F64", 8},
    {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},
    {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
}};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  fail("invalid DType value ", static_cast<int>(dtype));
}

std::string valid_dtype_names() {
  std::string names;
  for (const auto& entry : kDTypes) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

constexpr std::string_view kMetadataKey = "__metadata__";

uint64_t read_u64_le(std::string_view bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string format_shape(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += cat(i ? ", " : "", shape[i]);
  return text + "]";
}

// data_offsets as the file spells them, and a half-open byte range of the data section.
std::string format_offsets(uint64_t begin, uint64_t end) { return cat("[", begin, ", ", end, "]"); }
std::string format_range(uint64_t begin, uint64_t end) { return cat("[", begin, ", ", end, ")"); }

// A JSON value quoted in an error, cut short: a hostile header may hold megabytes in one value.
std::string brief(const json& value) {
  constexpr size_t kMaxChars = 80;
  std::string text = value.dump();
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

// "an object", "a number": the JSON type of a value, for "expected ..." messages.
std::string kind_of(const json& value) {
  const std::string_view type = value.type_name();
  return cat(type[0] == 'a' || type[0] == 'o' ? "an " : "a ", type);
}

// nlohmann's "[json.exception.parse_error.101] " tag dropped; the rest says where and why.
std::string parse_error_text(const json::exception& e) {
  std::string_view what = e.what();
  if (auto tag_end = what.find("] "); tag_end != std::string_view::npos) what.remove_prefix(tag_end + 2);
  return std::string(what);
}

// nlohmann keeps the last of two equal keys without a word, which would hide a duplicated tensor
// name (or a duplicated field inside an entry). This SAX pass sees every key as it is read and
// reports invalid JSON; the tree is then built by a plain parse. nlohmann's callback parser would
// do both at once, but it rescans the parent object whenever a child object ends: quadratic in the
// tensor count (38 s for 40k tensors).
class DuplicateKeyCheck : public json::json_sax_t {
 public:
  explicit DuplicateKeyCheck(const std::string& source) : source_(source) {}

  bool start_object(std::size_t) override {
    keys_per_open_object_.emplace_back();
    return true;
  }
  bool end_object() override {
    keys_per_open_object_.pop_back();
    return true;
  }
  bool key(json::string_t& key) override {
    if (!keys_per_open_object_.back().insert(key).second) {
      if (keys_per_open_object_.size() == 1) fail(source_, ": duplicate tensor name '", key, "' in the header");
      fail(source_, ": duplicate key '", key, "' in the header JSON");
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const json::exception& e) override {
    fail(source_, ": header is not valid JSON: ", parse_error_text(e));
  }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(json::number_integer_t) override { return true; }
  bool number_unsigned(json::number_unsigned_t) override { return true; }
  bool number_float(json::number_float_t, const json::string_t&) override { return true; }
  bool string(json::string_t&) override { return true; }
  bool binary(json::binary_t&) override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }

 private:
  const std::string& source_;
  std::vector<std::set<std::string>> keys_per_open_object_;
};

json parse_json_rejecting_duplicate_keys(std::string_view text, const std::string& source) {
  DuplicateKeyCheck check(source);
  json::sax_parse(text.begin(), text.end(), &check);
  try {
    return json::parse(text.begin(), text.end());  // the check above accepted the same text
  } catch (const json::exception& e) {
    fail(source, ": header is not valid JSON: ", parse_error_text(e));
  }
}

// A JSON integer >= 0 and <= `max`; `what` names the value in errors ("tensor 'w': shape[1]").
uint64_t non_negative_integer(const json& value, uint64_t max, const std::string& what) {
  if (value.is_number_unsigned()) {
    const auto n = value.get<uint64_t>();
    if (n > max) fail(what, " is ", n, ", larger than the supported maximum ", max);
    return n;
  }
  if (value.is_number_integer()) fail(what, " is ", value.get<int64_t>(), ", expected a non-negative integer");
  if (value.is_number_float()) fail(what, " is ", brief(value), ", expected a non-negative integer");
  fail(what, " is ", kind_of(value), ", expected a non-negative integer");
}

const json& field(const json& entry, const char* key, const std::string& where) {
  auto it = entry.find(key);
  if (it == entry.end()) fail(where, ": missing '", key, "'");
  return *it;
}

// Bytes a tensor of this shape needs, or an error if that (or the element count with zero
// dimensions counted as one, which LibTorch's strides need) does not fit in 63 bits.
uint64_t byte_size(DType dtype, const std::vector<int64_t>& shape, const std::string& where) {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  uint64_t extent = 1;  // product of max(dim, 1)
  bool empty = false;
  for (int64_t dim : shape) {
    empty = empty || dim == 0;
    if (__builtin_mul_overflow(extent, static_cast<uint64_t>(std::max<int64_t>(dim, 1)), &extent) || extent > kMax) {
      fail(where, ": shape ", format_shape(shape), " is too large (its size does not fit in int64)");
    }
  }
  uint64_t bytes = 0;
  if (!empty && (__builtin_mul_overflow(extent, dtype_size(dtype), &bytes) || bytes > kMax)) {
    fail(where, ": shape ", format_shape(shape), " of ", dtype_name(dtype), " is too large (its size does not fit in int64)");
  }
  return bytes;
}

TensorEntry parse_entry(const std::string& name, const json& entry, const std::string& source) {
  const std::string where = cat(source, ": tensor '", name, "'");
  if (!entry.is_object()) {
    fail(where, ": entry is ", kind_of(entry), ", expected an object with dtype, shape and data_offsets");
  }
  TensorEntry result{name, DType::F32, {}, 0, 0};

  const json& dtype = field(entry, "dtype", where);
  if (!dtype.is_string()) fail(where, ": dtype is ", kind_of(dtype), ", expected a string");
  const auto parsed_dtype = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!parsed_dtype) {
    fail(where, ": unknown dtype '", dtype.get_ref<const std::string&>(), "' (valid: ", valid_dtype_names(), ")");
  }
  result.dtype = *parsed_dtype;

  const json& shape = field(entry, "shape", where);
  if (!shape.is_array()) fail(where, ": shape is ", kind_of(shape), ", expected an array of non-negative integers");
  for (size_t i = 0; i < shape.size(); ++i) {
    const auto dim = non_negative_integer(shape[i], std::numeric_limits<int64_t>::max(), cat(where, ": shape[", i, "]"));
    result.shape.push_back(static_cast<int64_t>(dim));
  }

  const json& offsets = field(entry, "data_offsets", where);
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(where, ": data_offsets is ", brief(offsets), ", expected [begin, end]");
  }
  result.begin = non_negative_integer(offsets[0], std::numeric_limits<uint64_t>::max(), where + ": data_offsets[0]");
  result.end = non_negative_integer(offsets[1], std::numeric_limits<uint64_t>::max(), where + ": data_offsets[1]");
  const std::string offsets_text = format_offsets(result.begin, result.end);
  if (result.begin > result.end) fail(where, ": data_offsets ", offsets_text, ": begin is after end");

  const uint64_t needed = byte_size(result.dtype, result.shape, where);
  if (needed != result.end - result.begin) {
    fail(where, ": shape ", format_shape(result.shape), " of ", dtype_name(result.dtype), " needs ", needed,
         " bytes but data_offsets ", offsets_text, " hold ", result.end - result.begin);
  }
  return result;
}

std::map<std::string, std::string> parse_metadata(const json& metadata, const std::string& source) {
  if (!metadata.is_object()) fail(source, ": __metadata__ is ", kind_of(metadata), ", expected an object of strings");
  std::map<std::string, std::string> result;
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      fail(source, ": __metadata__ value for '", key, "' is ", kind_of(value), ", expected a string");
    }
    result.emplace(key, value.get<std::string>());
  }
  return result;
}

// The spec asks for a fully indexed data section: sorted by offset, each tensor starts exactly
// where the previous one ended and the last ends at the end of the file. Anything else is either
// a corrupt file or bytes a reader would silently ignore.
void check_layout(const std::vector<TensorEntry>& sorted, uint64_t data_size, const std::string& source) {
  uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const auto& tensor : sorted) {
    if (tensor.end > data_size) {
      fail(source, ": tensor '", tensor.name, "': data_offsets ", format_offsets(tensor.begin, tensor.end),
           " run past the end of the data section (", data_size, " bytes)");
    }
    if (tensor.begin < covered) {
      fail(source, ": tensors '", previous->name, "' (bytes ", format_range(previous->begin, previous->end), ") and '",
           tensor.name, "' (bytes ", format_range(tensor.begin, tensor.end), ") overlap");
    }
    if (tensor.begin > covered) {
      fail(source, ": bytes ", format_range(covered, tensor.begin), " of the data section belong to no tensor (hole ",
           previous ? cat("after '", previous->name, "'") : std::string("at the start"), ")");
    }
    covered = tensor.end;
    previous = &tensor;
  }
  if (covered != data_size) {
    fail(source, ": the data section is ", data_size, " bytes but the tensors cover only ", covered, ": bytes ",
         format_range(covered, data_size), " belong to no tensor");
  }
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

size_t dtype_size(DType dtype) { return info(dtype).size; }

SafetensorsHeader parse_safetensors_header(std::string_view bytes, uint64_t file_size, const std::string& source) {
  if (bytes.size() > file_size) fail(source, ": given ", bytes.size(), " bytes of a file said to be ", file_size, " bytes");
  if (file_size < 8) fail(source, ": file is truncated: ", file_size, " bytes, shorter than the 8-byte header length");
  if (bytes.size() < 8) fail(source, ": only ", bytes.size(), " bytes given, shorter than the 8-byte header length");

  SafetensorsHeader header;
  header.header_size = read_u64_le(bytes);
  if (header.header_size > file_size - 8) {
    fail(source, ": header length ", header.header_size, " runs past the end of the file (", file_size, " bytes)");
  }
  if (header.header_size > kMaxSafetensorsHeaderSize) {
    fail(source, ": header length ", header.header_size, " exceeds the limit of ", kMaxSafetensorsHeaderSize, " bytes");
  }
  if (bytes.size() - 8 < header.header_size) {
    fail(source, ": only ", bytes.size(), " bytes given, the header needs ", 8 + header.header_size);
  }

  const json root = parse_json_rejecting_duplicate_keys(bytes.substr(8, header.header_size), source);
  if (!root.is_object()) fail(source, ": header JSON is ", kind_of(root), ", expected an object of tensor entries");
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      header.metadata = parse_metadata(value, source);
    } else {
      header.tensors.push_back(parse_entry(name, value, source));
    }
  }
  // Stable: zero-size tensors sharing an offset stay in name order, so the order is deterministic.
  std::stable_sort(header.tensors.begin(), header.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  check_layout(header.tensors, file_size - 8 - header.header_size, source);
  return header;
}

std::string encode_safetensors_header(const std::vector<TensorEntry>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  json root = json::object();
  if (!metadata.empty()) root[std::string(kMetadataKey)] = metadata;
  for (const auto& tensor : tensors) {
    if (tensor.name == kMetadataKey) fail("cannot encode a safetensors header: '", kMetadataKey, "' is not a tensor name");
    if (root.contains(tensor.name)) fail("cannot encode a safetensors header: duplicate tensor name '", tensor.name, "'");
    root[tensor.name] = {{"dtype", std::string(dtype_name(tensor.dtype))},
                         {"shape", tensor.shape},
                         {"data_offsets", {tensor.begin, tensor.end}}};
  }
  std::string text;
  try {
    text = root.dump();
  } catch (const json::exception& e) {  // a name or metadata string that is not valid UTF-8
    fail("cannot encode a safetensors header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string encoded(8, '\0');
  for (int i = 0; i < 8; ++i) encoded[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return encoded + text;
}

}  // namespace strata::io
