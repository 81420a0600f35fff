# gw_auth: allowlists, allow-all flags and unauthorized_dm_behavior (gateway.md §3.1-3.2).
hermes_add_test(NAME gw_auth SOURCES test_auth.c LIBS gateway hm_config LABELS unit gateway)
