# tools/file: read_file, write_file, patch, search_files and their helpers (ft_*).
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_text.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_seqmatch.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_fuzzy.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_v4a.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_fs.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_proc.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_lint.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_glob.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_regex.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_search.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_walk.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/ft_tool.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/tool_read_file.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/tool_write_file.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/tool_patch.c
  ${CMAKE_CURRENT_SOURCE_DIR}/file/tool_search_files.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/file)
