# Install rules of libcorio (the daemon's are in server/): the libraries, the
# public headers in include/corio/, corio.pc, and the CMake package
# (find_package(corio) gives corio::corio, the shared library, and
# corio::corio_static). Components: Runtime (libcorio.so.0*) and Development
# (the rest). tests/install/ checks what they install.
include(CMakePackageConfigHelpers)
set(CORIO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/corio)

install(TARGETS corio_shared corio_static EXPORT corioTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
                NAMELINK_COMPONENT Development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development)
list(TRANSFORM CORIO_PUBLIC_HEADERS PREPEND ${PROJECT_SOURCE_DIR}/ OUTPUT_VARIABLE _headers)
install(FILES ${_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/corio COMPONENT Development)

# The static library's dependencies, as the package's consumers find them
# (the shared one brings its own): in corioConfig.cmake, and in corio.pc's
# Requires.private.
get_property(_llhttp GLOBAL PROPERTY CORIO_LLHTTP)
set(CORIO_CONFIG_LLHTTP "")
set(CORIO_PC_LLHTTP "")
if(_llhttp STREQUAL "llhttp::llhttp")
  set(CORIO_CONFIG_LLHTTP "find_dependency(llhttp CONFIG)")
  set(CORIO_PC_LLHTTP ", llhttp")
elseif(_llhttp STREQUAL "PkgConfig::corio_llhttp")
  set(CORIO_CONFIG_LLHTTP "_corio_pkg(corio_llhttp llhttp)")
  set(CORIO_PC_LLHTTP ", llhttp")
endif() # else llhttp_static: its objects are in libcorio

install(EXPORT corioTargets NAMESPACE corio:: DESTINATION ${CORIO_CMAKE_DIR}
        COMPONENT Development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/corioConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/corioConfig.cmake
                              INSTALL_DESTINATION ${CORIO_CMAKE_DIR})
# 0.x: a minor release may break the API (README, "Using corio as a library").
write_basic_package_version_file(${PROJECT_BINARY_DIR}/corioConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/corioConfig.cmake ${PROJECT_BINARY_DIR}/corioConfigVersion.cmake
        DESTINATION ${CORIO_CMAKE_DIR} COMPONENT Development)

# corio.pc, written at install time: its prefix is the one installed into
# (cmake --install --prefix may differ from CMAKE_INSTALL_PREFIX).
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(CORIO_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(CORIO_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
set(_dl ${CMAKE_DL_LIBS})
list(TRANSFORM _dl PREPEND " -l")
string(JOIN "" CORIO_PC_DL ${_dl})
set(CORIO_PC_PREFIX "@CMAKE_INSTALL_PREFIX@") # left for install time
configure_file(${PROJECT_SOURCE_DIR}/cmake/corio.pc.in ${PROJECT_BINARY_DIR}/corio.pc.in @ONLY)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(_pcdir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
else()
  set(_pcdir "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig")
endif()
install(CODE "
  set(_pc \"\$ENV{DESTDIR}${_pcdir}/corio.pc\")
  message(STATUS \"Installing: \${_pc}\")
  configure_file(\"${PROJECT_BINARY_DIR}/corio.pc.in\" \"\${_pc}\" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_pc}\")
" COMPONENT Development)
