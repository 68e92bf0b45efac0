# Installation rules for orderd, order-consumer, their configuration, systemd units, man page
# and documentation. Included from the top-level CMakeLists.txt after the targets exist.
#
# Typical system install (paths in the units match /usr/sbin, /etc):
#
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DORDERD_TESTS=OFF
#   cmake --build build -j
#   sudo cmake --install build
#
# The units are written with the configured paths (CMAKE_INSTALL_FULL_SBINDIR, ..._BINDIR,
# ..._SYSCONFDIR, ..._DOCDIR), so choose the prefix when configuring; `cmake --install --prefix`
# would move the files but not the paths inside the units. DESTDIR staging works as usual.
#
# Configuration files are installed only where none exists yet: an upgrade never overwrites an
# operator's /etc/orderd/orderd.conf. The pristine copies always go to DOCDIR/examples.

include(GNUInstallDirs)

set(ORDERD_SYSTEMD_UNITDIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
    CACHE PATH "Where to install the systemd unit files")
option(ORDERD_INSTALL_SYSTEMD_UNITS "Install the systemd unit files" ON)

get_filename_component(_od_src "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(_od_confdir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/orderd")

# ---- programs ----
install(TARGETS orderd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
if(TARGET order-consumer)
  install(TARGETS order-consumer RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# ---- configuration ----
set(_od_conf_files "${_od_src}/conf/orderd.conf")
if(EXISTS "${_od_src}/conf/order-consumer.conf")
  list(APPEND _od_conf_files "${_od_src}/conf/order-consumer.conf")
endif()
install(FILES ${_od_conf_files} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
foreach(_od_conf IN LISTS _od_conf_files)
  get_filename_component(_od_conf_name "${_od_conf}" NAME)
  install(CODE "
    if(EXISTS \"\$ENV{DESTDIR}${_od_confdir}/${_od_conf_name}\")
      message(STATUS \"Keeping: \$ENV{DESTDIR}${_od_confdir}/${_od_conf_name} (the shipped default is in ${CMAKE_INSTALL_FULL_DOCDIR}/examples)\")
    else()
      file(INSTALL DESTINATION \"${_od_confdir}\" TYPE FILE
           PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
           FILES \"${_od_conf}\")
    endif()")
endforeach()

# ---- systemd units, with the configured paths ----
if(ORDERD_INSTALL_SYSTEMD_UNITS)
  set(_od_units orderd.service)
  if(TARGET order-consumer)
    list(APPEND _od_units order-consumer.service)
  endif()
  foreach(_od_unit IN LISTS _od_units)
    set(_od_unit_src "${_od_src}/systemd/${_od_unit}")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_od_unit_src}")
    file(READ "${_od_unit_src}" _od_text)
    string(REPLACE "/usr/sbin/orderd" "${CMAKE_INSTALL_FULL_SBINDIR}/orderd" _od_text "${_od_text}")
    string(REPLACE "/usr/bin/order-consumer" "${CMAKE_INSTALL_FULL_BINDIR}/order-consumer"
           _od_text "${_od_text}")
    string(REPLACE "/etc/orderd/" "${_od_confdir}/" _od_text "${_od_text}")
    string(REPLACE "/usr/share/doc/orderd/" "${CMAKE_INSTALL_FULL_DOCDIR}/" _od_text "${_od_text}")
    # Through configure_file, so an unchanged unit keeps its time stamp ("Up-to-date").
    file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/systemd/${_od_unit}.in" "${_od_text}")
    configure_file("${CMAKE_CURRENT_BINARY_DIR}/systemd/${_od_unit}.in"
                   "${CMAKE_CURRENT_BINARY_DIR}/systemd/${_od_unit}" COPYONLY)
    install(FILES "${CMAKE_CURRENT_BINARY_DIR}/systemd/${_od_unit}"
            DESTINATION "${ORDERD_SYSTEMD_UNITDIR}")
  endforeach()
endif()

# ---- man page and documentation ----
install(FILES "${_od_src}/man/orderd.8" DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
file(GLOB _od_docs "${_od_src}/docs/*.md")
install(FILES "${_od_src}/README.md" ${_od_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES "${_od_src}/deploy/orderd.yaml" DESTINATION ${CMAKE_INSTALL_DOCDIR}/deploy)

# ---- system users (systemd-sysusers) ----
if(ORDERD_INSTALL_SYSTEMD_UNITS)
  install(FILES "${_od_src}/systemd/orderd.sysusers"
          DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d" RENAME orderd.conf)
endif()
