# tools/checkpoint: filesystem checkpoints (shadow git repositories) and /rollback; the
# service the session asks for a snapshot before a tool changes files.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/ckpt.c
  ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/ckpt_svc.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint)
target_link_libraries(tools PUBLIC agent_proto hm_config rt_proc OpenSSL::Crypto)
