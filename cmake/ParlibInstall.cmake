# Installation: headers, libraries, the CMake package and pkg-config files.
include(CMakePackageConfigHelpers)

install(DIRECTORY include/parlib DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/include/upthread")
  install(DIRECTORY include/upthread DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()

# libupthread finds the libparlib installed beside it, wherever the prefix.
if(TARGET upthread)
  set_target_properties(upthread PROPERTIES INSTALL_RPATH "$ORIGIN")
endif()

install(TARGETS ${PARLIB_INSTALL_TARGETS} EXPORT parlibTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT parlibTargets NAMESPACE parlib::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/parlib)

configure_package_config_file(cmake/parlibConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/parlibConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/parlib)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/parlibConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/parlibConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/parlibConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/parlib)

# The pkg-config files locate the prefix relative to themselves.
file(RELATIVE_PATH PARLIB_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/parlib.pc.in ${CMAKE_CURRENT_BINARY_DIR}/parlib.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/parlib.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(TARGET upthread)
  configure_file(cmake/upthread.pc.in ${CMAKE_CURRENT_BINARY_DIR}/upthread.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/upthread.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

# The gdb extension (docs/debugging.md), where gdb auto-loads it for
# libparlib: <datadir>/gdb/auto-load/<the library's directory>/<its file
# name>-gdb.py. gdb looks there by itself when the prefix is gdb's own
# (/usr); for another prefix, add <prefix>/share/gdb/auto-load to gdb's
# auto-load scripts-directory (docs/debugging.md says how).
string(REGEX REPLACE "^/+" "" parlib_gdb_libdir "${CMAKE_INSTALL_FULL_LIBDIR}")
install(FILES gdb/parlib_gdb.py
  DESTINATION ${CMAKE_INSTALL_DATADIR}/gdb/auto-load/${parlib_gdb_libdir}
  RENAME libparlib.so.${PROJECT_VERSION}-gdb.py)
