#!/usr/bin/env bash
# `cmake --install BUILD --prefix P`:
#  - P/bin/thorax runs on its own (--version, the same as the build's);
#  - the SLURM jobs are in P/share/thorax/jobs/ and executable, every shipped
#    config in P/share/thorax/configs/ (the installed binary reads the quick
#    start's), the docs with README and LICENSE in P/share/doc/thorax/;
#  - the public headers and the module libraries are there for a host program.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
build=$(dirname "$THORAX_BIN")
cmake=${CMAKE_COMMAND:-cmake}
command -v "$cmake" >/dev/null || { echo "SKIP: no cmake to install with"; exit 77; }
[ -f "$build/cmake_install.cmake" ] || { echo "SKIP: $build is not a CMake build directory"; exit 77; }

prefix="$WORK/prefix"
"$cmake" --install "$build" --prefix "$prefix" > install.log || { cat install.log; fail "cmake --install"; }

[ -x "$prefix/bin/thorax" ] || fail "no executable $prefix/bin/thorax"
"$prefix/bin/thorax" --version > version.txt || fail "the installed thorax --version failed"
"$THORAX_BIN" --version > build_version.txt
diff build_version.txt version.txt >/dev/null || fail "installed '$(cat version.txt)', built '$(cat build_version.txt)'"
grep -E '^thorax [0-9]+\.[0-9]+\.[0-9]+ \(' version.txt >/dev/null || fail "--version: $(cat version.txt)"
"$prefix/bin/thorax" --help | grep "config" >/dev/null || fail "the installed thorax --help"

share="$prefix/share/thorax"
for job in "$THORAX_SOURCE_DIR"/jobs/*.sbatch; do
  [ -x "$share/jobs/$(basename "$job")" ] || fail "$(basename "$job") not installed executable in $share/jobs"
done
for cfg in "$THORAX_SOURCE_DIR"/configs/*.yaml; do
  cmp "$cfg" "$share/configs/$(basename "$cfg")" || fail "$(basename "$cfg") not installed in $share/configs"
done
doc="$prefix/share/doc/thorax"
for f in README.md LICENSE configuration.md; do
  [ -s "$doc/$f" ] || fail "$f not installed in $doc"
done
cmp "$THORAX_SOURCE_DIR/docs/configuration.md" "$doc/configuration.md" || fail "configuration.md differs from docs/"
[ -f "$prefix/include/thorax/thorax.h" ] || fail "public headers not installed"
ls "$prefix"/lib*/libthorax_config.a >/dev/null 2>&1 || fail "module libraries not installed"

# The installed binary with the installed quick-start config.
"$prefix/bin/thorax" phantom --out p.h5 --size 64 --patients 30 >/dev/null 2>&1 || fail "installed thorax phantom"
"$prefix/bin/thorax" split "$share/configs/quickstart.yaml" --set data.path="$WORK/p.h5" > split.txt ||
  fail "installed thorax split on the installed quickstart.yaml"
grep "^patients" split.txt >/dev/null || fail "split: $(cat split.txt)"
echo "ok: installed into $prefix"
