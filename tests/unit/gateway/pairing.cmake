# gw_pairing: the pairing store and actor; and `hermes pairing` through the built binary
# (the same source built with HERMES_BIN selects the CLI cases).
hermes_add_test(NAME gw_pairing SOURCES test_pairing.c LIBS gateway hm_config LABELS unit gateway)
hermes_add_test(NAME gw_pairing_cli SOURCES test_pairing.c LIBS gateway hm_config
                LABELS unit gateway)
target_compile_definitions(test_gw_pairing_cli PRIVATE HERMES_BIN="$<TARGET_FILE:hermes>")
add_dependencies(test_gw_pairing_cli hermes)
