#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds a consumer program against it, through
# pkg-config (shared and static) and through CMake's find_package.
set -euo pipefail
build=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
for f in bin/gradcam include/gradcam.h lib/libgradcam.so lib/libgradcam.a lib/pkgconfig/gradcam.pc \
         lib/cmake/gradcam/gradcamConfig.cmake; do
  alt=${f/lib\//lib/x86_64-linux-gnu/}
  [ -e "$prefix/$f" ] || [ -e "$prefix/$alt" ] || { echo "FAIL: $f not installed"; exit 1; }
done
cat > "$work/consumer.c" <<'C'
#include <gradcam.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    gcam_model *m = NULL;
    /* a missing file must give a clean error through the installed library */
    gcam_status s = gcam_model_load(&m, "/nonexistent/model.onnx", NULL);
    int ok = s == GCAM_E_IO && strstr(gcam_model_error(m), "cannot open") != NULL;
    gcam_model_free(m);
    printf("gradcam %s: %s\n", gcam_version(), ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
C
libdir=$(ls -d "$prefix"/lib/x86_64-linux-gnu 2>/dev/null || echo "$prefix/lib")
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -std=c17 -o "$work/consumer_shared" "$work/consumer.c" $(pkg-config --cflags --libs gradcam)
LD_LIBRARY_PATH=$libdir "$work/consumer_shared"
cc -std=c17 -o "$work/consumer_static" "$work/consumer.c" $(pkg-config --cflags gradcam) \
   $(pkg-config --static --libs gradcam | sed "s#-lgradcam#$libdir/libgradcam.a#") -fopenmp
# the shared library exports the public API only, and needs no image library
so=$(ls "$libdir"/libgradcam.so)
extra=$(nm -D --defined-only "$so" | awk '$3 !~ /^gcam_/ {print $3}')
[ -z "$extra" ] || { echo "FAIL: libgradcam.so exports more than gcam_*: $(echo $extra | head -c 300)"; exit 1; }
nm -D --defined-only "$so" | grep -q ' gcam_model_load$' || { echo "FAIL: libgradcam.so lacks gcam_model_load"; exit 1; }
! ldd "$so" | grep -Eq 'libpng|libjpeg' || { echo "FAIL: libgradcam.so links an image library"; exit 1; }
ldd "$work/consumer_static" | grep -q libgradcam && { echo "FAIL: static consumer links the shared library"; exit 1; }
"$work/consumer_static"
mkdir -p "$work/cmake-consumer"
cat > "$work/cmake-consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(gradcam REQUIRED)
add_executable(consumer ../consumer.c)
target_link_libraries(consumer PRIVATE gradcam::gradcam)
CM
cmake -S "$work/cmake-consumer" -B "$work/cmake-consumer/build" -DCMAKE_PREFIX_PATH="$prefix" > "$work/cmake.log"
cmake --build "$work/cmake-consumer/build" > "$work/cmake-build.log"
LD_LIBRARY_PATH=$libdir "$work/cmake-consumer/build/consumer"
"$prefix/bin/gradcam" --version
echo "install test: 1 passed, 0 failed"
