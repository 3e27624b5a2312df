# One place sets the warnings for Ferry's own targets. Third-party headers come in through
# imported targets, which CMake includes as system headers, so their warnings do not count.
# Designated initializers leave fields at their defaults on purpose: no missing-initializer noise.
set(FERRY_WARNINGS -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Werror -Wno-missing-field-initializers)
# Clang checks the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations (GCC ignores
# them); scripts/test.sh builds the libraries with clang so that they stay true.
option(FERRY_THREAD_SAFETY "Check thread-safety annotations (clang only)" OFF)
if(FERRY_THREAD_SAFETY)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FERRY_THREAD_SAFETY needs clang (CXX=clang++)")
  endif()
  list(APPEND FERRY_WARNINGS -Wthread-safety)
endif()

set(FERRY_SANITIZER_FLAGS "")
if(FERRY_SANITIZE)
  set(FERRY_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
                            -fno-sanitize-recover=undefined)
elseif(FERRY_TSAN)
  set(FERRY_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()
if(FERRY_SANITIZER_FLAGS)
  add_compile_options(${FERRY_SANITIZER_FLAGS})
  add_link_options(${FERRY_SANITIZER_FLAGS})
endif()

# ferry_library(NAME ALIAS SRCS ... DEPS ...): a library of Ferry's own code.
function(ferry_library name)
  cmake_parse_arguments(ARG "" "ALIAS" "SRCS;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_compile_options(${name} PRIVATE ${FERRY_WARNINGS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_DEPS})
  if(ARG_ALIAS)
    add_library(${ARG_ALIAS} ALIAS ${name})
  endif()
endfunction()

# ferry_test(NAME SRCS ... DEPS ... [LABELS ...] [TIMEOUT s]): one GoogleTest executable a
# test file, registered with CTest. Labels: unit, integration (needs Postgres), e2e, crash.
function(ferry_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_compile_options(${name} PRIVATE ${FERRY_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# ferry_executable(NAME SRCS ... DEPS ...): a binary under build/bin.
# Ferry's programs (ferryd, the benchmarks, helpers) run on jemalloc: under glibc's malloc, half
# of apply's CPU went to malloc_consolidate and friends (bench/RESULTS.md). Tests keep glibc's
# malloc, and sanitizer builds bring their own allocator.
option(FERRY_JEMALLOC "Link Ferry's programs with jemalloc" ON)
set(FERRY_MALLOC_LIBRARY "")
if(FERRY_JEMALLOC AND NOT FERRY_SANITIZER_FLAGS)
  find_library(FERRY_JEMALLOC_LIBRARY jemalloc)
  if(FERRY_JEMALLOC_LIBRARY)
    set(FERRY_MALLOC_LIBRARY ${FERRY_JEMALLOC_LIBRARY})
  else()
    message(WARNING "jemalloc not found (libjemalloc-dev): programs use glibc malloc")
  endif()
endif()

# Links a program with the allocator above.
function(ferry_use_malloc name)
  if(FERRY_MALLOC_LIBRARY)
    target_link_libraries(${name} PRIVATE ${FERRY_MALLOC_LIBRARY})
  endif()
endfunction()

function(ferry_executable name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_compile_options(${name} PRIVATE ${FERRY_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  ferry_use_malloc(${name})
endfunction()
