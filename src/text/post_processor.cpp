#include "strata/text/post_processor.h"

#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "strata/core/error.h"

namespace strata::text {

namespace {

// RobertaProcessing / BertProcessing write a token as [content, id].
int64_t token_pair_id(const nlohmann::json& spec, const char* name, const std::string& where) {
  const auto& pair = field(spec, name, where);
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer())
    fail(where, ": \"", name, "\" is ", pair.dump(), ", expected [token, id]");
  return pair[1].get<int64_t>();
}

SpecialTokenFrame template_frame(const nlohmann::json& spec, const std::string& where) {
  SpecialTokenFrame frame;
  const auto& special_tokens = field(spec, "special_tokens", where);
  bool seen_sequence = false;
  const auto& single = array_field(spec, "single", where);
  for (const auto& item : single) {
    if (item.contains("Sequence")) {
      if (seen_sequence) fail(where, ": the single template names the text twice: ", single.dump());
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken")) fail(where, ": template item ", item.dump(), " is neither Sequence nor SpecialToken");
    const std::string name = string_field(item["SpecialToken"], "id", where);
    if (!special_tokens.contains(name)) fail(where, ": the template's special token '", name, "' is not in special_tokens");
    const auto& ids = array_field(special_tokens[name], "ids", cat(where, " special_tokens '", name, "'"));
    auto& side = seen_sequence ? frame.after : frame.before;
    for (const auto& id : ids) side.push_back(id.get<int64_t>());
  }
  if (!seen_sequence) fail(where, ": the single template has no Sequence item: ", single.dump());
  return frame;
}

}  // namespace

SpecialTokenFrame parse_post_processor(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return {};
  const std::string type = type_of(spec, where);
  const std::string here = cat(where, " (", type, ")");
  if (type == "TemplateProcessing") return template_frame(spec, here);
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return {{token_pair_id(spec, "cls", here)}, {token_pair_id(spec, "sep", here)}};
  if (type == "ByteLevel") return {};  // it trims offsets, which strata does not report
  if (type == "Sequence") {
    SpecialTokenFrame frame;
    const auto& list = array_field(spec, "processors", here);
    for (size_t i = 0; i < list.size(); ++i) {
      const auto inner = parse_post_processor(list[i], cat(where, ".processors[", i, "]"));
      frame.before.insert(frame.before.begin(), inner.before.begin(), inner.before.end());
      frame.after.insert(frame.after.end(), inner.after.begin(), inner.after.end());
    }
    return frame;
  }
  fail(where, ": post_processor type '", type, "' is not supported (strata implements TemplateProcessing, "
       "RobertaProcessing, BertProcessing, ByteLevel and Sequence)");
}

}  // namespace strata::text
