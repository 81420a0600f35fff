# The router, the chat actors, the sessions index and the gateway's file writer.
target_sources(gateway PRIVATE ${CMAKE_CURRENT_LIST_DIR}/gw_router.c ${CMAKE_CURRENT_LIST_DIR}/gw_chat.c
               ${CMAKE_CURRENT_LIST_DIR}/gw_index.c ${CMAKE_CURRENT_LIST_DIR}/gw_io.c
               ${CMAKE_CURRENT_LIST_DIR}/gw_seen.c ${CMAKE_CURRENT_LIST_DIR}/gw_bg.c
               ${CMAKE_CURRENT_LIST_DIR}/gw_outbox.c)
target_link_libraries(gateway PUBLIC hm_config st_store OpenSSL::Crypto)
