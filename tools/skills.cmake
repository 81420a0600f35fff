# tools/skills: the SKILL.md front matter (skl_front), the skills directory and the
# operations behind skills_list / skill_view / skill_manage and the prompt index
# (skl_store), and the three tools.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/skills/skl_front.c
  ${CMAKE_CURRENT_SOURCE_DIR}/skills/skl_fs.c
  ${CMAKE_CURRENT_SOURCE_DIR}/skills/skl_admin.c
  ${CMAKE_CURRENT_SOURCE_DIR}/skills/skl_store.c
  ${CMAKE_CURRENT_SOURCE_DIR}/skills/tool_skills.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/skills)
