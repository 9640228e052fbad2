#pragma once
// Reading tokenizer.json's objects: each helper refuses a missing or mistyped field by naming it,
// the component it belongs to and what was expected.
#include <nlohmann/json.hpp>

#include <string>

#include "strata/core/error.h"
#include "strata/text/regex.h"

namespace strata::text {

inline std::string type_of(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object()) fail(where, ": expected an object, found ", spec.dump());
  const auto t = spec.find("type");
  if (t == spec.end() || !t->is_string()) fail(where, ": no \"type\" string in ", spec.dump());
  return t->get<std::string>();
}

inline const nlohmann::json& field(const nlohmann::json& spec, const char* name, const std::string& where) {
  const auto f = spec.find(name);
  if (f == spec.end()) fail(where, ": no \"", name, "\" field");
  return *f;
}

inline bool bool_field(const nlohmann::json& spec, const char* name, const std::string& where) {
  const auto& f = field(spec, name, where);
  if (!f.is_boolean()) fail(where, ": \"", name, "\" is ", f.dump(), ", expected true or false");
  return f.get<bool>();
}

inline bool bool_field_or(const nlohmann::json& spec, const char* name, bool fallback, const std::string& where) {
  return spec.contains(name) && !spec[name].is_null() ? bool_field(spec, name, where) : fallback;
}

inline std::string string_field(const nlohmann::json& spec, const char* name, const std::string& where) {
  const auto& f = field(spec, name, where);
  if (!f.is_string()) fail(where, ": \"", name, "\" is ", f.dump(), ", expected a string");
  return f.get<std::string>();
}

inline int64_t int_field(const nlohmann::json& spec, const char* name, const std::string& where) {
  const auto& f = field(spec, name, where);
  if (!f.is_number_integer()) fail(where, ": \"", name, "\" is ", f.dump(), ", expected an integer");
  return f.get<int64_t>();
}

inline const nlohmann::json& array_field(const nlohmann::json& spec, const char* name, const std::string& where) {
  const auto& f = field(spec, name, where);
  if (!f.is_array()) fail(where, ": \"", name, "\" is ", f.dump(), ", expected an array");
  return f;
}

// A "pattern" field: {"String": literal} or {"Regex": pattern}, compiled.
inline Regex pattern_field(const nlohmann::json& spec, const std::string& where) {
  const auto& p = field(spec, "pattern", where);
  if (p.is_object() && p.size() == 1 && p.begin().value().is_string()) {
    const std::string value = p.begin().value().get<std::string>();
    if (p.begin().key() == "String") return Regex(escape_regex(value), where);
    if (p.begin().key() == "Regex") return Regex(value, where);
  }
  fail(where, ": \"pattern\" is ", p.dump(), ", expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace strata::text
