# Command families: each appends its source to the hermes target and links its library.
foreach(fam config store gateway chat repl cron pairing tools skills doctor)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/cli_${fam}.cmake)
    include(${CMAKE_CURRENT_SOURCE_DIR}/cli_${fam}.cmake)
  endif()
endforeach()
