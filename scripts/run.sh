#!/usr/bin/env bash
# Installs what is missing, builds orderd, and runs it in the foreground on the embedded SQLite
# store with conf/orderd.conf (data in ./var/). Ctrl-C stops it gracefully.
#   scripts/run.sh [extra orderd arguments]
set -euo pipefail
OD_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$OD_ROOT/scripts/deps.sh"

od_install "${OD_BUILD_PACKAGES[@]}"
od_build "$OD_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORDERD_TESTS=OFF
mkdir -p "$OD_ROOT/var"
cd "$OD_ROOT/var"
"$OD_ROOT/build/orderd" -t -c "$OD_ROOT/conf/orderd.conf"
echo "== orderd on http://127.0.0.1:8080 (data in var/orderd.db); try:"
echo "   curl -i -H 'Content-Type: application/json' -d '{\"customer_id\":\"CUST-000123\",\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-1001\",\"quantity\":2,\"unit_price_cents\":1999}]}' http://127.0.0.1:8080/orders"
exec "$OD_ROOT/build/orderd" -c "$OD_ROOT/conf/orderd.conf" "$@"
