#include "strata/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "strata/core/compat.h"
#include "strata/core/error.h"
#include "strata/io/atomic_file.h"
#include "strata/io/guarded_read.h"

namespace strata::io {

// safetensors stores little-endian bytes; load() and view() hand them to LibTorch unchanged.
static_assert(std::endian::native == std::endian::little, "strata::io assumes a little-endian host");

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

std::string errno_text() { return std::strerror(errno); }

// Files are closed as soon as they are mapped; the mapping keeps the data reachable.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

at::ScalarType to_torch_dtype(DType dtype) {
  switch (dtype) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
    case DType::F8_E4M3: return compat::float8_e4m3_dtype();
    case DType::F8_E5M2: return compat::float8_e5m2_dtype();
  }
  fail("invalid DType value ", static_cast<int>(dtype));
}

DType from_torch_dtype(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
    default: break;
  }
  // The float8 enumerators do not exist in LibTorch 1.13, so they cannot be case labels.
  if (compat::has_float8_dtypes() && dtype == compat::float8_e4m3_dtype()) return DType::F8_E4M3;
  if (compat::has_float8_dtypes() && dtype == compat::float8_e5m2_dtype()) return DType::F8_E5M2;
  fail("safetensors has no dtype for LibTorch's ", c10::toString(dtype));
}

// ---- SafetensorsFile ---------------------------------------------------------------------------

// Private and writable (copy-on-write) although the file is opened read-only: LibTorch has no
// read-only tensors, and an in-place op on a view() then changes this process's copy of the page
// instead of dying with SIGSEGV. MAP_NORESERVE keeps a large file from counting as committed memory.
struct SafetensorsFile::Mapping {
  char* data = nullptr;
  size_t size = 0;

  Mapping(int fd, size_t size_in, const fs::path& path) : size(size_in) {
    if (size == 0) return;  // mmap refuses empty mappings; the header parser reports the empty file
    void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (address == MAP_FAILED) fail(path.string(), ": cannot mmap ", size, " bytes: ", errno_text());
    data = static_cast<char*>(address);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data) ::munmap(data, size);
  }
};

namespace {

// The length and the JSON, copied out of the mapping under the SIGBUS guard: the parser then
// reads memory that cannot vanish. A length the file cannot hold is left for the parser to name.
std::string header_bytes(const char* mapping, size_t size, const fs::path& path) {
  std::string bytes(std::min<size_t>(size, 8), '\0');
  copy_from_mapping(bytes.data(), mapping, 0, bytes.size(), path.string());
  if (bytes.size() < 8) return bytes;
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  if (length > size - 8 || length > kMaxSafetensorsHeaderSize) return bytes;
  bytes.resize(8 + length);
  copy_from_mapping(bytes.data() + 8, mapping, 8, length, path.string());
  return bytes;
}

}  // namespace

SafetensorsFile::SafetensorsFile(fs::path path, std::shared_ptr<const Mapping> mapping, SafetensorsHeader header)
    : path_(std::move(path)), mapping_(std::move(mapping)), header_(std::move(header)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (status.type() == fs::file_type::not_found) fail(path.string(), ": no such file");
  if (error) fail(path.string(), ": cannot access: ", error.message());
  if (!fs::is_regular_file(status)) fail(path.string(), ": not a regular file");

  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(path.string(), ": cannot open: ", errno_text());
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) fail(path.string(), ": cannot stat: ", errno_text());
  const auto size = static_cast<size_t>(info.st_size);
  auto mapping = std::make_shared<const Mapping>(fd.get(), size, path);
  auto header = parse_safetensors_header(header_bytes(mapping->data, size, path), size, path.string());
  return SafetensorsFile(path, std::move(mapping), std::move(header));
}


std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> result;
  for (const auto& [name, position] : index_) result.push_back(name);
  return result;
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(path_.string(), ": no tensor '", name, "' (the file has ", index_.size(), " tensors)");
  return header_.tensors[it->second];
}

uint64_t SafetensorsFile::data_offset(const TensorEntry& entry) const { return 8 + header_.header_size + entry.begin; }

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const TensorEntry& tensor = entry(name);
  at::Tensor result = at::empty(tensor.shape, at::TensorOptions().dtype(to_torch_dtype(tensor.dtype)));
  if (tensor.end > tensor.begin) {
    copy_from_mapping(result.data_ptr(), mapping_->data, data_offset(tensor), tensor.end - tensor.begin, path_.string());
  }
  return result;
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorEntry& tensor = entry(name);
  const auto options = at::TensorOptions().dtype(to_torch_dtype(tensor.dtype));
  if (tensor.end == tensor.begin) return at::empty(tensor.shape, options);
  // The data section starts wherever the header ends; kernels may assume naturally aligned data.
  const char* data = mapping_->data + data_offset(tensor);
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(tensor.dtype) != 0) return load(name);
  // The deleter owns a reference to the mapping: the view outlives this SafetensorsFile safely.
  return at::from_blob(const_cast<char*>(data), tensor.shape, [mapping = mapping_](void*) {}, options);
}

// ---- save_safetensors --------------------------------------------------------------------------

void save_safetensors(const fs::path& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorEntry> entries;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) fail(path.string(), ": cannot save tensor '", name, "': it is undefined");
    if (tensor.layout() != at::kStrided) fail(path.string(), ": cannot save tensor '", name, "': it is not dense");
    DType dtype;
    try {
      dtype = from_torch_dtype(tensor.scalar_type());
    } catch (const Error& e) {
      fail(path.string(), ": cannot save tensor '", name, "': ", e.what());
    }
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * dtype_size(dtype);
    entries.push_back({name, dtype, tensor.sizes().vec(), offset, offset + bytes});
    offset += bytes;
  }
  std::string header;
  try {
    header = encode_safetensors_header(entries, metadata);
  } catch (const Error& e) {
    fail(path.string(), ": ", e.what());
  }

  AtomicFile file(path);
  file.write(header.data(), header.size());
  // One CPU copy at a time, so saving GPU tensors needs host memory for the largest, not for all.
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor contiguous = tensor.to(at::kCPU).contiguous();
    file.write(contiguous.data_ptr(), contiguous.nbytes());
  }
  file.commit();
}

// ---- CheckpointReader --------------------------------------------------------------------------

namespace {

bool path_exists(const fs::path& path) {
  std::error_code ignored;
  return fs::exists(path, ignored);
}

// {"weight_map": {tensor name: shard file name}}; other keys (HF writes "metadata") are ignored.
std::map<std::string, std::string> read_weight_map(const fs::path& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) fail(index_path.string(), ": cannot open");
  json index;
  try {
    index = json::parse(in);
  } catch (const json::exception& e) {
    fail(index_path.string(), ": not valid JSON: ", e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail(index_path.string(), ": expected an object with a \"weight_map\" object mapping tensor names to shard files");
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) {
      fail(index_path.string(), ": weight_map entry for '", name, "' is not a string, expected a file name");
    }
    const auto& file_name = file.get_ref<const std::string&>();
    // Shards sit next to the index; anything else would let an index reach files elsewhere.
    if (file_name.empty() || file_name == "." || file_name == ".." || file_name.find('/') != std::string::npos) {
      fail(index_path.string(), ": weight_map entry for '", name, "' is '", file_name,
           "', expected a file name in the same directory");
    }
    weight_map.emplace(name, file_name);
  }
  return weight_map;
}

}  // namespace

CheckpointReader::CheckpointReader(fs::path dir, std::vector<SafetensorsFile> shards,
                                   std::map<std::string, size_t> shard_of)
    : dir_(std::move(dir)), shards_(std::move(shards)), shard_of_(std::move(shard_of)) {}

CheckpointReader CheckpointReader::open(const fs::path& dir) {
  std::error_code ignored;
  if (!fs::is_directory(dir, ignored)) fail(dir.string(), ": not a checkpoint directory (no such directory)");

  const fs::path index_path = dir / kIndexFileName;
  if (!path_exists(index_path)) {
    if (!path_exists(dir / kSingleFileName)) {
      fail(dir.string(), ": no checkpoint found: looked for ", kIndexFileName, " and ", kSingleFileName);
    }
    std::vector<SafetensorsFile> shards;
    shards.push_back(SafetensorsFile::open(dir / kSingleFileName));
    std::map<std::string, size_t> shard_of;
    for (const auto& name : shards[0].names()) shard_of.emplace(name, 0);
    return CheckpointReader(dir, std::move(shards), std::move(shard_of));
  }

  const auto weight_map = read_weight_map(index_path);
  std::vector<SafetensorsFile> shards;
  std::map<std::string, size_t> shard_position;  // file name -> position in shards
  for (const auto& [name, file] : weight_map) {
    if (shard_position.count(file)) continue;
    if (!path_exists(dir / file)) {
      fail(index_path.string(), ": shard '", file, "' (listed for tensor '", name, "') does not exist");
    }
    shard_position.emplace(file, shards.size());
    shards.push_back(SafetensorsFile::open(dir / file));
  }

  // Where each tensor really is, then whether that agrees with the index in both directions.
  std::map<std::string, size_t> shard_of;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (const auto& name : shards[i].names()) {
      auto [it, inserted] = shard_of.emplace(name, i);
      if (!inserted) {
        fail(dir.string(), ": tensor '", name, "' is present in two shards, ", shards[it->second].path().filename().string(),
             " and ", shards[i].path().filename().string());
      }
      if (!weight_map.count(name)) {
        fail(index_path.string(), ": tensor '", name, "' is in shard '", shards[i].path().filename().string(),
             "' but not in the index");
      }
    }
  }
  for (const auto& [name, file] : weight_map) {
    auto it = shard_of.find(name);
    if (it == shard_of.end() || it->second != shard_position.at(file)) {
      fail(index_path.string(), ": tensor '", name, "' is listed in shard '", file, "', which does not contain it");
    }
  }
  return CheckpointReader(dir, std::move(shards), std::move(shard_of));
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> result;
  for (const auto& [name, shard] : shard_of_) result.push_back(name);
  return result;
}

at::Tensor CheckpointReader::load(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) fail(dir_.string(), ": the checkpoint has no tensor '", name, "'");
  return shards_[it->second].load(name);
}

std::map<std::string, at::Tensor> CheckpointReader::load_all() const {
  std::map<std::string, at::Tensor> result;
  for (const auto& [name, shard] : shard_of_) result.emplace(name, shards_[shard].load(name));
  return result;
}

// ---- save_checkpoint ---------------------------------------------------------------------------

namespace {

std::string shard_file_name(size_t number, size_t count) {
  std::ostringstream name;
  name << "model-" << std::setw(5) << std::setfill('0') << number << "-of-" << std::setw(5) << count
       << ".safetensors";
  return name.str();
}

// Groups tensors in name order, starting a new shard when the next one would overflow this one.
std::vector<std::map<std::string, at::Tensor>> split_into_shards(const std::map<std::string, at::Tensor>& tensors,
                                                                 uint64_t max_shard_bytes) {
  std::vector<std::map<std::string, at::Tensor>> shards(1);
  uint64_t shard_bytes = 0;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t bytes = tensor.defined() ? tensor.nbytes() : 0;
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().emplace(name, tensor);
    shard_bytes += bytes;
  }
  return shards;
}

// Once the new checkpoint is in place, the file of the other layout (from an earlier save) goes:
// a stale index would otherwise win over a new model.safetensors.
void remove_stale(const fs::path& path) {
  std::error_code error;
  fs::remove(path, error);
  if (error) fail(path.string(), ": cannot remove the stale file: ", error.message());
}

}  // namespace

void save_checkpoint(const fs::path& dir, const std::map<std::string, at::Tensor>& tensors,
                     uint64_t max_shard_bytes) {
  if (max_shard_bytes == 0) fail(dir.string(), ": max_shard_bytes must be positive");
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) fail(dir.string(), ": cannot create the directory: ", error.message());

  // Hugging Face's loaders reject safetensors files whose metadata lacks the format.
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  const auto shards = split_into_shards(tensors, max_shard_bytes);
  if (shards.size() == 1) {
    save_safetensors(dir / kSingleFileName, shards[0], metadata);
    remove_stale(dir / kIndexFileName);
    return;
  }

  json weight_map = json::object();
  uint64_t total_size = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = shard_file_name(i + 1, shards.size());
    save_safetensors(dir / file, shards[i], metadata);
    for (const auto& [name, tensor] : shards[i]) {
      weight_map[name] = file;
      total_size += tensor.nbytes();
    }
  }
  // The index goes last: until it is renamed into place, readers see the previous checkpoint.
  const json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  write_file_atomically(dir / kIndexFileName, index.dump(2) + "\n");
  remove_stale(dir / kSingleFileName);
}

}  // namespace strata::io
