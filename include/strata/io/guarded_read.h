#pragma once
// Reading from a memory-mapped file that may shrink underneath us. Once a mapped file is truncated
// (rewritten in place, cut short by another process), touching a page past its new end raises
// SIGBUS, which by default kills the process with no word about which file was at fault.
// copy_from_mapping turns that fault into a strata::Error naming the file.
//
// The first call installs one process-wide SIGBUS handler. A fault inside a guarded copy jumps
// back to that copy (a thread-local sigsetjmp point); any other SIGBUS goes to the handler that
// was installed before ours, or to the default action. A handler installed after ours replaces it
// and with it the guard.
#include <cstddef>
#include <cstdint>
#include <string>

namespace strata::io {

// Copies bytes [offset, offset + bytes) of `mapping` (the start of a mapping of `file`) to
// `destination`. A fault while copying throws strata::Error naming `file` and the byte range.
void copy_from_mapping(void* destination, const char* mapping, uint64_t offset, size_t bytes,
                       const std::string& file);

}  // namespace strata::io
