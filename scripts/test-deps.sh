#!/usr/bin/env bash
# Makes sure the system programs the tests run are installed; `npm test` calls it before vitest.
#
# When every program is on PATH this costs a few `command -v` checks and nothing else. Otherwise, on Debian
# or Ubuntu as root (or with sudo), it installs the packages that provide the missing ones with apt-get; where
# it cannot (no apt-get, neither root nor sudo, or LATCHKEY_TEST_DEPS=check), it names each missing program
# and its package, and exits 1 before any test runs.
#
#   LATCHKEY_TEST_DEPS=install   (default) install what is missing where possible
#   LATCHKEY_TEST_DEPS=check     only check; never install
#
# Written for bash 3.2 too (macOS), so that there it reaches the message instead of a syntax error.
set -euo pipefail

programs="redis-server nginx chromium promtool haproxy"

# The Debian/Ubuntu package that provides a program.
package_of() {
  case "$1" in
    redis-server) echo redis-server ;;
    nginx) echo nginx-light ;;
    chromium) echo chromium ;;
    promtool) echo prometheus ;;
    haproxy) echo haproxy ;;
  esac
}

mode=${LATCHKEY_TEST_DEPS:-install}
case "$mode" in
  install | check) ;;
  *) echo "test-deps: LATCHKEY_TEST_DEPS must be install or check, not '$mode'" >&2; exit 2 ;;
esac

missing_programs() {
  local p missing=""
  for p in $programs; do command -v "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  echo $missing
}

# Debian installs nginx and haproxy in /usr/sbin, which a normal user's PATH often lacks.
in_sbin() { [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

packages_of() {
  local p pkgs=""
  for p in "$@"; do pkgs="$pkgs $(package_of "$p")"; done
  echo $pkgs
}

# Prints one message naming every missing program and its package, and why nothing was installed; exits 1.
give_up() {
  local reason=$1 p
  shift
  {
    echo "test-deps: the tests need programs that are not on PATH ($reason):"
    for p in "$@"; do
      if in_sbin "$p"; then
        printf '  %-13s package %-13s (it is in /usr/sbin or /sbin: add that to PATH)\n' "$p" "$(package_of "$p")"
      else
        printf '  %-13s package %s\n' "$p" "$(package_of "$p")"
      fi
    done
    echo "On Debian or Ubuntu, npm test installs them when run as root or with sudo; or install them yourself:"
    echo "  sudo apt-get install --no-install-recommends $(packages_of "$@")"
    echo "Elsewhere, install the same programs with the system's package manager. No test was run."
  } >&2
  exit 1
}

missing=$(missing_programs)
[ -z "$missing" ] && exit 0

# $missing and $pkgs are space-separated lists of names, left unquoted on purpose.
[ "$mode" = check ] && give_up "LATCHKEY_TEST_DEPS=check installs nothing" $missing
command -v apt-get >/dev/null 2>&1 || give_up "no apt-get here to install them with" $missing
if [ "$(id -u)" -eq 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1; then
  as_root=sudo
else
  give_up "not root, and no sudo to install them with" $missing
fi

install=""
for p in $missing; do in_sbin "$p" || install="$install $p"; done
[ -n "$install" ] || give_up "installed, but not on PATH" $missing
pkgs=$(packages_of $install)
echo "test-deps: installing $pkgs (for$install)" >&2
# -o DPkg::Lock::Timeout: wait for another apt or dpkg run to finish instead of failing on its lock.
apt="$as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=600"
$apt update || give_up "apt-get update failed" $missing
$apt install -y --no-install-recommends $pkgs || give_up "apt-get install failed" $missing

missing=$(missing_programs)
[ -z "$missing" ] || give_up "still missing after apt-get install" $missing
