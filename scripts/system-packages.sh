# Sourced by the set-up scripts: installs Debian packages when it can, and otherwise says
# what is needed and how to get it, instead of failing in apt-get.
#   need_system_packages "<what they are for>" pkg...
need_system_packages() {
  local why="$1"
  shift
  [ $# -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: needed for $why: $* (Debian/Ubuntu package names)." >&2
    echo "setup: this system has no apt-get: install the equivalents with its own package manager (for Chromium, set CHROMIUM_PATH to its binary) and run this again." >&2
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "setup: needed for $why: $* (Debian packages). Installing them needs root:" >&2
      echo "setup:   sudo apt-get install -y $*" >&2
      echo "setup: then run this again (or set CHROMIUM_PATH to a Chromium you already have)." >&2
      return 1
    fi
  fi
  echo "setup: apt-get install $* ($why)"
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

# The Chromium the tests drive: CHROMIUM_PATH, else Debian's.
chromium_path() {
  echo "${CHROMIUM_PATH:-/usr/bin/chromium}"
}
