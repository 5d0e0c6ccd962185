# Sourced by the bench scripts: `need_peers TOOL...` installs the peers a benchmark measures when
# they are missing, as the test command installs what the tests need: Debian packages (wrk, nginx,
# haproxy, curl, linux-perf...) as root or through sudo, oha with `cargo install`.
need_peers() {
  local missing=() tool
  export PATH="$HOME/.cargo/bin:$PATH"
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    case "$tool" in
      oha) echo "bench: installing oha (cargo install)" >&2; cargo install --quiet --locked oha ;;
      *) missing+=("$tool") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  echo "bench: installing ${missing[*]} (Debian)" >&2
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
}
