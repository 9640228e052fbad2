#pragma once
// The C interface of strata's SentencePiece module (sentencepiece_module.cpp), a small shared
// library that strata loads with dlopen rather than linking libsentencepiece directly: Debian's
// libsentencepiece carries its own protobuf 3.14 and exports it, and LibTorch loads the system
// protobuf 3.21; linked into one program the two copies bind to each other and it crashes at
// start-up. Loaded RTLD_LOCAL | RTLD_DEEPBIND, the module's copy stays private to it.
// Memory never crosses the boundary: results come back through a sink the caller passes.
#include <cstddef>

extern "C" {

// Receives `size` bytes at `data`: int32 ids from encode, UTF-8 text from decode and errors.
typedef void (*strata_sp_sink)(void* context, const void* data, size_t size);

// A processor for the model file at `path`, or null with the reason sent to `error`.
void* strata_sp_open(const char* path, strata_sp_sink error, void* context);
void strata_sp_close(void* processor);
// 0 on success; otherwise the reason goes to `error`.
int strata_sp_encode(void* processor, const char* text, size_t size, strata_sp_sink ids, strata_sp_sink error, void* context);
int strata_sp_decode(void* processor, const int* ids, size_t count, strata_sp_sink text, strata_sp_sink error, void* context);
int strata_sp_piece_size(void* processor);
int strata_sp_eos_id(void* processor);  // -1: none
int strata_sp_bos_id(void* processor);  // -1: none
int strata_sp_piece_to_id(void* processor, const char* piece, size_t size);  // the unk id if absent
int strata_sp_is_control(void* processor, int id);
int strata_sp_is_unknown(void* processor, int id);
void strata_sp_id_to_piece(void* processor, int id, strata_sp_sink piece, void* context);
}
