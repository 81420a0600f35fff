# The skills tools (tools/skills/): the front matter reader and validation, then the
# directory operations, the tools and the prompt index.
hermes_add_test(NAME tool_skills_front SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_skills_front.c
                LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_skills SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_skills.c
                LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_skills_cli
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_skills_cli.c
                        ${PROJECT_SOURCE_DIR}/cli/cli_skills.c
                LIBS tools hm_config LABELS unit tools)
target_include_directories(test_tool_skills_cli PRIVATE ${PROJECT_SOURCE_DIR}/cli)
hermes_add_test(NAME tool_skills_admin SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_skills_admin.c
                LIBS tools LABELS unit tools)
