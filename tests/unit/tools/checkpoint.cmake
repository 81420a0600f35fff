# tools/checkpoint: the module against real git (the service), and the session's hook.
hermes_add_test(NAME tool_checkpoint SOURCES test_checkpoint.c LIBS tools
                LABELS unit tools actors)
hermes_add_test(NAME tool_checkpoint_hook SOURCES test_checkpoint_hook.c LIBS agent tools
                LABELS unit tools actors)
