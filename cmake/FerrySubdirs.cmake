# ferry_add_subdirs(a b c): add each listed subdirectory that has a CMakeLists.txt, so parts of
# the tree can grow one folder at a time.
macro(ferry_add_subdirs)
  foreach(_sub ${ARGN})
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${_sub}/CMakeLists.txt)
      add_subdirectory(${_sub})
    endif()
  endforeach()
endmacro()
