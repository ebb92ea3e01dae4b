// A round's job config (configs/*.json). A config that validates writes itself back (to_json)
// as one that validates again.
#include "fuzz_util.h"
#include "retain/config.h"
#include "retain/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  retain::fuzz::refuse_or_accept([&] {
    const nlohmann::json j = retain::parse_json<retain::ConfigError>(retain::fuzz::bytes_of(data, size), "round.json");
    const retain::RoundConfig c = retain::RoundConfig::from_json(j, "round.json");
    try {
      (void)retain::RoundConfig::from_json(c.to_json(), "again");
    } catch (const retain::Error&) {
      std::abort();
    }
  });
  return 0;
}
