# The inbox journal (hc_inbox): accepted updates survive a crash before their conversation has
# them (gw_router.c, gw_chat.c), through the whole gateway (gw_fixture.c).
hermes_add_test(NAME gw_inbox SOURCES test_inbox.c gw_fixture.c LIBS gateway agent st_store hm_config
                LABELS unit gateway actors TIMEOUT 300)
