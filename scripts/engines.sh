# Sourced by test.sh after deps.sh: installs the local AWS engines the tests run against, only
# what is missing: Java, DynamoDB Local (shipped inside an npm package), moto_server, the AWS CLI.
# shellcheck shell=bash

# Pinned: the jar inside it is the DynamoDB Local the tests were written against.
OD_DDB_NPM_PACKAGE=amplify-dynamodb-simulator@2.9.30

# od_engines_install: makes sure every engine can run and exports ORDERD_TEST_DDB_JAR.
od_engines_install() {
    local dir="$OD_ROOT/build-test/engines" pkgs=()
    local jar="$dir/node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar"

    command -v java >/dev/null || pkgs+=(default-jre-headless)
    command -v aws >/dev/null || pkgs+=(awscli)
    if [[ ! -f $jar ]]; then
        command -v node >/dev/null || pkgs+=(nodejs)
        command -v npm >/dev/null || pkgs+=(npm)
    fi
    if ((${#pkgs[@]} > 0)); then
        od_install "${pkgs[@]}"
    fi
    if [[ ! -f $jar ]]; then
        echo "== installing DynamoDB Local ($OD_DDB_NPM_PACKAGE, npm)"
        mkdir -p "$dir"
        npm install --no-audit --no-fund --prefix "$dir" "$OD_DDB_NPM_PACKAGE"
    fi
    if [[ ! -f $jar ]]; then
        echo "error: DynamoDB Local is not at $jar after npm install" >&2
        return 1
    fi
    export ORDERD_TEST_DDB_JAR=$jar
    od_engines_moto
}

# od_engines_moto: moto_server on PATH, from pip if need be (only where PyPI is reachable).
od_engines_moto() {
    command -v moto_server >/dev/null && return 0
    echo "== installing moto_server (pip, moto[server])"
    # --user may meet Debian's externally-managed Python; a user install does not touch it.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user --retries 1 --timeout 20 \
        'moto[server]' || true
    hash -r
    local userbin
    userbin="$(python3 -m site --user-base 2>/dev/null || true)/bin"
    if ! command -v moto_server >/dev/null && [[ -x $userbin/moto_server ]]; then
        export PATH="$userbin:$PATH"
    fi
    if ! command -v moto_server >/dev/null; then
        echo "error: moto_server is not on PATH and pip could not install moto[server];" \
            "install it (python3 -m pip install 'moto[server]') and rerun" >&2
        return 1
    fi
}
