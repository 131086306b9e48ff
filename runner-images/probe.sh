# Kiln's software probe. Runs inside a built runner image (no network, as the job user) and prints
# what is really there, one fact a line, tab-separated: "<section>\t<name>\t<value>".
# Sections: os (from /etc/os-release), tool (first line of --version), pypy (the Python version PyPy
# implements, and its own), deb (installed Debian packages), pydist (installed Python distributions
# of python3). POSIX sh: no bash needed.
set -u
tab=$(printf '\t')
while IFS='=' read -r k v; do
  [ -n "$k" ] || continue
  v=${v#\"}; v=${v%\"}
  printf 'os\t%s\t%s\n' "$k" "$v"
done < /etc/os-release
[ -r /etc/debian_version ] && printf 'os\tDEBIAN_VERSION\t%s\n' "$(cat /etc/debian_version)"
for t in python3 pip3 gcc make git bash; do
  if command -v "$t" >/dev/null 2>&1; then
    case "$t" in
      python3|pip3) out=$("$t" --version 2>&1 | head -n 1) ;;
      *) out=$("$t" --version 2>/dev/null | head -n 1) ;;
    esac
    printf 'tool\t%s\t%s\n' "$t" "$out"
  fi
done
# PyPy: the Python version it implements and its own, as "<python>\t<pypy>".
if command -v pypy3 >/dev/null 2>&1; then
  out=$(pypy3 -c 'import platform, sys; print("%s\t%d.%d.%d" % ((platform.python_version(),) + tuple(sys.pypy_version_info[:3])))' 2>/dev/null) &&
    printf 'pypy\tpypy3\t%s\n' "$out"
fi
dpkg-query -W -f='deb\t${Package}\t${Version}\t${Status}\n' | while IFS="$tab" read -r s name ver status; do
  case "$status" in *" installed") printf 'deb\t%s\t%s\n' "$name" "$ver" ;; esac
done
if command -v python3 >/dev/null 2>&1; then
  python3 - <<'PY'
import importlib.metadata as md
seen = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    key = name.lower().replace("_", "-").replace(".", "-")
    seen.setdefault(key, (name, d.version))
for key in sorted(seen):
    print("pydist\t%s\t%s" % seen[key])
PY
fi
echo "end"
