# Install rules: `cmake --install BUILD [--prefix DIR]` installs
#
#   include/weft.h, include/weft/*.h          the public headers
#   LIBDIR/libweft.so.X.Y.Z, its SONAME link   the shared library (Runtime)
#   LIBDIR/libweft.so, LIBDIR/libweft.a        namelink and static library
#   LIBDIR/pkgconfig/weft.pc                   pkg-config
#   LIBDIR/cmake/weft/                         find_package(weft): weft::weft
#                                              and weft::weft_static
#   DATADIR/gdb/auto-load/LIBDIR/libweft.so.X.Y.Z-gdb.py
#                                              the gdb extension (tools/gdb)
#
# Components: Runtime (the versioned shared library only) and Development
# (everything else), for `cmake --install BUILD --component Runtime`.
#
# The libraries link PkgConfig::LIBUV and Threads::Threads, imported targets
# that exist only in the project that creates them. The shared library links
# them privately, so its export needs nothing. The static library's link
# interface names them, so weftConfig.cmake creates them again (pkg-config
# and FindThreads, as the root CMakeLists.txt does) before it loads the
# static library's export; the two libraries are exported as separate sets so
# that the shared one never depends on libuv's development files.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(WEFT_INSTALL "Generate weft's install rules" ${PROJECT_IS_TOP_LEVEL})
if(NOT WEFT_INSTALL OR NOT TARGET weft OR NOT TARGET weft_static)
  return()
endif()

# Must agree with pkg_check_modules(LIBUV ... libuv>=...) in CMakeLists.txt.
set(WEFT_LIBUV_MIN_VERSION 1.44)
set(WEFT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/weft"
  CACHE STRING "Where weftConfig.cmake is installed, relative to the prefix")
mark_as_advanced(WEFT_INSTALL_CMAKEDIR)

# Headers.
install(FILES "${PROJECT_SOURCE_DIR}/include/weft.h"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT Development)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/weft"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT Development
  FILES_MATCHING PATTERN "*.h")

# Libraries. The targets' own INSTALL_INTERFACE include directory is
# "include"; INCLUDES DESTINATION adds CMAKE_INSTALL_INCLUDEDIR when the
# headers go elsewhere.
if(CMAKE_INSTALL_INCLUDEDIR STREQUAL "include")
  set(_weft_includes)
else()
  set(_weft_includes INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()
install(TARGETS weft EXPORT weftTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime
  ${_weft_includes})
install(TARGETS weft_static EXPORT weftStaticTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
  ${_weft_includes})
unset(_weft_includes)

# CMake package.
install(EXPORT weftTargets
  FILE weftTargets.cmake
  NAMESPACE weft::
  DESTINATION "${WEFT_INSTALL_CMAKEDIR}"
  COMPONENT Development)
install(EXPORT weftStaticTargets
  FILE weftStaticTargets.cmake
  NAMESPACE weft::
  DESTINATION "${WEFT_INSTALL_CMAKEDIR}"
  COMPONENT Development)

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/weftConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/weftConfig.cmake"
  INSTALL_DESTINATION "${WEFT_INSTALL_CMAKEDIR}")
# While the major version is 0 a minor release may break the ABI (see
# include/weft/version.h), so only the same MAJOR.MINOR is compatible.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_weft_compat SameMinorVersion)
else()
  set(_weft_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/weftConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY ${_weft_compat})
unset(_weft_compat)
install(FILES
  "${PROJECT_BINARY_DIR}/weftConfig.cmake"
  "${PROJECT_BINARY_DIR}/weftConfigVersion.cmake"
  DESTINATION "${WEFT_INSTALL_CMAKEDIR}"
  COMPONENT Development)

# pkg-config. The prefix is only known when installing (`cmake --install
# --prefix DIR` overrides CMAKE_INSTALL_PREFIX then), so weft.pc is written
# by the install script itself, right before it is copied.
# A build with TLS links OpenSSL: libssl and libcrypto join libuv in
# Requires.private (the static library needs them; the shared one carries
# them as its own dependencies).
if(WEFT_HAVE_TLS)
  set(_weft_pc_tls ", libssl >= 3, libcrypto >= 3")
else()
  set(_weft_pc_tls "")
endif()
if(WEFT_HAVE_LIBUNWIND) # task dump backtraces (src/backtrace.c)
  string(APPEND _weft_pc_tls ", libunwind")
endif()
foreach(_weft_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_weft_dir}}")
    set(_weft_pc_${_weft_dir} "${CMAKE_INSTALL_${_weft_dir}}")
  else()
    set(_weft_pc_${_weft_dir} "\${prefix}/${CMAKE_INSTALL_${_weft_dir}}")
  endif()
endforeach()
install(CODE "
  set(WEFT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(WEFT_PC_LIBDIR [[${_weft_pc_LIBDIR}]])
  set(WEFT_PC_INCLUDEDIR [[${_weft_pc_INCLUDEDIR}]])
  set(WEFT_PC_VERSION [[${PROJECT_VERSION}]])
  set(WEFT_PC_LIBUV_MIN [[${WEFT_LIBUV_MIN_VERSION}]])
  set(WEFT_PC_TLS_REQUIRES [[${_weft_pc_tls}]])
  configure_file([[${CMAKE_CURRENT_LIST_DIR}/weft.pc.in]]
    [[${PROJECT_BINARY_DIR}/weft.pc]] @ONLY)
  " COMPONENT Development)
install(FILES "${PROJECT_BINARY_DIR}/weft.pc"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  COMPONENT Development)
unset(_weft_dir)
unset(_weft_pc_tls)
unset(_weft_pc_LIBDIR)
unset(_weft_pc_INCLUDEDIR)

# The gdb extension, where gdb looks for a shared object's script (its
# objfile-gdb.py convention): DATADIR/gdb/auto-load followed by the absolute
# path of the library's real file, so that gdb loads it for every program
# that loads this libweft.so (docs/observability.md: a prefix other than
# /usr must be added to gdb's auto-load directories). The absolute LIBDIR is
# only known when installing (`--prefix` may override the configured one),
# so the install script computes the destination itself; file(INSTALL)
# adds DESTDIR.
install(CODE "
  set(_weft_gdb_libdir [[${CMAKE_INSTALL_LIBDIR}]])
  if(NOT IS_ABSOLUTE \"\${_weft_gdb_libdir}\")
    set(_weft_gdb_libdir \"\${CMAKE_INSTALL_PREFIX}/\${_weft_gdb_libdir}\")
  endif()
  set(_weft_gdb_datadir [[${CMAKE_INSTALL_DATADIR}]])
  if(NOT IS_ABSOLUTE \"\${_weft_gdb_datadir}\")
    set(_weft_gdb_datadir \"\${CMAKE_INSTALL_PREFIX}/\${_weft_gdb_datadir}\")
  endif()
  cmake_path(NORMAL_PATH _weft_gdb_libdir)
  cmake_path(NORMAL_PATH _weft_gdb_datadir)
  file(INSTALL [[${PROJECT_SOURCE_DIR}/tools/gdb/weft-gdb.py]]
    DESTINATION \"\${_weft_gdb_datadir}/gdb/auto-load\${_weft_gdb_libdir}\"
    RENAME [[$<TARGET_FILE_NAME:weft>-gdb.py]])
  " COMPONENT Development)
