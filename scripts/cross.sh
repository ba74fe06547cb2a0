#!/usr/bin/env bash
# Builds voicepay for a device's CPU, and its Debian package:
#   scripts/cross.sh aarch64   target/aarch64-unknown-linux-gnu/release/voicepay, target/debian/voicepay_*_arm64.deb
#   scripts/cross.sh amd64     target/release/voicepay, target/debian/voicepay_*_amd64.deb
# Installs what is missing first (for aarch64: Debian's cross compiler, the
# arm64 libraries through multiarch, qemu-user to run the result, the Rust
# target). Safe to run again. VOICEPAY_ARM_ARCH picks the ARM level whisper.cpp
# is compiled for (below).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

# Installs the Debian packages in "$@" that are not installed yet.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "cross: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The tools every build needs (scripts/setup.sh installs them too, with the rest).
host_packages=(build-essential cmake libclang-dev pkg-config libasound2-dev dpkg-dev xz-utils)

case "${1:-}" in
  aarch64 | arm64)
    triple=aarch64-unknown-linux-gnu
    deb_arch=arm64
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      "${sudo[@]}" dpkg --add-architecture arm64
    fi
    # The arm64 C and C++ libraries let dpkg-shlibdeps name the package's
    # dependencies and qemu-user run the binary here (tests/cross.rs).
    apt_install "${host_packages[@]}" gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
      libc6-dev-arm64-cross libasound2-dev:arm64 libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 qemu-user
    rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"

    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    # alsa-sys finds the arm64 libasound through its own pkg-config files.
    export PKG_CONFIG_ALLOW_CROSS=1
    export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
    # bindgen reads whisper.h for aarch64, with the cross C library's headers.
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu"
    # whisper.cpp for the device, not for this machine's CPU: GGML_* are
    # passed to its CMake by whisper-rs-sys. armv8-a runs on every 64-bit
    # core (the Cortex-A53 of older head units too);
    # VOICEPAY_ARM_ARCH=armv8.2-a+fp16+dotprod builds for the Cortex-A55/A76
    # generation and later, with half-precision arithmetic and dot products.
    arm_arch=${VOICEPAY_ARM_ARCH:-armv8-a}
    export GGML_NATIVE=OFF GGML_CPU_ARM_ARCH="$arm_arch"
    strip=aarch64-linux-gnu-strip
    ;;
  amd64 | x86_64)
    triple=x86_64-unknown-linux-gnu
    deb_arch=amd64
    apt_install "${host_packages[@]}"
    arm_arch=
    strip=strip
    ;;
  *)
    echo "usage: scripts/cross.sh aarch64|amd64" >&2
    exit 2
    ;;
esac

if [[ $deb_arch == amd64 ]]; then
  # The host's own build, the one scripts/setup.sh makes and the tests run.
  cargo build --release --locked --quiet
  binary=target/release/voicepay
else
  # whisper-rs-sys does not rebuild when GGML_* change: a stamp of the ARM
  # level says when the last build was for another one.
  stamp=target/$triple/ggml-arch
  if [[ -f $stamp && $(cat "$stamp") != "$arm_arch" ]]; then
    cargo clean --release --target "$triple" -p whisper-rs-sys
  fi
  cargo build --release --locked --quiet --target "$triple"
  echo "$arm_arch" > "$stamp"
  binary=target/$triple/release/voicepay
fi

scripts/deb.sh "$deb_arch" "$binary" "$strip"
