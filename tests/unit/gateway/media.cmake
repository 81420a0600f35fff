# Attachments in the prompt and voice replies (gw_media.c): the gateway in one process with an
# echoing model and the in-process OpenAI audio fake (tests/unit/tools/voice_fake.c).
hermes_add_test(NAME gw_media SOURCES test_gw_media.c
                LIBS gateway agent st_store hm_config voice_testlib rt_lws rt_http
                LABELS unit gateway actors TIMEOUT 300)
