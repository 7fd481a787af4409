#!/bin/sh
# Installs seald as an appliance: binaries, the hardened unit, sysusers, tmpfiles, token profiles,
# documentation, and a default config (only if none is there: the operator's config is never
# overwritten). Idempotent. softtoken is NOT installed: it is for tests and development only.
#
#   cargo build --release -p seald && sudo appliance/install.sh
#   DESTDIR=/tmp/root BIN_DIR=target/release appliance/install.sh     # into a staging root
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
BIN_DIR=${BIN_DIR:-$repo/target/release}
for b in seald sealctl; do
  [ -x "$BIN_DIR/$b" ] || { echo "install.sh: $BIN_DIR/$b is missing: cargo build --release -p seald" >&2; exit 1; }
done
install -d -m 0755 "$DESTDIR/usr/bin" "$DESTDIR/usr/lib/systemd/system" "$DESTDIR/usr/lib/sysusers.d" \
  "$DESTDIR/usr/lib/tmpfiles.d" "$DESTDIR/usr/share/doc/seald" "$DESTDIR/usr/share/seald/pkcs11-profiles"
install -d -m 0750 "$DESTDIR/etc/seald"
install -m 0755 "$BIN_DIR/seald" "$BIN_DIR/sealctl" "$DESTDIR/usr/bin/"
install -m 0644 "$repo/systemd/seald.service" "$DESTDIR/usr/lib/systemd/system/seald.service"
install -m 0644 "$repo/systemd/seald.sysusers" "$DESTDIR/usr/lib/sysusers.d/seald.conf"
install -m 0644 "$repo/systemd/seald.tmpfiles" "$DESTDIR/usr/lib/tmpfiles.d/seald.conf"
install -m 0644 "$repo"/pkcs11-profiles/*.toml "$DESTDIR/usr/share/seald/pkcs11-profiles/"
install -m 0644 "$repo/README.md" "$DESTDIR/usr/share/doc/seald/README.md"
install -m 0644 "$repo/appliance/README.md" "$DESTDIR/usr/share/doc/seald/OPERATORS.md"
install -m 0644 "$repo/docs/openapi.yaml" "$DESTDIR/usr/share/doc/seald/openapi.yaml"
if [ -e "$DESTDIR/etc/seald/seald.toml" ]; then
  echo "install.sh: keeping the existing /etc/seald/seald.toml"
else
  install -m 0640 "$repo/appliance/seald.toml" "$DESTDIR/etc/seald/seald.toml"
fi
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemd-sysusers
  systemd-tmpfiles --create
  systemctl daemon-reload
fi
echo "seald installed${DESTDIR:+ into $DESTDIR}. Next: edit /etc/seald/seald.toml, put the token PIN in"
echo "/etc/seald/token.pin (mode 0600), then: systemctl enable --now seald"
