# Cross-compiling edgeglm for 64-bit ARM Linux (Raspberry Pi 4B / RK3588) from an x86-64 Debian host:
#   apt-get install g++-aarch64-linux-gnu qemu-user-static libgtest-dev nlohmann-json3-dev libcli11-dev
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=deploy/toolchain-aarch64.cmake
#   cmake --build build-arm64 -j2
# Tests then run on the host through qemu (ctest --test-dir build-arm64), see docs/cross.md.
#
# Dependencies: the library needs only libstdc++ (from the cross toolchain's sysroot
# /usr/aarch64-linux-gnu) and header-only nlohmann-json; CLI11 is header-only too. Their CMake
# package files are architecture-independent (/usr/share/cmake), so packages are looked up in the
# host root as well, while libraries are looked up only in the aarch64 sysroot: the host's x86-64
# libgtest can never be picked up. tests/CMakeLists.txt builds GoogleTest from the sources that
# libgtest-dev ships (/usr/src/googletest) when no aarch64 GTest is found.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EDGEGLM_CROSS_TRIPLE aarch64-linux-gnu CACHE STRING "GNU triple of the cross toolchain")
set(EDGEGLM_CROSS_SYSROOT /usr/${EDGEGLM_CROSS_TRIPLE} CACHE PATH "target libraries and headers")

set(CMAKE_C_COMPILER ${EDGEGLM_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${EDGEGLM_CROSS_TRIPLE}-g++)

set(CMAKE_FIND_ROOT_PATH ${EDGEGLM_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)    # never link a host library
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)    # header-only deps live in /usr/include
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)    # their config files in /usr/share/cmake

# Target binaries run on the host through qemu user-mode emulation: gtest_discover_tests and
# ctest use this. -L points the emulator at the target's dynamic loader and libraries.
# QEMU_CPU in the environment picks the emulated core (cortex-a72: no dotprod; max: everything).
find_program(EDGEGLM_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(EDGEGLM_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${EDGEGLM_QEMU_AARCH64} -L ${EDGEGLM_CROSS_SYSROOT})
endif()
