#!/bin/bash
# install-deps.sh: installs what dicomvault needs to build and test, with
# apt-get, only when something is missing. Idempotent and quiet when all is
# present. Run as root (CI and the dev machines are root); otherwise sudo.
set -euo pipefail

PKGS=(
	build-essential clang libclang-rt-14-dev pkg-config
	zlib1g-dev libjansson-dev libsodium-dev libgnutls28-dev libmicrohttpd-dev libsqlite3-dev libqrencode-dev libssl-dev libpng-dev libjpeg62-turbo-dev libopenjp2-7-dev libcharls-dev curl
	python3 python3-pydicom python3-numpy python3-cryptography python3-pil
	dcmtk dicom3tools libgdcm-tools openjph-tools openssl oathtool stunnel4 chromium python3-websocket
	time strace
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
