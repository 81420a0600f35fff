# tests/unit/adapters/kit.cmake: the adapter kit (adapters/kit) — the supervisor that restarts
# an adapter's actor when it ends abnormally (ak_supervise, issue 13).
hermes_add_test(NAME adapter_kit_supervise
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ak_supervise.c
                LIBS adapter_kit gateway rt
                LABELS unit adapters)
