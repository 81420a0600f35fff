target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_doctor.c)
target_link_libraries(hermes PRIVATE host st_store CURL::libcurl)
