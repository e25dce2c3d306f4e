#!/usr/bin/env bash
# Install what the tool sandbox needs (bubblewrap) when it is missing, with Debian packages.
# Idempotent: a machine that has it changes nothing and touches no network.
# Exits non-zero when the sandbox cannot be installed: the service refuses to start without it
# (WORKSPACE_SANDBOX=none is the explicit, unsafe way out).
set -u

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_sandbox: bwrap is present"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "install_sandbox: missing ${missing[*]} and cannot install it (not root, no passwordless sudo)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq || echo "install_sandbox: apt-get update failed; trying the cached lists"
if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "install_sandbox: could not install ${missing[*]} (apt-get install failed)" >&2
    exit 1
fi
echo "install_sandbox: installed ${missing[*]}"
