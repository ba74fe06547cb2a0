#!/usr/bin/env bash
# Packs a built voicepay binary into a Debian package for a service:
#   scripts/deb.sh amd64|arm64 BINARY [STRIP]   ->   target/debian/voicepay_VERSION-1_ARCH.deb
# (scripts/cross.sh builds the binary and calls this.) The package holds the
# binary, the systemd unit, the system users (sysusers.d), the default profile
# as /etc/voicepay/device.toml, the other profiles and the agent framework's
# unit as examples; its post-install step makes the users and /var/lib/voicepay
# and names the commands that install the model and pair the device: it fetches
# nothing itself. Debian's own dpkg-deb and dpkg-shlibdeps build it.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_arch=${1:?usage: scripts/deb.sh amd64|arm64 BINARY [STRIP]}
binary=${2:?usage: scripts/deb.sh amd64|arm64 BINARY [STRIP]}
strip=${3:-strip}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)-1
name=voicepay_${version}_${deb_arch}
work=target/debian/$name
rm -rf "$work"
root=$work/root
mkdir -p "$root/DEBIAN"

install -D -m 0755 "$binary" "$root/usr/bin/voicepay"
"$strip" "$root/usr/bin/voicepay"
# Debian 12 ships units and sysusers under /lib and /usr/lib.
install -D -m 0644 devices/voicepay.service "$root/lib/systemd/system/voicepay.service"
install -D -m 0644 devices/voicepay.sysusers "$root/usr/lib/sysusers.d/voicepay.conf"
install -D -m 0644 devices/default.toml "$root/etc/voicepay/device.toml"
doc=$root/usr/share/doc/voicepay
install -d "$doc/examples"
install -m 0644 devices/*.toml devices/agent-framework.service "$doc/examples/"
install -m 0644 README.md ARCHITECTURE.md "$doc/"
cat > "$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: voicepay
Files: *
Copyright: the voicepay developers
License: the voicepay project's licence
EOF
for script in postinst prerm postrm; do
  install -m 0755 "devices/deb/$script" "$root/DEBIAN/$script"
done
echo /etc/voicepay/device.toml > "$root/DEBIAN/conffiles"

# The shared libraries the binary links (libc, libasound, libstdc++), named
# as the packages of its architecture that hold them.
mkdir -p "$work/debian"
printf 'Source: voicepay\n\nPackage: voicepay\nArchitecture: any\n' > "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -e root/usr/bin/voicepay 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "deb: dpkg-shlibdeps named no dependency for $binary" >&2; exit 1; }

size_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: voicepay
Version: $version
Architecture: $deb_arch
Maintainer: voicepay developers <voicepay@localhost>
Installed-Size: $size_kib
Depends: $depends, adduser
Recommends: python3-pip
Suggests: mosquitto
Section: net
Priority: optional
Description: voice-payment daemon for edge devices
 Hears payment commands on the device with Whisper, reads them back, signs
 them with the device key and sends them over MQTT to a payment gateway; a
 local store keeps limits, an outbox and the history. Runs as the voicepay
 system user under systemd (voicepay.service). The model is installed with
 "voicepay model install" (pip, from the package registry), as postinst says.
EOF
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

mkdir -p target/debian
dpkg-deb --root-owner-group -Zxz -z3 --build "$root" "target/debian/$name.deb" >/dev/null
rm -rf "$work"
echo "target/debian/$name.deb"
