// The registered model families, one accessor each (src/models/<family>/<family>_family.cpp).
// Internal to src/models: everything else reaches a family through family.h.
#pragma once

#include "retain/family.h"

namespace retain {

const ModelFamily& gpt_family();
const ModelFamily& llama_family();
const ModelFamily& mlp_family();

}  // namespace retain
