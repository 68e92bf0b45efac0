#!/usr/bin/env bash
# Installs what the tests need and runs all of them:
#   1. the whole suite on a normal (RelWithDebInfo) build;
#   2. the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the concurrency suites (label "concurrency") under ThreadSanitizer;
#   4. each libFuzzer target in fuzz/ for a short while (label "fuzz"), built with clang.
# Each build lives in its own directory under build-test/. Exits non-zero if anything fails.
set -euo pipefail
OD_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$OD_ROOT/scripts/deps.sh"
source "$OD_ROOT/scripts/engines.sh"

od_install "${OD_BUILD_PACKAGES[@]}" "${OD_TEST_PACKAGES[@]}" "${OD_FUZZ_PACKAGES[@]}"
od_engines_install
out="$OD_ROOT/build-test"
status=0

# run_suite NAME CTEST-ARGS... : builds variant NAME and runs ctest with the given arguments.
run_suite() {
    local name=$1 sanitize=$2
    shift 2
    echo "== [$name] build"
    od_build "$out/$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORDERD_SANITIZE="$sanitize" \
        -DORDERD_FAULT_INJECTION=ON
    echo "== [$name] test"
    (cd "$out/$name" && ctest --output-on-failure -j2 "$@") || status=1
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

run_suite plain ""
run_suite asan-ubsan "address,undefined"
run_suite tsan "thread" -L concurrency

# The fuzz targets need every object built by clang with coverage instrumentation, hence a build
# of their own with only the targets in it; ORDERD_FUZZ_SECONDS each (docs/fuzzing.md).
echo "== [fuzz] build"
cmake -S "$OD_ROOT" -B "$out/fuzz" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DORDERD_FUZZ=ON -DORDERD_SANITIZE=address,undefined -DORDERD_TESTS=OFF >/dev/null
cmake --build "$out/fuzz" -j"$(nproc)" --target od_fuzz_all
echo "== [fuzz] test"
(cd "$out/fuzz" && ctest --output-on-failure -j2 -L fuzz) || status=1

echo "== install layout (cmake --install into a staging directory)"
stage="$out/stage"
rm -rf "$stage"
if DESTDIR="$stage" cmake --install "$out/plain" > /dev/null; then
    for f in usr/local/sbin/orderd usr/local/bin/order-consumer usr/local/etc/orderd/orderd.conf \
        usr/local/lib/systemd/system/orderd.service usr/local/share/man/man8/orderd.8 \
        usr/local/lib/sysusers.d/orderd.conf; do
        [[ -e "$stage/$f" ]] || { echo "install: missing $f" >&2; status=1; }
    done
else
    status=1
fi

echo "== packaging (systemd units, CloudFormation, man page)"
bash "$OD_ROOT/scripts/check-packaging.sh" || status=1

if ((status == 0)); then
    echo "== all test runs passed"
else
    echo "== some test runs FAILED" >&2
fi
exit $status
