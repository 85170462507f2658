# Debian packages by CPack (cpack -G DEB; deploy/deb.sh configures a tree
# with the prefix /usr and runs it), one per install component, as Debian
# splits a library:
#   corio         Server: the daemon, its units, /etc/corio/corio.json and
#                 /etc/logrotate.d/corio (conffiles), the man page
#   libcorio0     Runtime: libcorio.so.0*
#   libcorio-dev  Development: headers, libcorio.so, libcorio.a, corio.pc,
#                 the CMake package
# Runtime dependencies come from dpkg-shlibdeps (dpkg-dev). See README,
# "Debian package".
set(CPACK_PACKAGE_NAME corio)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# The first line of each package's description below is its synopsis. CPack
# would put the summary in front of each, but for its own default summary.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
# The packages hold what this tree installs: Debian's paths (/usr/bin,
# /usr/lib/<multiarch>, /etc) need the tree configured with the prefix /usr.
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING IGNORE) # one package per component
set(CPACK_COMPONENTS_ALL Runtime Development)
if(CORIO_BUILD_SERVER)
  list(PREPEND CPACK_COMPONENTS_ALL Server)
endif()

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # name_version_arch.deb
set(CORIO_DEB_MAINTAINER "Seed 3151ec7f maintainers <maintainers@users.noreply.h-seed-3151ec7f.example>"
    CACHE STRING "The Debian packages' Maintainer field")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CORIO_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME corio)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_SERVER_DESCRIPTION
    "io_uring HTTP/1.1 and WebSocket server
corio serves HTTP/1.1 and WebSocket (RFC 6455, permessage-deflate) from one
io_uring event loop per worker thread with coroutine handlers, and finds the
members of a cluster by the peer-ID self-discovery protocol. This package
holds the daemon, its systemd units (corio.service, corio.socket; neither
is enabled on installation), the example configuration
/etc/corio/corio.json, a logrotate snippet and the man page corio(8).")

# 0.x: any release may change the ABI under the same SONAME (README, "Using
# corio as a library"), so a program built against libcorio0 X needs X
# exactly: shlibs "libcorio 0 libcorio0 (= X)".
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libcorio0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
# ldconfig by libc-bin's trigger, as Debian's libraries do. (CPack also
# writes a postinst and postrm that call ldconfig: harmless, once more.)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/deb/libcorio0/triggers)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
    "io_uring coroutine runtime, HTTP/1.1 and WebSocket library
libcorio is corio's runtime and protocols as a library: an io_uring event
loop with coroutines, a thread pool, an HTTP/1.1 and WebSocket server and
client, peer-ID discovery and corio's configuration model. This package
holds the shared library.")

# The static library and corio.pc's Requires.private need the dependencies'
# development files, and the CMake package finds them with pkg-config.
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME libcorio-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS
    "libcorio0 (= ${PROJECT_VERSION}), liburing-dev (>= 2.3), libjansson-dev, libssl-dev, zlib1g-dev, pkg-config")
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION
    "io_uring coroutine HTTP/1.1 and WebSocket library (development files)
libcorio is corio's runtime and protocols as a library. This package holds
the headers (include/corio), the libcorio.so link, the static library
libcorio.a, corio.pc for pkg-config and the CMake package
(find_package(corio): corio::corio, corio::corio_static).")

# The corio package's maintainer scripts (systemd) and conffiles: what it
# installs into /etc, which dpkg then keeps when the administrator edits it.
if(CORIO_BUILD_SERVER)
  set(_conffiles "")
  foreach(f ${CORIO_CONFFILES})
    if(NOT IS_ABSOLUTE ${f})
      set(f ${CMAKE_INSTALL_PREFIX}/${f})
    endif()
    string(APPEND _conffiles "${f}\n")
  endforeach()
  file(WRITE ${PROJECT_BINARY_DIR}/deb/conffiles "${_conffiles}")
  set(_s ${PROJECT_SOURCE_DIR}/deploy/deb/corio)
  set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
      ${PROJECT_BINARY_DIR}/deb/conffiles ${_s}/postinst ${_s}/prerm ${_s}/postrm)
endif()

include(CPack)
