# Install rules of what a host running the daemon needs besides bin/corio
# (server/'s rule), all in component Server: deploy/'s systemd units, the
# example configuration, the logrotate snippet and the man page
# (README, "Host install (systemd)" and "Debian package").
#
# /etc and the unit directory are absolute only where GNUInstallDirs makes
# them so, for the prefix /usr (the Debian package's: /etc/corio,
# /lib/systemd/system). Any other prefix keeps them relative, so that
# `cmake --install --prefix DIR` puts nothing outside DIR (a /usr/local
# tree would otherwise write /usr/local/etc on the machine whatever --prefix
# says; tests/install/lib.sh checks it).
if(CMAKE_INSTALL_FULL_SYSCONFDIR STREQUAL "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}")
  set(_etc ${CMAKE_INSTALL_SYSCONFDIR})
else()
  set(_etc ${CMAKE_INSTALL_FULL_SYSCONFDIR})
endif()
# Debian 12's packages put units in /lib/systemd/system (/usr/lib/... is
# trixie's); systemd also reads <prefix>/lib/systemd/system for /usr/local.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_units_default /lib/systemd/system)
else()
  set(_units_default lib/systemd/system)
endif()
set(CORIO_SYSTEMD_UNIT_DIR ${_units_default} CACHE STRING
    "Where corio.service and corio.socket go (relative: to the prefix)")

# Debian wants man pages compressed, with gzip -9n (no name, no time stamp:
# the same bytes at every build).
find_program(CORIO_GZIP gzip REQUIRED)
set(_man ${PROJECT_SOURCE_DIR}/deploy/corio.8)
set(_man_gz ${PROJECT_BINARY_DIR}/corio.8.gz)
add_custom_command(OUTPUT ${_man_gz}
                   COMMAND sh -c "\"$0\" -9n -c \"$1\" > \"$2\"" ${CORIO_GZIP} ${_man} ${_man_gz}
                   DEPENDS ${_man} VERBATIM)
add_custom_target(corio-man ALL DEPENDS ${_man_gz})

set(_d ${PROJECT_SOURCE_DIR}/deploy)
install(FILES ${_d}/corio.service ${_d}/corio.socket DESTINATION ${CORIO_SYSTEMD_UNIT_DIR}
        COMPONENT Server)
install(FILES ${_d}/corio.json DESTINATION ${_etc}/corio COMPONENT Server)
install(FILES ${_d}/corio.logrotate DESTINATION ${_etc}/logrotate.d RENAME corio COMPONENT Server)
install(FILES ${_man_gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT Server)
# The files cmake/package.cmake marks as the package's conffiles.
set(CORIO_CONFFILES ${_etc}/corio/corio.json ${_etc}/logrotate.d/corio)
