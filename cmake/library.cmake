# libcorio: core/, proto/, config/ and server/'s app as one library for C (and C++)
# programs, static (libcorio.a) and shared (libcorio.so.0), with the public
# headers of those folders as its API (see LIBRARY in core/cio.h).
#
# Each folder builds its part as a static archive, which the daemon and the
# tests link as before, and hands the archive's objects to both libraries
# with corio_library_part(). The objects are compiled once, position-
# independent, with hidden visibility: only what the public headers declare
# (between their "#pragma GCC visibility push(default)" and pop) is exported
# from libcorio.so; tests/install/symbols.sh checks it.
#
# Targets: corio_shared and corio_static (both output name "corio"), as
# corio::corio and corio::corio_static here and in the installed package.

add_library(corio_shared SHARED)
add_library(corio_static STATIC)
add_library(corio::corio ALIAS corio_shared)
add_library(corio::corio_static ALIAS corio_static)
# SONAME libcorio.so.0 until the API is declared stable: until then any
# release may change the ABI (README, "Using corio as a library").
set_target_properties(corio_shared PROPERTIES OUTPUT_NAME corio EXPORT_NAME corio
                                              VERSION ${PROJECT_VERSION} SOVERSION 0)
set_target_properties(corio_static PROPERTIES OUTPUT_NAME corio EXPORT_NAME corio_static)
foreach(t corio_shared corio_static)
  target_include_directories(
    ${t} INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/core>
                   $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/proto>
                   $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/config>
                   $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/server>
                   $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/corio>)
endforeach()
# Every dependency must be linked (not left for the program to bring);
# sanitizer runtimes are the executable's, so not with them.
if(NOT CORIO_SANITIZE AND NOT CORIO_FUZZ)
  target_link_options(corio_shared PRIVATE LINKER:--no-undefined)
endif()

# The public headers, installed into include/corio/ (and compiled alone in
# C and C++ by tests/install/headers.sh).
set(CORIO_PUBLIC_HEADERS
    core/cio.h core/cio_loop.h core/cio_task.h core/cio_sync.h core/cio_pool.h core/cio_io.h
    core/cio_buf.h core/cio_net.h core/cio_log.h proto/cio_http.h proto/cio_ws.h proto/cio_peer.h
    config/cio_config.h server/cio_app.h)

# The version the headers announce must be the project's.
file(STRINGS ${PROJECT_SOURCE_DIR}/core/cio_loop.h _v REGEX "^#define CIO_VERSION ")
if(NOT _v STREQUAL "#define CIO_VERSION \"${PROJECT_VERSION}\"")
  message(FATAL_ERROR "corio: core/cio_loop.h says ${_v}, the project is ${PROJECT_VERSION}")
endif()

# corio_library_part(<static library target> [LINK <dependency>...]):
# makes target's objects position-independent and hidden but for the public
# API, adds them to libcorio.a and libcorio.so, and links both with the
# dependencies (called from the folder that found them, so that its
# imported targets resolve). Position-independent code costs the hot paths
# nothing: -fno-semantic-interposition lets the compiler inline and bind
# the library's calls to its own public functions, as it did before, and
# the thread-locals (the current loop and task: ~100 bytes) take the
# initial-exec model, a register-relative load, rather than a
# __tls_get_addr call per access in libcorio.so (a static link relaxes
# either to the same local-exec load).
function(corio_library_part target)
  cmake_parse_arguments(P "" "" "LINK" ${ARGN})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON
                                             C_VISIBILITY_PRESET hidden)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-ftls-model=initial-exec>)
  if(CORIO_HAVE_NO_SEMANTIC_INTERPOSITION)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-fno-semantic-interposition>)
  endif()
  foreach(lib corio_shared corio_static)
    target_sources(${lib} PRIVATE $<TARGET_OBJECTS:${target}>)
    if(P_LINK)
      target_link_libraries(${lib} PRIVATE ${P_LINK})
    endif()
  endforeach()
endfunction()
