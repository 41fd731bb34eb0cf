// Input handling shared by `parallax run` and `parallax bench`: named input
// files, random inputs, and symbolic dimension bindings.
#ifndef PARALLAX_TOOLS_PARALLAX_INPUTS_H_
#define PARALLAX_TOOLS_PARALLAX_INPUTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "parallax/model.h"
#include "parallax/session.h"

namespace parallax::cli {

struct InputFlags {
  std::vector<std::string> inputs;  // NAME=FILE (.npy or .pb)
  bool random = false;
  uint64_t seed = 0;
  std::vector<std::string> dims;       // SYMBOL=N
  std::vector<std::string> shapes;     // NAME=D0,D1,... (random inputs)
  std::vector<std::string> free_dims;  // SYMBOL=N, fixed at load (LoadOptions::free_dims)
};

// Parses --free-dim SYMBOL=N flags into LoadOptions::free_dims.
Status ParseFreeDims(const InputFlags& flags, LoadOptions* load);

// Builds one tensor per model input: from a file when named, else random
// (when --random-inputs) with the shape from --shape, else symbolic dims
// from --dim (default 1, with a note on stderr). Errors name the input or flag at fault.
Result<Session::NamedTensors> BuildInputs(const Model& model, const InputFlags& flags);

// `name` with characters outside [A-Za-z0-9._-] replaced by '_'.
std::string SanitizeFileName(const std::string& name);

}  // namespace parallax::cli

#endif  // PARALLAX_TOOLS_PARALLAX_INPUTS_H_
