#!/usr/bin/env bash
# Install the language toolchains that the repo.* and language tools drive (Go, Node.js + npm,
# gcc, cargo), and BusyBox (the runner images' userland, for the pod runtime's tests), when they
# are missing, with Debian packages. Idempotent: a machine that has them all changes nothing and
# touches no network. Never fails the build: a package that cannot be
# installed (no root, no network, unknown package) is reported and the tests for that language
# skip with the reason.
set -u

declare -A PACKAGE_FOR=([go]=golang-go [node]=nodejs [npm]=npm [gcc]=gcc [cargo]=cargo [busybox]=busybox)

missing=()
for command in go node npm gcc cargo busybox; do
    if ! command -v "$command" >/dev/null 2>&1; then
        missing+=("${PACKAGE_FOR[$command]}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_toolchains: go, node, npm, gcc, cargo and busybox are all present"
    exit 0
fi
echo "install_toolchains: missing: ${missing[*]}"

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "install_toolchains: cannot install ${missing[*]}: not root and no passwordless sudo"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_toolchains: cannot install ${missing[*]}: apt-get is not available"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq; then
    echo "install_toolchains: apt-get update failed; trying the installs with the cached lists"
fi
# One package at a time, so that one that cannot be installed does not block the others.
for package in "${missing[@]}"; do
    if "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null; then
        echo "install_toolchains: installed $package"
    else
        echo "install_toolchains: could not install $package (apt-get install failed)"
    fi
done
exit 0
