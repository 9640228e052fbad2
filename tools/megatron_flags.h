#pragma once
// Megatron-LM flags that `strata train` takes although it does not implement them, so that
// Megatron's scripts run unchanged where that is honest, and fail with the reason where it is not
// (docs/megatron.md has the whole table):
//   same     accepted: strata already does what the flag asks, or it chooses among kernels and
//            communication patterns that compute the same model (--use-mcore-models,
//            --overlap-grad-reduce, --no-rope-fusion, ...);
//   noted    accepted, not applied, and said so in one line at the start of the run: Megatron would
//            do something strata does not, which leaves the trained model the same (TensorBoard,
//            a sharded optimizer state, asynchronous saves, ...);
//   refused  an error naming the flag and why: Megatron would train another model or run
//            otherwise in a way strata cannot give (fp16, token dropping, a tokenizer, ...).
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace strata::tools {

enum class Handling { Same, Noted, Refused };

struct MegatronFlag {
  std::string name;
  Handling handling;
  enum Arity { Switch, Value, Values } arity;
  std::string reason;                     // why it is the same, what is not applied, or why it is refused
  std::vector<std::string> choices = {};  // the values accepted (empty: any)
};

// The table, in docs/megatron.md's order.
const std::vector<MegatronFlag>& megatron_flags();

// Registers every flag of the table on `command`.
void add_megatron_flags(CLI::App& command);

// After parsing: an error for the first refused flag given; otherwise the notes of the noted flags
// given, one line each ("--tensorboard-dir: not written: ...").
std::vector<std::string> megatron_flag_notes(const CLI::App& command);

}  // namespace strata::tools
