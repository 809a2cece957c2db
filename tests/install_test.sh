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
# the Python package: where Debian's python3 looks under the prefix, finding the installed library by
# itself (no GRADCAM_LIBRARY); then pip offline (Debian's setuptools) into a venv
src=$(cd "$(dirname "$0")/.." && pwd)
pydir=$(ls -d "$prefix"/lib/python3*/dist-packages)
[ -f "$pydir/gradcam/_libpath.txt" ] || { echo "FAIL: the Python package is not installed under $prefix"; exit 1; }
# with the default prefix (/usr/local) that folder is one Debian's /usr/bin/python3 searches by itself
rel=${pydir#"$prefix"/}
/usr/bin/python3 -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "/usr/local/$rel" \
  || { echo "FAIL: make install's default /usr/local/$rel is not on /usr/bin/python3's sys.path"; exit 1; }
check_py='import sys, gradcam, numpy as np
m = gradcam.Model(sys.argv[1]); e = gradcam.Explainer(m, input_shape=(1, 3, 128, 128), n_threads=1)
e.forward(np.zeros((1, 3, 128, 128), np.float32)); mp = e.explain("gradcam", target=0)
assert mp.normalized.shape == (1, 1, 128, 128), mp.normalized.shape
r = gradcam.explain(sys.argv[1], sys.argv[2], methods=["gradcam"]); assert not r.failed and r.files
print("python", gradcam.__version__, gradcam._lib.path)'
(unset GRADCAM_LIBRARY; cd "$work" && PYTHONPATH=$pydir /usr/bin/python3 -c "$check_py" \
    "$src/examples/demo/shapes_cnn.onnx" "$src/examples/demo/images/demo_1.png") | grep -q "python .*$prefix" \
  || { echo "FAIL: the installed package does not import, or not with the installed library"; exit 1; }
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
cp -r "$src/python" "$work/pysrc" && rm -rf "$work/pysrc/build" "$work/pysrc"/*.egg-info
"$work/venv/bin/pip" install -q --no-build-isolation --no-index "$work/pysrc" > "$work/pip.log" 2>&1 \
  || { echo "FAIL: pip install --no-build-isolation ./python"; cat "$work/pip.log"; exit 1; }
(cd "$work" && GRADCAM_LIBRARY=$libdir/libgradcam_tool.so "$work/venv/bin/python" -c "$check_py" \
    "$src/examples/demo/shapes_cnn.onnx" "$src/examples/demo/images/demo_1.png") | grep -q "^python " \
  || { echo "FAIL: the pip-installed package does not import"; exit 1; }
echo "install test: 1 passed, 0 failed"
