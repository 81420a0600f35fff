# Tests of tools/file (read_file, write_file, patch, search_files).
hermes_add_test(NAME file_match SOURCES test_file_match.c LIBS tools LABELS unit tools)
hermes_add_test(NAME file_read SOURCES test_file_read.c test_file_util.c LIBS tools LABELS unit tools)
hermes_add_test(NAME file_write SOURCES test_file_write.c test_file_util.c LIBS tools LABELS unit tools)
hermes_add_test(NAME file_patch SOURCES test_file_patch.c test_file_util.c LIBS tools LABELS unit tools)
hermes_add_test(NAME file_search SOURCES test_file_search.c test_file_util.c LIBS tools LABELS unit tools)
