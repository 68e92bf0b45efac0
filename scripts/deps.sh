# Sourced by run.sh and test.sh: installs the Debian packages orderd needs, only if missing.
# shellcheck shell=bash

# Build and run time.
OD_BUILD_PACKAGES=(build-essential cmake pkg-config libapr1-dev libaprutil1-dev
    libmicrohttpd-dev libjson-c-dev libcurl4-openssl-dev libsqlite3-dev libssl-dev libsystemd-dev)
# Tests only.
OD_TEST_PACKAGES=(check libsubunit-dev curl sqlite3 prometheus)
# The fuzz targets (docs/fuzzing.md): clang, its runtimes (libclang_rt.fuzzer and the sanitizers',
# only recommended by clang, so named here) and llvm-symbolizer for readable stack traces.
OD_FUZZ_PACKAGES=(clang libclang-rt-dev llvm)

od_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# od_install PACKAGE...: apt-get installs whichever of PACKAGE are not installed yet.
od_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    echo "== installing: ${missing[*]}"
    od_as_root apt-get update -qq
    od_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}

# od_build DIR [CMAKE ARGS...]: configures and builds orderd in DIR.
od_build() {
    local dir=$1
    shift
    cmake -S "$OD_ROOT" -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}
