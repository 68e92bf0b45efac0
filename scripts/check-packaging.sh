#!/usr/bin/env bash
# Checks what orderd ships besides the code, and exits 1 if anything fails:
#
#   - systemd/orderd.service and systemd/order-consumer.service:
#       `systemd-analyze security --offline=yes` exposure <= ORDERD_MAX_EXPOSURE (2.0), and
#       `systemd-analyze verify` clean (no message at all);
#       orderd.service's TimeoutStopSec exceeds shutdown_timeout_s + the 5 s outbox flush;
#   - deploy/orderd.yaml: `cfn-lint` clean (no errors, no warnings);
#   - man/orderd.8: `mandoc -Tlint` and `groff -man -wall` clean.
#
# `verify` needs the programs the units name to exist, and the units they depend on
# (sysinit.target, ...). Rather than installing orderd on this machine, it runs with --root on
# a temporary tree holding stand-in executables at /usr/sbin/orderd and /usr/bin/order-consumer,
# /bin/kill, a copy of this machine's systemd units, and the units under test; MANPATH points at
# man/ so the man:orderd(8) link is checked too. Everything else verify checks (unknown or
# misspelt settings, bad values, dependency loops) is real.
#
# Installs (Debian) only what is missing: systemd (for systemd-analyze; no running systemd is
# needed), groff-base, mandoc. cfn-lint comes from PATH, else `pip install --user cfn-lint` is
# tried; if that fails too (no PyPI), that one check is reported as SKIP.
set -uo pipefail

OD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091 # deps.sh is checked on its own
source "$OD_ROOT/scripts/deps.sh"
MAX_EXPOSURE=${ORDERD_MAX_EXPOSURE:-2.0}
UNITS=(orderd.service order-consumer.service)

passed=0 failed=0 skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; skipped=$((skipped + 1)); }
indent() { sed 's/^/    /'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- tools ----
command -v systemd-analyze >/dev/null || od_install systemd
command -v groff >/dev/null || od_install groff-base
command -v mandoc >/dev/null || od_install mandoc || echo "note: mandoc not installed; groff only"

# ---- systemd units: security exposure ----
if command -v systemd-analyze >/dev/null; then
    for unit in "${UNITS[@]}"; do
        out=$(systemd-analyze security --offline=yes --no-pager "$OD_ROOT/systemd/$unit" 2>&1)
        score=$(printf '%s\n' "$out" |
            sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p')
        if [[ -z $score ]]; then
            fail "$unit: no exposure level from systemd-analyze security"
            printf '%s\n' "$out" | indent
        elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
            pass "$unit: systemd-analyze security exposure $score (<= $MAX_EXPOSURE)"
        else
            fail "$unit: systemd-analyze security exposure $score (> $MAX_EXPOSURE)"
            printf '%s\n' "$out" | grep '✗' | indent
        fi
    done
else
    fail "systemd-analyze not found (apt-get install systemd)"
fi

# ---- systemd units: verify, in a temporary root ----
if command -v systemd-analyze >/dev/null; then
    root=$tmp/root
    mkdir -p "$root/usr/sbin" "$root/usr/bin" "$root/bin" "$root/usr/lib/systemd" \
        "$root/etc/systemd/system" "$tmp/man/man8"
    for exe in usr/sbin/orderd usr/bin/order-consumer; do
        printf '#!/bin/sh\nexit 0\n' >"$root/$exe"
        chmod 755 "$root/$exe"
    done
    cp "$(type -P kill)" "$root/bin/kill"
    for d in /usr/lib/systemd/system /lib/systemd/system; do
        if [[ -d $d && ! -e $root/usr/lib/systemd/system ]]; then
            cp -a "$d" "$root/usr/lib/systemd/system"
        fi
    done
    for unit in "${UNITS[@]}"; do
        cp "$OD_ROOT/systemd/$unit" "$root/etc/systemd/system/$unit"
    done
    cp "$OD_ROOT/man/orderd.8" "$tmp/man/man8/orderd.8"
    for unit in "${UNITS[@]}"; do
        out=$(MANPATH=$tmp/man SYSTEMD_LOG_COLOR=0 \
            systemd-analyze verify --root="$root" "$unit" 2>&1)
        rc=$?
        if [[ $rc -eq 0 && -z $out ]]; then
            pass "$unit: systemd-analyze verify clean"
        else
            fail "$unit: systemd-analyze verify (exit $rc)"
            printf '%s\n' "$out" | indent
        fi
    done
fi

# ---- orderd.service: stop timeout covers a graceful stop ----
unit_stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$OD_ROOT/systemd/orderd.service")
conf_stop=$(sed -n 's/^#\{0,1\}shutdown_timeout_s *= *\([0-9]*\)$/\1/p' "$OD_ROOT/conf/orderd.conf" |
    head -1)
if [[ -n $unit_stop && -n $conf_stop ]] && ((unit_stop > conf_stop + 5)); then
    pass "orderd.service: TimeoutStopSec=${unit_stop}s > shutdown_timeout_s ${conf_stop} s + 5 s"
else
    fail "orderd.service: TimeoutStopSec='${unit_stop}' must exceed shutdown_timeout_s" \
        "('${conf_stop}') + 5 s (outbox flush), in seconds"
fi

# ---- CloudFormation ----
cfn_lint=$(command -v cfn-lint || true)
if [[ -z $cfn_lint ]]; then
    python3 -m pip install --user -q cfn-lint >/dev/null 2>&1 ||
        pip install --user -q cfn-lint >/dev/null 2>&1 || true
    [[ -x $HOME/.local/bin/cfn-lint ]] && cfn_lint=$HOME/.local/bin/cfn-lint
fi
if [[ -z $cfn_lint ]]; then
    skip "deploy/orderd.yaml: cfn-lint not on PATH and pip could not install it"
else
    out=$("$cfn_lint" -- "$OD_ROOT/deploy/orderd.yaml" 2>&1)
    rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then
        pass "deploy/orderd.yaml: cfn-lint clean ($("$cfn_lint" --version 2>&1))"
    else
        fail "deploy/orderd.yaml: cfn-lint (exit $rc)"
        printf '%s\n' "$out" | indent
    fi
fi

# ---- man page ----
man_page=$OD_ROOT/man/orderd.8
if command -v mandoc >/dev/null; then
    out=$(mandoc -Tlint -W warning "$man_page" 2>&1)
    rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then
        pass "man/orderd.8: mandoc -Tlint clean"
    else
        fail "man/orderd.8: mandoc -Tlint (exit $rc)"
        printf '%s\n' "$out" | indent
    fi
fi
if command -v groff >/dev/null; then
    out=$(groff -man -Tutf8 -wall -z "$man_page" 2>&1)
    rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then
        pass "man/orderd.8: groff -man -wall clean"
    else
        fail "man/orderd.8: groff -man -wall (exit $rc)"
        printf '%s\n' "$out" | indent
    fi
else
    fail "man/orderd.8: groff not found (apt-get install groff-base)"
fi

if ((failed > 0)); then
    echo "check-packaging: FAILED ($failed failed, $passed passed, $skipped skipped)"
    exit 1
fi
echo "check-packaging: OK ($passed passed, $skipped skipped)"
