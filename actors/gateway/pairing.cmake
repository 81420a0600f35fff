# gw_pairing: the DM pairing store shared with `hermes pairing`, and the pairing actor.
target_sources(gateway PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/gw_pairing.c)
# Codes come from OpenSSL's CSPRNG (RAND_bytes); hm_fmt_double writes times as Python does.
target_link_libraries(gateway PUBLIC hm_config PRIVATE OpenSSL::Crypto m)
