#pragma once
// Reading and writing safetensors files and Hugging Face checkpoint directories with LibTorch.
// Files are memory-mapped and validated up front (see safetensors_header.h), so a tensor that
// opens loads without further checks; writes go to a temporary file renamed into place.
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "strata/io/safetensors_header.h"

namespace strata::io {

at::ScalarType to_torch_dtype(DType dtype);  // F8_* throw on LibTorch without float8 (1.13)
DType from_torch_dtype(at::ScalarType dtype);  // throws for dtypes safetensors cannot store

// One safetensors file, memory-mapped for as long as this object or any view() of it lives.
// open() and load() copy out of the mapping under a SIGBUS guard (guarded_read.h): a file
// truncated while open gives a strata::Error naming it, not a crash.
class SafetensorsFile {
 public:
  // Errors name the path: missing file, not a regular file, open / mmap failure, bad header.
  static SafetensorsFile open(const std::filesystem::path& path);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const SafetensorsHeader& header() const { return header_; }
  const std::filesystem::path& path() const { return path_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  std::vector<std::string> names() const;  // sorted
  const TensorEntry& entry(const std::string& name) const;  // unknown name: error naming file and tensor

  // An owned, contiguous CPU copy.
  at::Tensor load(const std::string& name) const;
  // A CPU tensor over the mapping itself, keeping the mapping alive; a copy when the bytes are not
  // aligned for the dtype. The mapping is private: writing to the view never changes the file.
  // Unguarded: LibTorch reads the mapping whenever an op touches the view, so if the file is
  // truncated while a view lives, the next op reading a vanished page dies with SIGBUS. Only for
  // callers that own the file for the view's lifetime; strata itself reads checkpoints with load().
  at::Tensor view(const std::string& name) const;

 private:
  struct Mapping;
  SafetensorsFile(std::filesystem::path path, std::shared_ptr<const Mapping> mapping, SafetensorsHeader header);
  uint64_t data_offset(const TensorEntry& entry) const;  // of the tensor's first byte in the file

  std::filesystem::path path_;
  std::shared_ptr<const Mapping> mapping_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.tensors
};

// Writes atomically (a temporary file in the same directory, fsync, rename), tensors in name order.
// Non-contiguous or non-CPU tensors are made contiguous CPU tensors first.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory: model.safetensors.index.json ({"weight_map": {name: shard file}}) when
// present, else model.safetensors. Every tensor must be in exactly one shard, the one the index names.
class CheckpointReader {
 public:
  static CheckpointReader open(const std::filesystem::path& dir);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  at::Tensor load(const std::string& name) const;
  std::map<std::string, at::Tensor> load_all() const;

 private:
  CheckpointReader(std::filesystem::path dir, std::vector<SafetensorsFile> shards,
                   std::map<std::string, size_t> shard_of);

  std::filesystem::path dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> shard_of_;  // tensor name -> position in shards_
};

// Writes shards of at most max_shard_bytes of tensor data (a larger tensor gets a shard of its own)
// plus model.safetensors.index.json, or a single model.safetensors when everything fits in one.
void save_checkpoint(const std::filesystem::path& dir, const std::map<std::string, at::Tensor>& tensors,
                     uint64_t max_shard_bytes = 5ull << 30);

}  // namespace strata::io
