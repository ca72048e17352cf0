#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# The VM suite's guest kernel, downloaded with apt's own tools and unpacked into the
# build tree, never installed: no apt source is added to the host, the host's dpkg
# database, /boot and /lib/modules are not touched.
#   tests/vm/fetch-kernel.sh DIR       (make test-vm: build/vm/kernel)
# Leaves DIR/root/boot/vmlinuz-<version> and DIR/root/lib/modules/<version>/ (with the
# modules.dep that depmod would write on installation), which tests/vm/run.sh boots.
# apt runs on a private configuration in DIR/apt/ (APT_CONFIG): its own sources.list,
# lists, cache and an empty dpkg status; the host's apt.conf.d, sources and trusted
# keys are not read. The index is authenticated by Debian's archive keyring only
# (signed-by), and apt-get download checks the .deb against it.
# On bookworm the kernel comes from bookworm-backports: bookworm's own 6.1 oopses in its
# Bluetooth stack under the suite (docs/testing.md); later releases take their own.
# Environment: BZS_DEBIAN_MIRROR (default http://deb.debian.org/debian, as
# scripts/make-sysroot.sh), BZS_VM_KERNEL_SUITE (default as above). Runs as any user.
set -euo pipefail
dir=${1:?usage: fetch-kernel.sh DIR}
mirror=${BZS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
die() { echo "fetch-kernel: $*" >&2; exit 2; }

[ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "the VM suite boots an amd64 kernel: amd64 hosts only"
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
case "$codename" in
  bookworm) suite=bookworm-backports ;;
  "") die "no VERSION_CODENAME in /etc/os-release: set BZS_VM_KERNEL_SUITE" ;;
  *) suite=$codename ;;
esac
suite=${BZS_VM_KERNEL_SUITE:-$suite}
depmod=$(PATH=$PATH:/usr/sbin:/sbin command -v depmod) || die "depmod missing (apt-get install kmod)"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
apt=$dir/apt
mkdir -p "$apt"/{apt.conf.d,sources.list.d,preferences.d,trusted.gpg.d,log,debs} \
         "$apt"/state/lists/partial "$apt"/cache/archives/partial
[ -f "$apt/state/status" ] || : > "$apt/state/status"
echo "deb [signed-by=$keyring] $mirror $suite main" > "$apt/sources.list"
# Read before the host's configuration: the host's apt.conf.d (Dir::Etc::Parts) and
# apt.conf (Dir::Etc::main) are replaced by empty ones. A proxy still comes through
# http_proxy in the environment.
cat > "$apt/apt.conf" <<CONF
Dir::Etc::main "$apt/apt.conf.d/none";
Dir::Etc::Parts "$apt/apt.conf.d";
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/sources.list.d";
Dir::Etc::Preferences "$apt/preferences";
Dir::Etc::PreferencesParts "$apt/preferences.d";
Dir::Etc::Trusted "$apt/trusted.gpg";
Dir::Etc::TrustedParts "$apt/trusted.gpg.d";
Dir::State "$apt/state";
Dir::State::status "$apt/state/status";
Dir::Cache "$apt/cache";
Dir::Log "$apt/log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
CONF
export APT_CONFIG=$apt/apt.conf
# As root, apt downloads as its unprivileged user _apt: it needs to write there.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
  chown _apt "$apt/debs" "$apt/state/lists/partial" "$apt/cache/archives/partial"
fi

echo "fetch-kernel: apt-get update ($mirror $suite, private configuration in $apt)"
apt-get update -qq || die "apt-get update of $suite failed (network? BZS_DEBIAN_MIRROR?)"
# linux-image-amd64 is a metapackage: the kernel is the linux-image-<version> it depends on.
pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
[ -n "$pkg" ] || die "no linux-image-amd64 in $suite"
version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
want="$pkg $version"
if [ -f "$dir/version" ] && [ "$(cat "$dir/version")" = "$want" ] && [ -d "$dir/root" ]; then
  echo "fetch-kernel: $want is up to date in $dir/root"
  exit 0
fi

echo "fetch-kernel: downloading $want"
rm -f "$apt"/debs/*.deb
(cd "$apt/debs" && apt-get download -qq "$pkg") || die "apt-get download $pkg failed"
deb=$(ls "$apt"/debs/*.deb)
rm -rf "$dir/root.new"
dpkg-deb -x "$deb" "$dir/root.new"
root=$dir/root.new
kver=$(cd "$root/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | head -n1)
[ -n "$kver" ] || die "$deb holds no /boot/vmlinuz-*"
# Packages of merged-/usr releases may ship /usr/lib/modules: one path for the others.
if [ ! -d "$root/lib/modules/$kver" ] && [ -d "$root/usr/lib/modules/$kver" ]; then
  ln -s usr/lib "$root/lib"
fi
[ -d "$root/lib/modules/$kver" ] || die "$deb holds no modules for $kver"
# What the package's postinst would do: the module index (modprobe, the initramfs).
"$depmod" -b "$root" "$kver"
rm -rf "$dir/root" "$deb"
mv "$root" "$dir/root"
echo "$want" > "$dir/version"
echo "fetch-kernel: $kver unpacked in $dir/root"
