#include "strata/text/text_stream.h"

#include <algorithm>

#include "strata/text/utf8.h"

namespace strata::text {

namespace {
// How many ids before the new ones each step decodes again for context (as vLLM does).
constexpr size_t kContextIds = 5;

bool ends_with_replacement(const std::string& text) {
  return text.size() >= kReplacementCharacter.size() &&
         text.compare(text.size() - kReplacementCharacter.size(), kReplacementCharacter.size(), kReplacementCharacter) == 0;
}
}  // namespace

TextStream::TextStream(const Tokenizer& tokenizer, const std::vector<int64_t>& context)
    : tokenizer_(tokenizer), ids_(context), prefix_(context.size() > kContextIds ? context.size() - kContextIds : 0),
      read_(context.size()) {}

std::string TextStream::push(int64_t id) {
  ids_.push_back(id);
  const std::span<const int64_t> all(ids_);
  const std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_));
  const std::string now = tokenizer_.decode(all.subspan(prefix_));
  // Hold back while the newest text ends in a character cut short, or adds nothing yet.
  if (now.size() <= before.size() || ends_with_replacement(now) || now.compare(0, before.size(), before) != 0)
    return "";
  prefix_ = read_;
  read_ = ids_.size();
  return now.substr(before.size());
}

std::string TextStream::finish() {
  const std::span<const int64_t> all(ids_);
  const std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_));
  const std::string now = tokenizer_.decode(all.subspan(prefix_));
  prefix_ = read_ = ids_.size();
  return now.size() > before.size() && now.compare(0, before.size(), before) == 0 ? now.substr(before.size()) : "";
}

std::string StopStrings::push(const std::string& text) {
  if (stopped_) return "";
  pending_ += text;
  size_t first = std::string::npos;
  for (const auto& stop : stops_) first = std::min(first, pending_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Keep the longest tail that a stop string starts with; the rest can go out.
  size_t keep = 0;
  for (const auto& stop : stops_)
    for (size_t n = std::min(stop.size() - 1, pending_.size()); n > keep; --n)
      if (pending_.compare(pending_.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StopStrings::finish() {
  std::string out;
  std::swap(out, pending_);
  return out;
}

}  // namespace strata::text
