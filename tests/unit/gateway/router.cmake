# The gateway in one process: test adapter, router, chat actors, sessions, pairing, state.db.
hermes_add_test(NAME gw_router SOURCES test_router.c gw_fixture.c LIBS gateway agent st_store hm_config
                LABELS unit gateway actors TIMEOUT 300)
hermes_add_test(NAME gw_seen SOURCES test_seen.c LIBS gateway LABELS unit gateway)
# Bounded memory: cold sessions index entries in state.db, the memory budget (issue 13).
hermes_add_test(NAME gw_memory SOURCES test_memory.c gw_fixture.c LIBS gateway agent st_store hm_config
                LABELS unit gateway actors TIMEOUT 300)
