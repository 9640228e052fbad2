#include "help_formatter.h"

namespace strata::tools {

std::string HelpFormatter::make_option_opts(const CLI::Option* option) const {
  if (option->get_type_size() == 0) return {};  // a flag: no value, its default is off
  // CLI11 joins the type and a validator's description with ':'; the description says more.
  std::string values = option->get_type_name();
  if (const auto colon = values.find(':'); colon != std::string::npos) values = values.substr(colon + 1);
  std::string out = " " + values;
  const auto& fallback = option->get_default_str();
  if (!fallback.empty()) out += ", default " + fallback;
  if (option->get_required()) out += " (required)";
  return out;
}

}  // namespace strata::tools
