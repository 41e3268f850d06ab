#!/usr/bin/env bash
# Install the Debian 12 packages hutch needs to build, test and run.
#
# Checks with dpkg-query first and installs only what is missing, so it is a fast no-op on a
# machine that has everything. It installs when it runs as root or when passwordless sudo works;
# otherwise it prints the exact command and exits 1.
#
#   scripts/deps.sh           install what is missing
#   scripts/deps.sh --check   only report; exit 1 if anything is missing
#   scripts/deps.sh --list    print the package list, one a line
#
# HUTCH_SKIP_DEPS=1 skips the whole thing (for machines that are not Debian).
set -euo pipefail

packages=(
	# build
	build-essential meson ninja-build pkg-config
	libyaml-dev libjson-c-dev libarchive-dev libcurl4-openssl-dev libssl-dev
	libvirt-dev libxml2-dev musl-tools
	libpng-dev # desktop icons from guests are re-encoded
	libdbus-1-dev # notifications: the guest's helper links it, the monitor loads it
	# unit tests, lint
	libcmocka-dev clang-14 cppcheck clang-format
	# the micro template: a kernel, its modules, busybox
	busybox-static linux-image-amd64 kmod
	nftables # a micro netvm's NAT: nft and its libraries go into the initramfs (src/lib/template_net.c)
	# run: QEMU, firmware, TPM, libvirt
	qemu-system-x86 qemu-utils ovmf swtpm swtpm-tools
	uidmap # virtiofs: QEMU's C virtiofsd runs in a user namespace newuidmap maps (src/lib/shares.c)
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	# integration tests and cloud-image fixtures
	openssh-client openssh-server debootstrap socat expect python3 util-linux procps
	systemd # systemd-analyze verify checks the autostart unit (no running systemd needed)
	supervisor
	mtools dosfstools grub-pc-bin grub-efi-amd64-bin
	# desktop tests: menu entry validation, a real VNC client, the host clipboard under Xvfb
	desktop-file-utils vncsnapshot xvfb xclip
	dbus-daemon python3-dbus python3-gi # notifications: a session bus and a notification server (85)
	tigervnc-viewer # hutch view of a VNC VM: remote-viewer cannot open a VNC unix socket (77)
	flatpak # run --flatpak: the test builds a tiny runtime and app and installs them as the test user (88)
	# benchmarks
	hyperfine umoci # umoci: bench/oci.sh's by-hand peer
)

mode=install
case "${1:-}" in
"") ;;
--check) mode=check ;;
--list)
	printf '%s\n' "${packages[@]}"
	exit 0
	;;
-h | --help)
	sed -n '2,12s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	echo "deps.sh: unknown option '$1' (try --help)" >&2
	exit 2
	;;
esac

if [ "${HUTCH_SKIP_DEPS:-}" = 1 ]; then
	exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: no dpkg-query: this is not Debian; install the equivalent of:" >&2
	echo "  ${packages[*]}" >&2
	echo "deps.sh: or set HUTCH_SKIP_DEPS=1 to skip this check" >&2
	exit 1
fi

# One dpkg-query call for all of them: a package is present when its status is "install ok installed".
declare -A have=()
while IFS=$'\t' read -r name status; do
	[ "$status" = "install ok installed" ] && have[$name]=1
done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${packages[@]}" 2>/dev/null || true)

missing=()
for p in "${packages[@]}"; do
	[ -n "${have[$p]:-}" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps.sh: missing packages: ${missing[*]}" >&2
if [ "$mode" = check ]; then
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo=(sudo -n)
else
	echo "deps.sh: not root and no passwordless sudo; run:" >&2
	echo "  sudo apt-get update && sudo apt-get install --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}"
