#include "framework/config/tree.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/core/error.h"

namespace fs = std::filesystem;

namespace ssm::config {

std::string Loc::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

[[noreturn]] void fail_at(const Loc& loc, const std::string& msg) { throw Error(loc.str() + ": " + msg); }

const Entry* Node::find_entry(std::string_view key) const {
  for (const Entry& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

const Node* Node::find(std::string_view key) const {
  const Entry* e = find_entry(key);
  return e ? &e->value : nullptr;
}

Node* Node::find(std::string_view key) {
  return const_cast<Node*>(static_cast<const Node*>(this)->find(key));
}

bool Node::erase(std::string_view key) {
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->key == key) {
      entries.erase(it);
      return true;
    }
  }
  return false;
}

std::string Node::describe() const {
  switch (kind) {
    case Kind::null:
      return "an empty value";
    case Kind::scalar:
      return "'" + text + "'";
    case Kind::sequence:
      return "a list";
    case Kind::map:
      return "a mapping";
  }
  return "?";
}

namespace {

// yaml-cpp marks are 0-based and -1 when unknown (an empty document).
Loc loc_of(const YAML::Mark& m, const std::string& file, bool positions) {
  if (!positions) return Loc{file, 0, 0};
  if (m.is_null() || m.line < 0) return Loc{file, 1, 1};
  return Loc{file, m.line + 1, m.column + 1};
}

// `path` names the enclosing keys ("optim", "model.dt_limit") for duplicate-key messages.
Node convert(const YAML::Node& y, const std::string& file, bool positions, const Loc& fallback,
             const std::string& path) {
  Node n;
  n.loc = loc_of(y.Mark(), file, positions);
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      // yaml-cpp places an implicit null (`key:` with nothing after it) at the next token,
      // which may be lines below; the key is the useful place to point at.
      n.kind = Node::Kind::null;
      n.loc = fallback;
      return n;
    case YAML::NodeType::Scalar:
      n.kind = Node::Kind::scalar;
      n.text = y.Scalar();
      n.quoted = y.Tag() == "!";  // "!" = non-plain (quoted or block); "?" = plain
      return n;
    case YAML::NodeType::Sequence:
      n.kind = Node::Kind::sequence;
      for (const YAML::Node& item : y) n.items.push_back(convert(item, file, positions, n.loc, path));
      return n;
    case YAML::NodeType::Map:
      n.kind = Node::Kind::map;
      for (auto it = y.begin(); it != y.end(); ++it) {
        Loc key_loc = loc_of(it->first.Mark(), file, positions);
        if (!it->first.IsScalar())
          fail_at(key_loc, "keys must be plain names, got a " +
                               std::string(it->first.IsMap() ? "mapping" : "list or empty key"));
        std::string key = it->first.Scalar();
        if (const Entry* first = n.find_entry(key)) {
          std::string where = path.empty() ? "" : " in section '" + path + "'";
          std::string first_at = first->key_loc.line > 0
                                     ? " (first set at line " + std::to_string(first->key_loc.line) + ")"
                                     : "";
          fail_at(key_loc, "duplicate key '" + key + "'" + where + first_at);
        }
        std::string child_path = path.empty() ? key : path + "." + key;
        n.entries.push_back(Entry{key, key_loc, convert(it->second, file, positions, key_loc, child_path)});
      }
      return n;
  }
  return n;
}

Node parse_any(const std::string& text, const std::string& file, bool positions) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    fail_at(loc_of(e.mark, file, positions), "malformed YAML: " + e.msg);
  }
  if (docs.size() > 1)  // a second `---` document would otherwise be silently ignored
    fail_at(loc_of(docs[1].Mark(), file, positions),
            "a recipe holds one YAML document, found a second one here");
  YAML::Node y = docs.empty() ? YAML::Node() : docs[0];
  return convert(y, file, positions, loc_of(YAML::Mark::null_mark(), file, positions), "");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open recipe file (" + std::strerror(errno) + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Visit {
  fs::path canonical;
  std::string shown;
};

Node resolve_chain(Node root, const std::string& path, std::vector<Visit>& stack);

Node load_chain(const std::string& path, std::vector<Visit>& stack) {
  return resolve_chain(parse_tree(read_file(path), path), path, stack);
}

Node resolve_chain(Node root, const std::string& path, std::vector<Visit>& stack) {
  const Entry* inherit = root.find_entry("inherit");
  if (!inherit) return root;

  const Node& v = inherit->value;
  if (!v.is_scalar() || v.text.empty())
    fail_at(v.loc, "inherit: expected the file name of a base recipe, got " + v.describe());
  fs::path base = fs::path(v.text).is_absolute() ? fs::path(v.text) : (fs::path(path).parent_path() / v.text);
  std::string shown = base.lexically_normal().string();
  std::error_code ec;
  if (!fs::is_regular_file(base, ec))
    fail_at(v.loc, "inherited file '" + v.text + "' not found (looked for '" + shown + "')");
  fs::path canon = fs::weakly_canonical(base, ec);
  for (size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].canonical != canon) continue;
    std::string cycle;
    for (size_t j = i; j < stack.size(); ++j) cycle += stack[j].shown + " -> ";
    fail_at(v.loc, "inheritance cycle: " + cycle + shown);
  }
  stack.push_back({canon, shown});
  Node merged = load_chain(shown, stack);
  stack.pop_back();

  merged.erase("name");  // a recipe is named after itself, never after its base
  root.erase("inherit");
  merge_into(merged, root);
  return merged;
}

}  // namespace

Node parse_tree(const std::string& text, const std::string& file) {
  Node root = parse_any(text, file, /*positions=*/true);
  if (root.is_null()) {
    Loc at = root.loc;
    root = Node{};
    root.kind = Node::Kind::map;
    root.loc = at;
  }
  if (!root.is_map())
    fail_at(root.loc, "a recipe must be a mapping of sections (model:, train:, ...), got " + root.describe());
  return root;
}

Node load_tree(const std::string& path) { return resolve_inherit(parse_tree(read_file(path), path), path); }

Node resolve_inherit(Node root, const std::string& file) {
  std::error_code ec;
  std::vector<Visit> stack{{fs::weakly_canonical(file, ec), fs::path(file).lexically_normal().string()}};
  return resolve_chain(std::move(root), file, stack);
}

void merge_into(Node& base, const Node& child) {
  if (!base.is_map() || !(child.is_map() || child.is_null())) {
    base = child;
    return;
  }
  if (child.is_null()) return;  // `section:` with nothing under it adds nothing
  for (const Entry& e : child.entries) {
    Entry* mine = nullptr;
    for (Entry& b : base.entries)
      if (b.key == e.key) mine = &b;
    if (!mine) {
      base.entries.push_back(e);
    } else {
      mine->key_loc = e.key_loc;  // the child's file now holds this key
      merge_into(mine->value, e.value);
    }
  }
}

void apply_override(Node& root, const std::string& spec) {
  const Loc ctx{"override '" + spec + "'", 0, 0};
  size_t eq = spec.find('=');
  std::string path = spec.substr(0, eq);
  std::vector<std::string> keys;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    keys.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  bool bad_key = false;
  for (const std::string& k : keys) bad_key |= k.empty() || k.find_first_of(" \t") != std::string::npos;
  if (eq == std::string::npos || bad_key) fail_at(ctx, "expected key.path=value (e.g. optim.lr=1e-3)");
  if (keys[0] == "inherit") fail_at(ctx, "'inherit' cannot be overridden; pass the other recipe instead");

  Node value = parse_any(spec.substr(eq + 1), ctx.file, /*positions=*/false);
  value.loc = ctx;
  Node* at = &root;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!at->is_map()) {
      // Descending through a scalar: replace it by a map so the schema reports the problem
      // (e.g. "device.x=1": section-shaped value where a scalar belongs).
      *at = Node{};
      at->kind = Node::Kind::map;
      at->loc = ctx;
    }
    Node* next = at->find(keys[i]);
    if (!next) {
      Node fresh;
      fresh.kind = i + 1 < keys.size() ? Node::Kind::map : Node::Kind::null;
      fresh.loc = ctx;
      at->entries.push_back(Entry{keys[i], ctx, fresh});
      next = &at->entries.back().value;
    } else if (i + 1 == keys.size()) {
      for (Entry& e : at->entries)
        if (e.key == keys[i]) e.key_loc = ctx;  // errors about this key now name the override
    }
    at = next;
  }
  *at = value;
}

}  // namespace ssm::config
