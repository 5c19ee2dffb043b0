// A YAML document as a plain tree whose every key and value remembers where it was written.
//
//   Node root = load_tree("recipes/mamba2/small.yaml");  // follows `inherit:`, merges bases
//   apply_override(root, "optim.lr=1e-3");               // command-line `key.path=value`
//   const Node* lr = root.find("optim")->find("lr");
//   lr->loc.str();   // "override 'optim.lr=1e-3'"; a value read from a file gives "file:7:3"
//
// yaml-cpp is used only inside tree.cpp: its types never reach a header, and yaml-cpp nodes do
// not know which file they came from, which a merged tree of several files needs.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ssm::config {

// Where a key or value was written: "file:line:col" (1-based), or a bare context such as
// "override 'train.steps=5'" when there is no line (line == 0).
struct Loc {
  std::string file;
  int line = 0;
  int col = 0;

  std::string str() const;
};

// Throws ssm::Error whose message is exactly "<loc.str()>: <msg>".
[[noreturn]] void fail_at(const Loc& loc, const std::string& msg);

struct Entry;

struct Node {
  enum class Kind { null, scalar, sequence, map };
  Kind kind = Kind::null;
  std::string text;            // scalar: the text as written, without quotes
  bool quoted = false;         // scalar written quoted or as a block: always a string
  Loc loc;                     // where the value starts (a null value: where its key is)
  std::vector<Node> items;     // sequence
  std::vector<Entry> entries;  // map, in file order; keys are unique

  bool is_null() const { return kind == Kind::null; }
  bool is_scalar() const { return kind == Kind::scalar; }
  bool is_sequence() const { return kind == Kind::sequence; }
  bool is_map() const { return kind == Kind::map; }

  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  const Entry* find_entry(std::string_view key) const;
  // Removes `key` if present; returns whether it was there.
  bool erase(std::string_view key);
  // For "got ..." in messages: "'abc'", "a list", "a mapping", "an empty value".
  std::string describe() const;
};

struct Entry {
  std::string key;
  Loc key_loc;
  Node value;
};

// Parses YAML text; `file` names it in locations. Malformed YAML and duplicate keys are errors
// at their file:line:col. An empty document gives an empty map.
Node parse_tree(const std::string& text, const std::string& file);

// Reads `path` and resolves `inherit: base.yaml` (relative to the including file, chains
// allowed): base values are overridden by the child's, maps merge recursively, lists and
// scalars are replaced whole. `name` is never inherited (a recipe is named after its own file
// unless it says otherwise). The returned tree has no `inherit` key. Missing inherited files
// and inheritance cycles are errors at the `inherit:` value that caused them.
Node load_tree(const std::string& path);
// The same for a tree already parsed from `file` (its `inherit:` is relative to `file`).
Node resolve_inherit(Node root, const std::string& file);

// Applies one command-line override "key.path=value" to `root`. The value is parsed as a YAML
// scalar or flow node ("[0, 1]", "{a: 1}"); every key and value it creates is located at
// "override 'key.path=value'" so that later schema errors name the override.
void apply_override(Node& root, const std::string& spec);

// Recursively merges `child` onto `base` (child wins; maps merge key by key).
void merge_into(Node& base, const Node& child);

}  // namespace ssm::config
