# The cargo-fuzz build flags of each fuzz target, in one place: sourced by
# .ci/run and .clusterfuzzlite/build.sh, shown in fuzz/README.md.
#
# `reader` and `fixed_ram_mutate` are built without compare tracing
# (--no-trace-compares): the callbacks it puts on every compare were a
# fifth of their time, and without them the two ran 1.4x to 1.5x as many
# inputs a second and reached more coverage after 60 s and after 10
# minutes from the checked-in corpus (docs/results/2026-12-03-fuzz-throughput.md); their
# dictionaries give the magic values compare tracing would find. The other
# targets keep it (not measured without).
#
# Flags other than the default need a target directory of their own, or
# cargo rebuilds every crate whenever it switches between targets.

# no_trace_compares TARGET: whether it is built without compare tracing.
no_trace_compares() {
  case "$1" in
    reader | fixed_ram_mutate) return 0 ;;
  esac
  return 1
}

# fuzz_target_dir TARGET: where cargo builds it, relative to fuzz/.
fuzz_target_dir() {
  if no_trace_compares "$1"; then echo target/no-trace-compares; else echo target; fi
}

# fuzz_flags TARGET: the extra flags for `cargo fuzz build` / `cargo fuzz run`.
fuzz_flags() {
  if no_trace_compares "$1"; then echo "--no-trace-compares --target-dir $(fuzz_target_dir "$1")"; fi
}
