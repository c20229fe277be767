#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build script for migsim's cargo-fuzz targets.
#
# Run by the base image's `compile` with the working directory at the
# repository ($SRC/migsim) and $OUT set; to check it elsewhere, run it from
# the repository with OUT (and SRC, WORK) set:
#   SRC=/tmp/src WORK=/tmp/work OUT=$(mktemp -d) bash .clusterfuzzlite/build.sh
#
# For every target in fuzz/fuzz_targets/ it puts in $OUT:
#   <target>                  the libFuzzer binary (cargo fuzz build -O
#                             --debug-assertions, ASan: as `cargo fuzz run`
#                             builds locally, so an overflow still panics;
#                             plus the target's flags from fuzz/build-flags.sh)
#   <target>.dict             its dictionary, when fuzz/<target>.dict exists
#   <target>_seed_corpus.zip  fuzz/corpus/<target>/ and fuzz/artifacts/<target>/
#   <target>.options          libFuzzer options (the RSS limit fuzz/README.md uses)
# fuzz/.cargo/config.toml builds libFuzzer itself without ASan for local
# runs (CXXFLAGS); the image exports its own CXXFLAGS, which win there.
set -euo pipefail   # also when run as `bash build.sh` (the shebang's flags are then ignored)
root=${MIGSIM_ROOT:-$PWD}
if [ ! -f "$root/fuzz/Cargo.toml" ]; then
  echo "build.sh: run from the migsim repository (no fuzz/Cargo.toml under $root)" >&2
  exit 2
fi
: "${OUT:?set OUT to the output directory}"
mkdir -p "$OUT"
cd "$root/fuzz"

# The image's default toolchain is nightly (its RUSTUP_TOOLCHAIN pins one);
# elsewhere ask rustup for nightly.
nightly=()
if ! rustc --version | grep -q nightly; then
  nightly=(+nightly)
fi
# Each target's own build flags (fuzz/build-flags.sh: reader and
# fixed_ram_mutate without compare tracing, in their own target directory).
. ./build-flags.sh

# cargo fuzz puts the binaries under the host triple (CARGO_BUILD_TARGET
# when the image sets one).
triple=${CARGO_BUILD_TARGET:-$(rustc "${nightly[@]}" -vV | sed -n 's/^host: //p')}

for src in fuzz_targets/*.rs; do
  t=$(basename "$src" .rs)
  read -r -a flags <<<"$(fuzz_flags "$t")"
  cargo "${nightly[@]}" fuzz build -O --debug-assertions "${flags[@]}" "$t"
  cp "$(fuzz_target_dir "$t")/$triple/release/$t" "$OUT/$t"
  if [ -f "$t.dict" ]; then
    cp "$t.dict" "$OUT/$t.dict"
  fi
  rm -f "$OUT/${t}_seed_corpus.zip"
  seeds=()
  for d in "corpus/$t" "artifacts/$t"; do
    [ -d "$d" ] && seeds+=("$d")
  done
  if [ ${#seeds[@]} -gt 0 ]; then
    # -j: flat (libFuzzer reads the files, not the layout); -X: no extra
    # attributes. Dot files (libFuzzer state) stay out.
    find "${seeds[@]}" -type f ! -name '.*' -print0 | xargs -0 zip -q -j -X "$OUT/${t}_seed_corpus.zip"
  fi
  printf '[libfuzzer]\nrss_limit_mb = 512\n' > "$OUT/$t.options"
done
