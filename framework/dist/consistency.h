// Start-up check that every rank runs the same binary and the same resolved recipe: a
// mismatch (a stale binary on one node, an override passed to some ranks only) otherwise
// shows up hours later as a hang or as silently different numerics.
//
//   dist::check_consistency(*world, resolved_recipe_yaml, std::to_string(dist::binary_fingerprint()));
//   // throws on every rank: "check_consistency on 'world' (rank 0 of 4, mpi): the recipe differs
//   // across ranks: rank 2 has hash 0x1f.., rank 0 has 0x9a.."
#pragma once
#include <cstdint>
#include <string_view>

#include "framework/dist/communicator.h"

namespace ssm::dist {

// 64-bit FNV-1a hash of `bytes`.
uint64_t fingerprint(std::string_view bytes);
// fingerprint() of this process's executable file (/proc/self/exe).
uint64_t binary_fingerprint();

// Collective: all-gathers the hashes of both strings and throws, on every rank, naming the
// ranks whose value differs from rank 0's.
void check_consistency(Communicator& comm, std::string_view recipe_text, std::string_view binary_id);

}  // namespace ssm::dist
