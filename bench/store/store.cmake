# bench/store: the state store benchmark (group commit vs one transaction per append).
# Included from bench/CMakeLists.txt: include(${CMAKE_CURRENT_SOURCE_DIR}/store/store.cmake)
add_executable(bench_store ${CMAKE_CURRENT_LIST_DIR}/bench_store.c)
target_include_directories(bench_store PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../rt)
target_link_libraries(bench_store PRIVATE st_store rt hermes_warnings)
