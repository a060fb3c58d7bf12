# The gdb extension (tools/gdb/weft-gdb.py: `info weft-tasks`, `weft-bt`) in
# the build tree: copied beside the built shared library as
# libweft.so.X.Y.Z-gdb.py, gdb's objfile-gdb.py convention, so that gdb
# loads it for any program linked with that libweft.so once the directory is
# trusted (`set auto-load safe-path` or `add-auto-load-safe-path`, see
# docs/observability.md). WeftInstall.cmake installs the same file under
# DATADIR/gdb/auto-load. Rewritten whenever CMake regenerates, which it does
# when the script changes.
if(TARGET weft)
  file(GENERATE OUTPUT "$<TARGET_FILE:weft>-gdb.py"
    INPUT "${PROJECT_SOURCE_DIR}/tools/gdb/weft-gdb.py")
endif()
