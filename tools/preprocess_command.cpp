// strata preprocess: JSONL text -> Megatron indexed datasets (PREFIX_KEY_document.bin/.idx), byte
// for byte what Megatron-LM's tools/preprocess_data.py writes, with a progress bar.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "commands.h"
#include "strata/core/error.h"
#include "strata/text/megatron_preprocess.h"
#include "tokenizer_flags.h"

namespace strata::tools {

namespace {

struct PreprocessFlags {
  TokenizerFlags tokenizer;
  text::PreprocessOptions options;
};

// [#####.....] 12.3/45.6 MiB, 1234 documents, 2345 documents/s, ETA 12 s; redrawn in place on a
// terminal at most every 0.2 s, a line every 10 s in a log.
class ByteProgress {
 public:
  void update(const text::PreprocessProgress& p, bool last) {
    const auto now = std::chrono::steady_clock::now();
    if (!last && now - drawn_ < (terminal_ ? std::chrono::milliseconds(200) : std::chrono::seconds(10))) return;
    drawn_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double done = p.bytes_total ? std::min(1.0, static_cast<double>(p.bytes_read) / p.bytes_total) : 1.0;
    std::string bar(static_cast<size_t>(done * 24), '#');
    bar.resize(24, '.');
    const double eta = done > 0 ? elapsed * (1.0 - done) / done : 0.0;
    std::fprintf(stderr, "%s[%s] %.2f/%.2f MiB, %llu documents, %.0f documents/s, ETA %.0f s%s", terminal_ ? "\r" : "",
                 bar.c_str(), std::min(p.bytes_read, p.bytes_total) / 1048576.0, p.bytes_total / 1048576.0,
                 static_cast<unsigned long long>(p.documents), elapsed > 0 ? p.documents / elapsed : 0.0, eta,
                 terminal_ && !last ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), drawn_{};
  bool terminal_ = ::isatty(2);
};

}  // namespace

Subcommand add_preprocess(CLI::App& app) {
  auto f = std::make_shared<PreprocessFlags>();
  auto* cmd = app.add_subcommand("preprocess",
                                 "JSONL text -> Megatron indexed datasets (PREFIX_KEY_document.bin/.idx), as Megatron's "
                                 "tools/preprocess_data.py writes them");
  cmd->option_defaults()->always_capture_default();
  add_tokenizer_flags(*cmd, f->tokenizer);
  auto& o = f->options;
  cmd->add_option("--input", o.input, "JSONL: one JSON object a line")->required();
  cmd->add_option("--json-keys", o.json_keys, "the keys whose text (a string or a list of strings) to tokenise");
  cmd->add_option("--output-prefix", o.output_prefix, "writes PREFIX_KEY_document.bin and .idx for each key")
      ->required();
  cmd->add_flag("--append-eod", o.append_eod, "end each non-empty document with the tokenizer's EOD (EOS) token");
  cmd->add_option("--workers", o.workers, "threads that tokenise (any number writes the same files)")
      ->check(CLI::Range(1, 1024));
  return {cmd, [f] {
            if (!f->tokenizer.given()) fail("give --tokenizer-type and --tokenizer-model");
            ByteProgress progress;
            const auto prefixes = text::preprocess_jsonl(
                f->options, [&] { return f->tokenizer.open(); },
                [&](const text::PreprocessProgress& p) { progress.update(p, p.bytes_read >= p.bytes_total); });
            for (const auto& prefix : prefixes) std::printf("wrote %s.bin and %s.idx\n", prefix.c_str(), prefix.c_str());
            return 0;
          }};
}

}  // namespace strata::tools
